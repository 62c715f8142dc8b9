"""tm20-admin: API tokens created, listed and revoked, and accepted by a running server."""

from __future__ import annotations

import io
import os
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue

from tests.test_api_support import ApiTestCase
from tm20.admin import run
from tm20.api._auth import hashToken
from tm20.store.sqlite import SQLiteStore


class AdminTests(ApiTestCase):
    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp() + ".sqlite3")
        self.database = f"sqlite:{self.path}"

    @inlineCallbacks
    def admin(self, *argv: str, environ: dict[str, str] | None = None) -> Any:
        out, err = io.StringIO(), io.StringIO()
        code = yield run(reactor, list(argv), out, err, environ or {})
        return code, out.getvalue(), err.getvalue()

    def makeStore(self) -> Any:
        return SQLiteStore(self.path, reactor=reactor)

    @inlineCallbacks
    def test_createListRevoke(self) -> Any:
        code, out, err = yield self.admin("token", "create", "ops", "--database", self.database)
        self.assertEqual((code, err), (0, ""))
        secret = out.strip().splitlines()[-1]
        self.assertGreaterEqual(len(secret), 40)
        code, out, err = yield self.admin(
            "token", "create", "viewer", "--scopes", "read", "-d", self.database
        )
        self.assertEqual(code, 0)
        viewer = out.strip().splitlines()[-1]
        code, out, err = yield self.admin("token", "create", "ops", "-d", self.database)
        self.assertEqual(code, 1)
        self.assertIn("already exists", err)
        # only the hash is stored
        store = SQLiteStore(self.path, reactor=reactor)
        yield store.start()
        token = yield store.findApiToken(hashToken(secret))
        self.assertEqual((token.name, tuple(token.scopes)), ("ops", ("read", "write")))
        tokens = yield store.listApiTokens()
        self.assertNotIn(secret, repr(tokens))
        yield store.stop()
        code, out, err = yield self.admin("--database", self.database, "token", "list")
        self.assertEqual(code, 0)
        self.assertEqual(
            [line.split("\t")[:2] for line in out.splitlines()],
            [["ops", "read,write"], ["viewer", "read"]],
        )
        # the server accepts them, with their scopes
        yield self.start(apiTokens=())
        r = yield self.call("POST", "/api/terminals/", {"sn": "A"}, token=secret)
        self.assertEqual(r.status, 201)
        r = yield self.call("GET", "/api/terminals/", token=viewer)
        self.assertEqual(r.status, 200)
        r = yield self.call("POST", "/api/terminals/", {"sn": "B"}, token=viewer)
        self.assertEqual(r.status, 403)
        r = yield self.call("GET", "/api/audit/", token=viewer)
        self.assertEqual(r.json["items"][0]["actor"], "ops")
        code, out, err = yield self.admin("token", "revoke", "ops", "-d", self.database)
        self.assertEqual(code, 0)
        r = yield self.call("GET", "/api/terminals/", token=secret)
        self.assertEqual(r.status, 401)
        code, out, err = yield self.admin("token", "revoke", "ops", "-d", self.database)
        self.assertEqual(code, 1)

    @inlineCallbacks
    def test_usageErrors(self) -> Any:
        for argv in (
            [],
            ["token"],
            ["token", "create"],
            ["token", "create", "x", "--scopes", "admin"],
            ["token", "create", "a:b"],
            ["token", "create", "x", "--database", "mysql://nope"],
        ):
            code, out, err = yield self.admin(*argv)
            self.assertEqual(code, 2, argv)
            self.assertTrue(err.startswith("tm20-admin: "), err)
            self.assertEqual(out, "")

    @inlineCallbacks
    def test_databaseFromTheEnvironment(self) -> Any:
        code, out, err = yield self.admin(
            "token", "create", "ops", environ={"DATABASE_URL": self.database}
        )
        self.assertEqual(code, 0)
        code, out, err = yield self.admin("token", "list", environ={"DATABASE_URL": self.database})
        self.assertTrue(out.startswith("ops\t"))

    @inlineCallbacks
    def test_consoleScript(self) -> Any:
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-m", "tm20.admin", "token", "list", "--database", self.database],
            env=dict(os.environ),
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(out, b"no API tokens stored\n")
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            ["-m", "tm20.admin", "token", "revoke", "x", "-d", self.database],
            env=dict(os.environ),
        )
        self.assertEqual(code, 1)
        self.assertIn(b"no token named", err)
