"""
Serial numbers through the REST API, over real HTTP and real WebSockets on loopback.

  - every sn a terminal may register with is addressable, percent-encoded (C{/} as C{%2F});
  - the API refuses to pre-register an sn that no terminal could register with;
  - a socket is one terminal: C{/health}, C{/api/connected/} and C{connected} never count a
    terminal whose socket is gone, whatever sns the socket claimed.

L{TerminalSnApiTests} runs on SQLite; L{TerminalSnApiPostgresTests} on PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks

from tests.serverfixture import connectRaw
from tests.test_api_support import ApiTestCase
from tm20.interfaces import IStore
from tm20.services.registration import REASON_SN_CHANGED

#: Serial numbers a terminal may register with that need percent-encoding in a URL.
ODD_SNS = ["ZX/0001", "50%", "%2F", "a?b#c", "Zürich/Tür", "x/../y", "...", "東京/本社"]


def path(sn: str, rest: str = "") -> str:
    return f"/api/terminals/{quote(sn, safe='')}/{rest}"


class TerminalSnApiTests(ApiTestCase):
    @inlineCallbacks
    def registered(self, sn: str, **fields: Any) -> Any:
        client = yield connectRaw(self, self.running)
        reply = yield client.request(
            {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}, **fields}
        )
        self.assertIs(reply["result"], True, reply)
        return client

    @inlineCallbacks
    def test_everyRegisteredSnIsAddressable(self) -> Any:
        yield self.start()
        clients = {}
        for sn in ODD_SNS:
            clients[sn] = yield self.registered(sn)
        r = yield self.call("GET", "/api/terminals/?connected=true")
        self.assertEqual(sorted(t["sn"] for t in r.json["items"]), sorted(ODD_SNS))
        for sn in ODD_SNS:
            r = yield self.call("GET", path(sn))
            self.assertEqual((r.status, r.json["sn"], r.json["connected"]), (200, sn, True), sn)
            r = yield self.call("PATCH", path(sn), {"name": f"door {sn}"})
            self.assertEqual((r.status, r.json["name"]), (200, f"door {sn}"), sn)
            r = yield self.call("GET", path(sn, "users/"))
            self.assertEqual(r.status, 200, sn)
            r = yield self.call("GET", path(sn, "logs/"))
            self.assertEqual(r.status, 200, sn)
            r = yield self.call("GET", path(sn, "logs/"), headers={"Accept": "text/csv"})
            self.assertEqual(r.status, 200, sn)
            self.assertTrue(r.headers["content-disposition"].isascii(), sn)
            r = yield self.call("GET", "/api/logs/?terminal=" + quote(sn, safe=""))
            self.assertEqual(r.status, 200, sn)
            # A command reaches that terminal's socket, and no other.
            pending = self.call("POST", path(sn, "command/"), {"command": "gettime"})
            frame = yield clients[sn].next()
            self.assertEqual(frame["cmd"], "gettime")
            clients[sn].send({"ret": "gettime", "sn": sn, "time": "2024-01-15 10:00:00"})
            r = yield pending
            self.assertEqual((r.status, r.json["sn"], r.json["status"]), (200, sn, "succeeded"))
        for sn in ODD_SNS:
            self.assertEqual(list(clients[sn].received), [], sn)
        # Without the trailing slash too, and an unencoded "/" names something else.
        r = yield self.call("GET", "/api/terminals/ZX%2F0001")
        self.assertEqual((r.status, r.json["sn"]), (200, "ZX/0001"))
        r = yield self.call("GET", "/api/terminals/ZX/0001/")
        self.assertEqual(r.status, 404)

    @inlineCallbacks
    def test_createWithAnOddSnGivesItsEncodedLocation(self) -> Any:
        yield self.start()
        r = yield self.call("POST", "/api/terminals/", {"sn": "new/one%"})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.headers["location"], "/api/terminals/new%2Fone%25/")
        r = yield self.call("GET", r.headers["location"])
        self.assertEqual((r.status, r.json["sn"]), (200, "new/one%"))
        r = yield self.call("DELETE", "/api/terminals/new%2Fone%25/")
        self.assertEqual(r.status, 204)
        self.assertIsNone((yield self.running.context.store.getTerminal("new/one%")))

    @inlineCallbacks
    def test_createRefusesAnSnNoTerminalCouldRegister(self) -> Any:
        yield self.start()
        for sn, problem in (
            ("ZX\u200b0001", "U+200B"),
            ("\ufeffZX1", "U+FEFF"),
            ("ZX\u00a01", ""),  # refused by the schema's pattern first
            ("..", ". or .."),
            ("x" * 65, "64"),
        ):
            r = yield self.call("POST", "/api/terminals/", {"sn": sn})
            self.assertEqual(r.status, 400, sn)
            self.assertEqual((r.json["error"], r.json["field"]), ("invalid_body", "sn"), sn)
            self.assertIn(problem, r.json["detail"], sn)
        self.assertEqual((yield self.running.context.store.listTerminals(None)), [])

    @inlineCallbacks
    def test_socketsSwitchingSnLeaveNoGhosts(self) -> Any:
        """
        The field report: a socket registers as A, then sends reg as B, then closes; repeated,
        this left 2 449 "connected" terminals in /health with no socket open.
        """
        yield self.start()
        count = 60

        @inlineCallbacks
        def switch(i: int) -> Any:
            client = yield self.registered(f"GHOST-A{i}")
            reply = yield client.request({"cmd": "reg", "sn": f"GHOST-B{i}", "devinfo": {}})
            self.assertEqual(reply, {"ret": "reg", "result": False, "reason": REASON_SN_CHANGED})
            return client

        clients = yield gatherResults([switch(i) for i in range(count)])
        r = yield treq.get(self.url("/health"), persistent=False)
        health = json.loads((yield treq.content(r)))
        self.assertEqual(health["connected"], count)
        r = yield self.call("GET", "/api/connected/")
        self.assertEqual(
            sorted(t["sn"] for t in r.json["items"]), sorted(f"GHOST-A{i}" for i in range(count))
        )
        # The B sns were never recorded.
        r = yield self.call("GET", path("GHOST-B0"))
        self.assertEqual(r.status, 404)

        for client in clients:
            client.sendClose(1000)
        yield gatherResults([client.closed for client in clients])
        registry = self.running.context.registry
        yield self.until(lambda: not registry.sessions(), "every socket closed on the server")

        r = yield treq.get(self.url("/health"), persistent=False)
        health = json.loads((yield treq.content(r)))
        self.assertEqual(health["connected"], 0)
        r = yield self.call("GET", "/api/connected/")
        self.assertEqual((r.json["count"], r.json["items"]), (0, []))
        r = yield self.call("GET", "/api/terminals/?connected=true")
        self.assertEqual(r.json["items"], [])
        r = yield self.call("GET", path("GHOST-A0"))
        self.assertIs(r.json["connected"], False)
        r = yield self.call("POST", path("GHOST-A0", "command/"), {"command": "gettime"})
        self.assertEqual(r.status, 202)  # queued for when it connects, not sent to a ghost
        self.assertEqual(r.json["status"], "queued")

    @inlineCallbacks
    def test_commandsForTheFirstSnGoToItsSocketOnly(self) -> Any:
        yield self.start()
        client = yield self.registered("FIRST")
        reply = yield client.request({"cmd": "reg", "sn": "SECOND", "devinfo": {}})
        self.assertIs(reply["result"], False)
        r = yield self.call("POST", path("SECOND", "command/"), {"command": "gettime"})
        self.assertEqual(r.status, 404)  # SECOND does not exist: nothing is sent to FIRST
        pending = self.call("POST", path("FIRST", "command/"), {"command": "gettime"})
        frame = yield client.next()
        self.assertEqual(frame["cmd"], "gettime")
        client.send({"ret": "gettime", "sn": "FIRST", "time": "2024-01-15 10:00:00"})
        r = yield pending
        self.assertEqual((r.status, r.json["status"]), (200, "succeeded"))


class TerminalSnApiPostgresTests(TerminalSnApiTests):
    """The same tests on PostgreSQL."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_sn")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store
