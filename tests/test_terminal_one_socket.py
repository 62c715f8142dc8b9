"""
One socket, one terminal (deterministic session tests: in-memory transport, injected Clock,
a real SQLite store that answers synchronously, L{tests.syncstore}).

A connection is bound to the first sn it registers; a reg with another sn on it is refused with
a reason and changes nothing.  A refused reg always says why in text.  A connection that closed
while its registration was in the database is never counted as connected.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.memoryws import OP_CLOSE, MemoryTerminal
from tests.syncstore import fired, stopSync, syncSQLiteStore
from tm20.config import ServerConfig
from tm20.errors import StoreUnavailable
from tm20.protocol.replies import REG_FAILED
from tm20.service import buildServer
from tm20.services.identity import hashSecret
from tm20.services.registration import REASON_SN_CHANGED


def reg(sn: str, **fields: Any) -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}, **fields}


def sendlog(logindex: int) -> dict[str, Any]:
    return {
        "cmd": "sendlog",
        "count": 1,
        "logindex": logindex,
        "record": [{"enrollid": 1, "time": f"2024-01-15 10:00:{logindex:02d}"}],
    }


class WrappedStore:
    """
    A real store with hooks: C{failing} fails every call; C{gate}, when set, holds the result
    of C{registerTerminal} (the transaction has committed) until it fires.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self.failing = False
        self.gate: Deferred[None] | None = None
        self.registered: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name in ("start", "stop") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.failing:
                return fail(StoreUnavailable("the database does not answer"))
            d = attribute(*args, **kwargs)
            if name == "registerTerminal" and self.gate is not None:
                gate = self.gate

                def held(result: Any) -> Any:
                    self.registered.append(args[0])
                    return gate.addCallback(lambda _: result)

                d.addCallback(held)
            return d

        return call


class OneSocketOneTerminalTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.sqlite = syncSQLiteStore(self.mktemp() + ".sqlite3", self.clock)
        self.addCleanup(stopSync, self.sqlite)
        self.store = WrappedStore(self.sqlite)
        self.server = buildServer(ServerConfig(), reactor, self.store, clock=self.clock)
        self.registry = self.server.context.registry

    def connect(self, server: Any = None, path: str = "/pub/chat") -> MemoryTerminal:
        term = MemoryTerminal((server or self.server).factory, path)
        self.assertEqual(term.status, b"HTTP/1.1 101 Switching Protocols")
        self.addCleanup(self.disconnect, term)
        return term

    def disconnect(self, term: MemoryTerminal) -> None:
        if term.protocol.state != term.protocol.STATE_CLOSED:
            term.protocol.connectionLost(Failure(ConnectionDone()))

    def request(self, term: MemoryTerminal, frame: Any) -> Any:
        """Send C{frame}; return the one text message that answers it (already written)."""
        term.send(frame)
        [reply] = term.messages()
        return reply

    def assertOpen(self, term: MemoryTerminal) -> None:
        self.assertNotIn(OP_CLOSE, [op for op, _ in term.frames()])
        self.assertEqual(term.protocol.state, term.protocol.STATE_OPEN)

    def test_regWithAnotherSnIsRefusedAndChangesNothing(self) -> None:
        term = self.connect()
        reply = self.request(term, reg("A"))
        self.assertIs(reply["result"], True)
        session = self.registry.get("A")

        reply = self.request(term, reg("B"))
        self.assertEqual(reply, {"ret": "reg", "result": False, "reason": REASON_SN_CHANGED})
        self.assertOpen(term)  # not disconnected: it is still terminal A
        self.assertEqual(self.registry.connected(), ["A"])
        self.assertIs(self.registry.get("A"), session)
        self.assertIsNone(self.registry.get("B"))
        self.assertEqual(term.protocol.sn, "A")
        self.assertIsNone(fired(self.sqlite.getTerminal("B")))  # nothing written for B

        # It is served as A, heartbeats included.
        ack = self.request(term, sendlog(1))
        self.assertIs(ack["result"], True)
        self.assertEqual(fired(self.sqlite.countLogs("A")), 1)
        reply = self.request(term, reg("A"))
        self.assertIs(reply["result"], True)

        # Closed, it leaves nothing connected.
        self.disconnect(term)
        self.assertEqual(self.registry.connected(), [])
        self.assertEqual(len(self.registry), 0)

    def test_manySocketsSwitchingSnLeaveNoGhost(self) -> None:
        terms = []
        for i in range(40):
            term = self.connect()
            reply = self.request(term, reg(f"A{i}"))
            self.assertIs(reply["result"], True)
            reply = self.request(term, reg(f"B{i}"))
            self.assertIs(reply["result"], False)
            terms.append(term)
        self.assertEqual(len(self.registry), 40)
        for term in terms:
            self.disconnect(term)
        self.assertEqual(self.registry.connected(), [])
        self.assertEqual(len(self.registry), 0)

    def test_closedWhileRegisteringIsNeverConnected(self) -> None:
        self.store.gate = Deferred()
        term = self.connect()
        term.send(reg("LATE"))
        # The registration has committed; its answer is on its way when the socket closes.
        self.assertEqual(self.store.registered, ["LATE"])
        self.disconnect(term)
        self.store.gate.callback(None)
        self.assertEqual(self.registry.connected(), [])
        self.assertEqual(len(self.registry), 0)

    def test_badSnRefusedWithItsReasonConnectionLivesOn(self) -> None:
        term = self.connect()
        reply = self.request(term, reg("ZX\u200b0001"))
        self.assertEqual(reply["ret"], "reg")
        self.assertIs(reply["result"], False)
        self.assertIsInstance(reply["reason"], str)
        self.assertIn("sn", reply["reason"])
        self.assertIn("U+200B", reply["reason"])
        self.assertOpen(term)
        self.assertEqual(self.registry.connected(), [])
        self.assertEqual(fired(self.sqlite.listTerminals(None)), [])
        # The same connection may still register with a good sn.
        reply = self.request(term, reg("ZX0001"))
        self.assertIs(reply["result"], True)
        self.assertEqual(self.registry.connected(), ["ZX0001"])

    def test_everyRefusedRegCarriesText(self) -> None:
        term = self.connect()
        for frame in (
            {"cmd": "reg"},  # no sn
            {"cmd": "reg", "sn": ["ZX1"]},  # not text
            {"cmd": "reg", "sn": "x" * 65},  # too long
            {"cmd": "reg", "sn": "ZX1", "devinfo": [1]},  # malformed devinfo
            b'{"cmd":"reg","sn":"ZX1",',  # not JSON
        ):
            reply = self.request(term, frame)
            self.assertEqual((reply["ret"], reply["result"]), ("reg", False), frame)
            self.assertIsInstance(reply["reason"], str, frame)
            self.assertTrue(reply["reason"], frame)
        self.assertOpen(term)
        # The database failing: refused with text too.
        self.store.failing = True
        reply = self.request(term, reg("ZX1"))
        self.assertEqual(reply, {"ret": "reg", "result": False, "reason": REG_FAILED})
        self.flushLoggedErrors(StoreUnavailable)
        self.store.failing = False
        reply = self.request(term, reg("ZX1"))
        self.assertIs(reply["result"], True)

    def test_everyRefusalPathSaysWhyInText(self) -> None:
        """
        Whitelist (pending), disabled, identity, secret, sn rule, sn change: each refused reg
        carries a human-readable reason (terminals show it on screen), never a number.
        """
        fired(self.sqlite.createTerminal("OFF", None, True, None))
        fired(self.sqlite.updateTerminal("OFF", {"active": False}))
        fired(self.sqlite.createTerminal("LOCKED", None, True, None))
        fired(self.sqlite.setTerminalSecret("LOCKED", hashSecret("door-7f3a9c2e5b1d4068")))
        bound = self.connect()
        reply = self.request(bound, reg("BOUND", cpusn="CPU-A"))
        self.assertIs(reply["result"], True)
        whitelist = buildServer(
            ServerConfig(requireWhitelist=True), reactor, self.store, clock=self.clock
        )
        attempts = [
            (whitelist, reg("UNKNOWN"), "not approved"),
            (self.server, reg("OFF"), "disabled"),
            (self.server, reg("BOUND", cpusn="CPU-B"), "identity"),
            (self.server, reg("LOCKED"), "secret"),
            (self.server, reg("ZX\u200b1"), "sn"),
            (self.server, {"cmd": "reg"}, "sn"),
        ]
        for server, frame, words in attempts:
            term = self.connect(server)
            reply = self.request(term, frame)
            self.assertEqual((reply["ret"], reply["result"]), ("reg", False), frame)
            self.assertIsInstance(reply["reason"], str, frame)
            self.assertIn(words, reply["reason"], frame)
        reply = self.request(bound, reg("OTHER"))
        self.assertEqual(reply, {"ret": "reg", "result": False, "reason": REASON_SN_CHANGED})
