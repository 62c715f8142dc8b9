"""Authentication and scopes of every API route, over real HTTP."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from tests.test_api_support import ADMIN, READER, WRITER, ApiTestCase
from tm20.api._auth import bearerToken, hashToken, parseStaticTokens, scopeFor
from tm20.api._openapi import OPERATIONS

_VALUES = {"sn": "SIM1", "enrollid": "1", "id": "1", "name": "g"}


def concrete(path: str) -> str:
    """An OpenAPI path with its parameters filled in, under /api."""
    return "/api" + re.sub(r"\{(\w+)\}", lambda m: _VALUES[m.group(1)], path)


class AuthTests(ApiTestCase):
    @inlineCallbacks
    def test_everyRouteNeedsAToken(self) -> Any:
        # Each attempt comes from its own address (through a trusted proxy), so that the
        # failure rate limit (tests/test_api_ratelimit.py) does not answer 429 instead.
        yield self.start(trustedProxies=("127.0.0.1",))
        for i, op in enumerate(OPERATIONS):
            path = concrete(op.path)
            for j, (token, headers) in enumerate(
                (
                    (None, {}),
                    ("not-a-token", {}),
                    (None, {"Authorization": f"Basic {ADMIN}"}),
                    (None, {"Authorization": "Bearer"}),
                )
            ):
                headers = {**headers, "X-Forwarded-For": f"10.0.{i}.{j + 1}"}
                r = yield self.call(op.method, path, token=token, headers=headers)
                self.assertEqual(r.status, 401, f"{op.method} {path} {headers}")
                self.assertEqual(r.json["error"], "unauthorized")
                self.assertEqual(r.headers.get("www-authenticate"), "Bearer")

    @inlineCallbacks
    def test_401SaysHowToGetAToken(self) -> Any:
        yield self.start()
        for token in (None, "not-a-token"):
            r = yield self.call("GET", "/api/terminals/", token=token)
            self.assertEqual(r.status, 401)
            detail = r.json["detail"]
            self.assertIn("tm20-admin token create NAME", detail)
            self.assertIn("make token", detail)
            self.assertIn("--api-token NAME:SECRET", detail)

    @inlineCallbacks
    def test_everyRouteChecksTheScope(self) -> Any:
        yield self.start()
        for op in OPERATIONS:
            path = concrete(op.path)
            lacking = WRITER if op.scope == "read" else READER
            r = yield self.call(op.method, path, token=lacking)
            self.assertEqual(r.status, 403, f"{op.method} {path}")
            self.assertEqual(r.json["error"], "forbidden")
            having = READER if op.scope == "read" else WRITER
            if op.operationId == "streamEvents":
                path += "?type=nope"  # answered 400 once authorized (a stream never ends)
            r = yield self.call(op.method, path, token=having, body={})
            self.assertNotIn(r.status, (401, 403), f"{op.method} {path}: {r.text}")
            self.assertEqual(op.scope, scopeFor(op.method.encode("ascii")))

    @inlineCallbacks
    def test_staticTokenNamesAndRevocation(self) -> Any:
        yield self.start(apiTokens=("bare-secret", f"ops:{ADMIN}"))
        r = yield self.call("POST", "/api/terminals/", {"sn": "A"}, token="bare-secret")
        self.assertEqual(r.status, 201)
        r = yield self.call("POST", "/api/terminals/", {"sn": "B"}, token=ADMIN)
        self.assertEqual(r.status, 201)
        r = yield self.call("GET", "/api/audit/", token=READER)
        self.assertEqual([e["actor"] for e in r.json["items"]], ["ops", "static-1"])
        yield self.running.context.store.deleteApiToken("reader")
        r = yield self.call("GET", "/api/terminals/", token=READER)
        self.assertEqual(r.status, 401)


class AuthUnitTests(SynchronousTestCase):
    def test_parseStaticTokens(self) -> None:
        self.assertEqual(
            parseStaticTokens(["a:x", "secret", " ", "b:y:z", ":w", "n:"]),
            [("a", "x"), ("static-2", "secret"), ("b", "y:z"), ("static-5", "w")],
        )

    def test_hashToken(self) -> None:
        self.assertEqual(
            hashToken("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )

    def test_bearerToken(self) -> None:
        from twisted.web.test.requesthelper import DummyRequest

        for header, expected in (
            (b"Bearer abc", "abc"),
            (b"bearer  abc ", "abc"),
            (b"Basic abc", None),
            (b"Bearer ", None),
            (b"\xff\xfe", None),
        ):
            request = DummyRequest([b""])
            request.requestHeaders.setRawHeaders(b"authorization", [header])
            self.assertEqual(bearerToken(request), expected, header)
        self.assertIsNone(bearerToken(DummyRequest([b""])))
