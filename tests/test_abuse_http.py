"""
HTTP-level abuse over real loopback TCP: slow bodies, deeply nested JSON bodies, oversized
request heads, unknown methods on C{/health}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase

from tests.securitysupport import (
    RawSocket,
    makePKI,
    openRaw,
    scratchDir,
    startServerOn,
    tlsOptionsFor,
    wait,
)
from tests.serverfixture import startServer
from tests.test_api_support import ADMIN, ApiTestCase
from tm20.api._openapi import OPERATIONS


def splitResponse(raw: bytes) -> tuple[bytes, dict[str, str], Any]:
    """Status line, headers (lower-case names) and the JSON body of a raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    return lines[0], headers, json.loads(body) if body else None


class SlowBodyTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_slowBodiesCutAtTheDeadlineOthersServed(self) -> Any:
        running = yield startServer(self, httpBodyTimeout=1.0, apiTokens=(f"admin:{ADMIN}",))
        head = (
            b"POST /api/terminals/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        )
        slow: list[RawSocket] = []
        for _ in range(50):
            sock = yield openRaw(self, running.port)
            sock.send(head)
            slow.append(sock)

        def dribble() -> None:  # a byte every 0.1 s each: the body would take 100 s
            for sock in slow:
                sock.send(b" ")

        dribbling = LoopingCall(dribble)
        dribbling.start(0.1)
        self.addCleanup(lambda: dribbling.running and dribbling.stop())
        # Meanwhile, a normal request is served.
        normal = yield openRaw(self, running.port)
        normal.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = yield normal.closed
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])
        self.assertTrue(all(s.closedAt is None for s in slow))
        results = yield DeferredList([s.closed for s in slow])
        dribbling.stop()
        for ok, raw in results:
            self.assertTrue(ok)
            status, headers, body = splitResponse(raw)
            self.assertEqual(status, b"HTTP/1.1 408 Request Timeout")
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(body["error"], "timeout")
            self.assertIn("1s", body["detail"])
        yield wait(0.05)
        self.assertEqual(running.server.site.limiter.total, 0)

    @inlineCallbacks
    def test_bodyInTimeIsServed(self) -> Any:
        running = yield startServer(self, httpBodyTimeout=1.0, apiTokens=(f"admin:{ADMIN}",))
        body = json.dumps({"sn": "T1"}).encode()
        sock = yield openRaw(self, running.port)
        sock.send(
            b"POST /api/terminals/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        yield wait(0.5)
        sock.send(body)
        raw = yield sock.closed
        self.assertTrue(raw.startswith(b"HTTP/1.1 201"), raw[:200])


class OversizeHeadTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def assertJSON400(self, data: bytes, keepSending: bytes = b"") -> Any:
        running = yield startServer(self)
        sock = yield openRaw(self, running.port)
        sock.send(data)
        for _ in range(20):  # the client keeps sending: the answer still reaches it
            sock.send(keepSending)
        raw = yield sock.closed
        status, headers, body = splitResponse(raw)
        self.assertEqual(status, b"HTTP/1.1 400 Bad Request")
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(body["error"], "bad_request")
        self.assertIn("16384 bytes", body["detail"])

    def test_manyHeaders(self) -> Any:
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"b" * 1000) for i in range(20))
        return self.assertJSON400(b"GET /health HTTP/1.1\r\nHost: x\r\n" + filler)

    def test_oneHugeHeaderLine(self) -> Any:
        return self.assertJSON400(b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 20_000)

    def test_hugeRequestLine(self) -> Any:
        return self.assertJSON400(b"GET /" + b"x" * 20_000 + b" HTTP/1.1\r\n\r\n")

    def test_hugeHeadStillSending(self) -> Any:
        filler = b"X-Filler: " + b"c" * 1000 + b"\r\n"
        return self.assertJSON400(b"GET /health HTTP/1.1\r\n", keepSending=filler * 50)

    def test_upgradeWithAHead16KiBIsRefusedWithJSON(self) -> Any:
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"b" * 1000) for i in range(20))
        return self.assertJSON400(
            b"GET /pub/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" + filler
        )


class OversizeHeadOverTLSTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_oversizeHeadOverTLSGetsJSON400(self) -> Any:
        pki = makePKI(scratchDir(self))
        spec = f"ssl:0:privateKey={pki.keyFile}:certKey={pki.certFile}:interface=127.0.0.1"
        running = yield startServerOn(self, ports=(spec,))
        sock = yield openRaw(self, running.port, tlsOptions=tlsOptionsFor(pki))
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"b" * 1000) for i in range(20))
        sock.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n" + filler)
        raw = yield sock.closed
        status, headers, body = splitResponse(raw)
        self.assertEqual(status, b"HTTP/1.1 400 Bad Request")
        self.assertEqual(body["error"], "bad_request")


class RefusedRequestTests(TestCase):
    """A refused request is answered once; nothing sent after it on the connection is served."""

    timeout = 30

    @inlineCallbacks
    def test_upgradeWithBodyAnsweredOnlyWith400(self) -> Any:
        running = yield startServer(self)
        sock = yield openRaw(self, running.port)
        sock.send(
            b"GET /pub/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nContent-Length: 10\r\n\r\n0123456789"
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        raw = yield sock.closed
        status, headers, body = splitResponse(raw)
        self.assertEqual(status, b"HTTP/1.1 400 Bad Request")
        self.assertEqual(body["error"], "bad_request")
        self.assertEqual(raw.count(b"HTTP/1.1 "), 1, raw)

    @inlineCallbacks
    def test_linesAfterAnOversizeHeadAreNotServed(self) -> Any:
        running = yield startServer(self)
        sock = yield openRaw(self, running.port)
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"b" * 1000) for i in range(20))
        sock.send(
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n"
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        raw = yield sock.closed
        self.assertTrue(raw.startswith(b"HTTP/1.1 400 Bad Request"), raw[:100])
        self.assertEqual(raw.count(b"HTTP/1.1 "), 1, raw)


class HealthMethodTests(ApiTestCase):
    @inlineCallbacks
    def test_unknownMethodsGetJSON405(self) -> Any:
        yield self.start()
        for method in ("PUT", "DELETE", "POST", "PATCH", "OPTIONS", "BREW"):
            r = yield self.call(method, "/health", token=None)
            self.assertEqual(r.status, 405, method)
            self.assertEqual(r.headers["content-type"], "application/json", method)
            self.assertEqual(r.headers["allow"], "GET, HEAD", method)
            self.assertEqual(r.json["error"], "method_not_allowed", method)
            self.assertIn(method, r.json["detail"])
        r = yield self.call("GET", "/health", token=None)
        self.assertEqual((r.status, r.json["status"]), (200, "ok"))
        r = yield self.call("HEAD", "/health", token=None)
        self.assertEqual(r.status, 200)


def _deepBody(depth: int) -> bytes:
    return b'{"a":' + b"[" * depth + b"]" * depth + b"}"


class DeepJSONTests(ApiTestCase):
    """A body nested 5 000 deep gets a 400 naming the problem, on every route with a body."""

    @inlineCallbacks
    def postDeep(self, method: str, path: str) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": "T1"})
        yield self.call("POST", "/api/terminals/T1/users/", {"enrollid": 1, "name": "A"})
        path = (
            path.replace("{sn}", "T1")
            .replace("{enrollid}", "1")
            .replace("{id}", "1")
            .replace("{name}", "g")
        )
        r = yield self.call(
            method,
            "/api" + path,
            raw=_deepBody(5000),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(r.status, 400, r.text)
        self.assertEqual(r.json["error"], "invalid_json")
        self.assertEqual(r.json["field"], "body")
        self.assertIn("deeper than 32", r.json["detail"])

    @inlineCallbacks
    def test_depthAtTheLimitIsNotRefusedAsJSON(self) -> Any:
        yield self.start()
        r = yield self.call(
            "POST",
            "/api/terminals/",
            raw=b'{"sn":"T2","name":' + b"[" * 31 + b"]" * 31 + b"}",
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(r.status, 400, r.text)
        self.assertEqual(r.json["error"], "invalid_body")  # decoded, then refused by the schema


def _addDeepTest(method: str, path: str, operationId: str) -> None:
    def test(self: DeepJSONTests) -> Any:
        return self.postDeep(method, path)

    name = f"test_deepBody_{operationId}"
    test.__name__ = name
    setattr(DeepJSONTests, name, test)


for _op in OPERATIONS:
    if _op.body is not None and _op.bodyMediaType == "application/json":
        _addDeepTest(_op.method, _op.path, _op.operationId)
