"""
Terminal identity through the API: the binding and the flag in the terminal's JSON, resetting
them, and the per-terminal path secret, with raw WebSocket terminals against a real server.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.serverfixture import connectRaw, registeredClient
from tests.test_api_support import READER, WRITER, ApiTestCase
from tm20.interfaces import IStore
from tm20.services.identity import REASON_IDENTITY, REASON_SECRET, hashSecret

SN = "ZX0006827500"
#: The cpusn L{registeredClient} sends.
CPUSN = "123456789"
SECRET = "door-7f3a9c2e5b1d4068"


def reg(cpusn: str, sn: str = SN) -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "cpusn": cpusn, "devinfo": {"modelname": "tfs30"}}


class IdentityApiTests(ApiTestCase):
    @inlineCallbacks
    def attempt(self, frame: Any, path: str = "/pub/chat") -> Any:
        """A raw terminal sends C{frame}; @return: the client and the reply."""
        client = yield connectRaw(self, self.running, path)
        reply = yield client.request(frame)
        return client, reply

    @inlineCallbacks
    def assertRefused(self, frame: Any, reason: str, path: str = "/pub/chat") -> Any:
        client, reply = yield self.attempt(frame, path)
        self.assertEqual(reply, {"ret": "reg", "result": False, "reason": reason})
        _, code, _ = yield client.closed
        self.assertEqual(code, 4003)

    @inlineCallbacks
    def assertAccepted(self, frame: Any, path: str = "/pub/chat") -> Any:
        client, reply = yield self.attempt(frame, path)
        self.assertEqual(reply["ret"], "reg")
        self.assertIs(reply["result"], True, reply)
        return client

    @inlineCallbacks
    def terminal(self, sn: str = SN) -> Any:
        r = yield self.call("GET", f"/api/terminals/{sn}/", token=READER)
        self.assertEqual(r.status, 200, r.text)
        return r.json

    @inlineCallbacks
    def test_identityFieldsOfANewTerminal(self) -> Any:
        yield self.start()
        r = yield self.call("POST", "/api/terminals/", {"sn": "NEW1"})
        self.assertEqual(r.status, 201)
        for key, value in (
            ("boundCpusn", None),
            ("boundMac", None),
            ("boundAt", None),
            ("flagged", False),
            ("identityMismatch", None),
            ("hasSecret", False),
        ):
            self.assertIn(key, r.json)
            self.assertEqual(r.json[key], value, key)
        self.assertNotIn("secretHash", r.json)

    @inlineCallbacks
    def test_impostorFlaggedThenResetLetsTheNewHardwareIn(self) -> Any:
        yield self.start()
        yield registeredClient(self, self.running, SN)
        terminal = yield self.terminal()
        self.assertEqual(terminal["boundCpusn"], CPUSN)
        self.assertIsNotNone(terminal["boundAt"])
        self.assertEqual((terminal["flagged"], terminal["identityMismatch"]), (False, None))

        yield self.assertRefused(reg("NEWBOARD"), REASON_IDENTITY)
        terminal = yield self.terminal()
        self.assertIs(terminal["flagged"], True)
        self.assertIs(terminal["connected"], True)  # the real terminal stays
        mismatch = terminal["identityMismatch"]
        self.assertEqual(mismatch["problem"], "cpusn differs")
        self.assertEqual(mismatch["claimedCpusn"], "NEWBOARD")
        self.assertIs(mismatch["secretGiven"], False)
        self.assertEqual(terminal["boundCpusn"], CPUSN)
        r = yield self.call("GET", "/api/terminals/", token=READER)
        self.assertEqual([t["flagged"] for t in r.json["items"]], [True])

        # the replaced board keeps being refused until an operator resets the binding
        yield self.assertRefused(reg("NEWBOARD"), REASON_IDENTITY)
        r = yield self.call("POST", f"/api/terminals/{SN}/identity/reset/", token=READER)
        self.assertEqual(r.status, 403)
        r = yield self.call("POST", f"/api/terminals/{SN}/identity/reset/", token=WRITER)
        self.assertEqual(r.status, 200, r.text)
        for key, value in (
            ("boundCpusn", None),
            ("boundMac", None),
            ("boundAt", None),
            ("flagged", False),
            ("identityMismatch", None),
        ):
            self.assertEqual(r.json[key], value, key)
        self.assertEqual(r.json["sn"], SN)
        self.assertIs(r.json["approved"], True)

        yield self.assertAccepted(reg("NEWBOARD"))
        terminal = yield self.terminal()
        self.assertEqual(terminal["boundCpusn"], "NEWBOARD")
        self.assertIs(terminal["flagged"], False)
        # and now the old board is the stranger
        yield self.assertRefused(reg(CPUSN), REASON_IDENTITY)

        r = yield self.call("GET", "/api/audit/", token=READER)
        entry = r.json["items"][0]
        self.assertEqual(
            (entry["actor"], entry["action"], entry["target"]),
            ("writer", "terminal.identity.reset", SN),
        )

    @inlineCallbacks
    def test_replayedCpusnWithAnotherMacFlagged(self) -> Any:
        """
        Someone who has seen a terminal's reg replays its cpusn from other hardware: refused
        and flagged, the real terminal stays connected and its stored mac is kept.
        """
        yield self.start()
        mac = "00-01-A9-01-00-01"

        def withMac(value: str | None) -> dict[str, Any]:
            frame = reg(CPUSN)
            if value is not None:
                frame["devinfo"] = {"modelname": "tfs30", "mac": value}
            return frame

        real = yield self.assertAccepted(withMac(mac))
        terminal = yield self.terminal()
        self.assertEqual((terminal["boundCpusn"], terminal["boundMac"]), (CPUSN, mac))

        yield self.assertRefused(withMac("66-77-88-99-AA-BB"), REASON_IDENTITY)
        terminal = yield self.terminal()
        self.assertIs(terminal["flagged"], True)
        self.assertIs(terminal["connected"], True)
        mismatch = terminal["identityMismatch"]
        self.assertEqual(
            (mismatch["problem"], mismatch["claimedCpusn"], mismatch["claimedMac"]),
            ("mac differs", CPUSN, "66-77-88-99-AA-BB"),
        )
        self.assertEqual(terminal["mac"], mac)  # not overwritten
        self.assertEqual(terminal["boundMac"], mac)
        # Leaving the mac out does not help.
        yield self.assertRefused(withMac(None), REASON_IDENTITY)
        terminal = yield self.terminal()
        self.assertEqual(terminal["identityMismatch"]["problem"], "mac missing")
        # The real terminal was never kicked, and is still served.
        self.assertEqual(self.running.context.registry.connected(), [SN])
        self.assertFalse(real.closed.called)
        ack = yield real.request(
            {"cmd": "sendlog", "record": [{"enrollid": 1, "time": "2024-01-15 10:00:00"}]}
        )
        self.assertIs(ack["result"], True)
        # The same hardware, its mac in another notation, reconnects (newest wins).
        yield self.assertAccepted(withMac("00:01:a9:01:00:01"))
        _, code, _ = yield real.closed
        self.assertEqual(code, 4002)

    @inlineCallbacks
    def test_resetUnknownTerminal(self) -> Any:
        yield self.start()
        r = yield self.call("POST", "/api/terminals/NOPE/identity/reset/")
        self.assertEqual((r.status, r.json["error"]), (404, "not_found"))
        r = yield self.call("GET", "/api/audit/", token=READER)
        self.assertEqual(r.json["items"], [])

    @inlineCallbacks
    def test_resetKeepsTheSecret(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": SN})
        r = yield self.call("PATCH", f"/api/terminals/{SN}/", {"secret": SECRET})
        self.assertIs(r.json["hasSecret"], True)
        r = yield self.call("POST", f"/api/terminals/{SN}/identity/reset/")
        self.assertEqual(r.status, 200)
        self.assertIs(r.json["hasSecret"], True)
        yield self.assertRefused(reg(CPUSN), REASON_SECRET)

    @inlineCallbacks
    def test_secretRequiredOnceSetAndNeverShown(self) -> Any:
        yield self.start()
        yield registeredClient(self, self.running, SN)
        r = yield self.call("PATCH", f"/api/terminals/{SN}/", {"secret": SECRET}, token=WRITER)
        self.assertEqual(r.status, 200, r.text)
        self.assertIs(r.json["hasSecret"], True)
        self.assertNotIn(SECRET, r.text)
        self.assertNotIn(hashSecret(SECRET), r.text)
        stored = yield self.running.context.store.getTerminal(SN)
        self.assertEqual(stored.secretHash, hashSecret(SECRET))

        # the same hardware without the secret, or with another one, is refused
        yield self.assertRefused(reg(CPUSN), REASON_SECRET)
        terminal = yield self.terminal()
        self.assertIs(terminal["flagged"], True)
        self.assertEqual(terminal["identityMismatch"]["problem"], "secret missing")
        yield self.assertRefused(reg(CPUSN), REASON_SECRET, path="/t/not-the-secret-at-all")
        terminal = yield self.terminal()
        self.assertEqual(terminal["identityMismatch"]["problem"], "secret wrong")
        # with it, accepted
        yield self.assertAccepted(reg(CPUSN), path=f"/t/{SECRET}")

        # removing the secret lets a connection without it in again
        r = yield self.call("PATCH", f"/api/terminals/{SN}/", {"secret": None}, token=WRITER)
        self.assertEqual(r.status, 200, r.text)
        self.assertIs(r.json["hasSecret"], False)
        stored = yield self.running.context.store.getTerminal(SN)
        self.assertIsNone(stored.secretHash)
        yield self.assertAccepted(reg(CPUSN))

        # the audit log says the secret was set, then removed; never what it was
        r = yield self.call("GET", "/api/audit/", token=READER)
        self.assertNotIn(SECRET, r.text)
        self.assertNotIn(hashSecret(SECRET), r.text)
        updates = [e["detail"] for e in r.json["items"] if e["action"] == "terminal.update"]
        self.assertEqual(updates, [{"secret": "removed"}, {"secret": "set"}])
        entries = yield self.running.context.store.listAuditEntries(100, None)
        self.assertNotIn(SECRET, json.dumps([e.detail for e in entries]))

    @inlineCallbacks
    def test_secretWithOtherChanges(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": SN})
        r = yield self.call(
            "PATCH", f"/api/terminals/{SN}/", {"name": "Front door", "secret": SECRET}
        )
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual((r.json["name"], r.json["hasSecret"]), ("Front door", True))
        r = yield self.call("GET", "/api/audit/", token=READER)
        self.assertEqual(r.json["items"][0]["detail"], {"name": "Front door", "secret": "set"})

    @inlineCallbacks
    def test_invalidSecrets(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": SN})
        for secret in ("short", "x" * 15, "a/b" * 8, "with space 0123456789", "é" * 20, 12345):
            r = yield self.call("PATCH", f"/api/terminals/{SN}/", {"secret": secret})
            self.assertEqual(r.status, 400, f"{secret!r}: {r.text}")
            self.assertEqual(r.json["error"], "invalid_body")
            self.assertEqual(r.json["field"], "secret")
        r = yield self.call("PATCH", "/api/terminals/NOPE/", {"secret": SECRET})
        self.assertEqual(r.status, 404)
        r = yield self.call("PATCH", "/api/terminals/NOPE/", {"secret": None})
        self.assertEqual(r.status, 404)
        r = yield self.call("GET", f"/api/terminals/{SN}/")
        self.assertIs(r.json["hasSecret"], False)
        r = yield self.call("PATCH", f"/api/terminals/{SN}/", {"secret": "x" * 16})
        self.assertEqual(r.status, 200)
        r = yield self.call("PATCH", f"/api/terminals/{SN}/", {"secret": "x" * 129})
        self.assertEqual((r.status, r.json.get("field")), (400, "secret"))


class IdentityApiPostgresTests(IdentityApiTests):
    """The same tests on PostgreSQL."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_api_identity")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store
