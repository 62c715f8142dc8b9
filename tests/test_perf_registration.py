"""
Database work per registration: one store call (one transaction) for a connection's C{reg},
none for a repeated C{reg} on the same connection, and none per connection at the upgrade.
No timing assertions: these count calls.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.memoryws import MemoryTerminal
from tm20.config import ServerConfig
from tm20.errors import TerminalRefused
from tm20.protocol.messages import Register
from tm20.service import buildServer
from tm20.services.registration import REASON_GONE
from tm20.store.sqlite import SQLiteStore

_COUNTED = (
    "registerTerminal",
    "recordTerminalSeen",
    "bindTerminalIdentity",
    "getTerminal",
    "flagTerminal",
)


class CountingStore(SQLiteStore):
    """An SQLite store that lists the terminal methods called on it."""

    calls: list[str]

    def __getattribute__(self, name: str) -> Any:
        if name in _COUNTED:
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


def reg(sn: str = "S1", cpusn: str | None = "CPU-1") -> dict[str, Any]:
    message: dict[str, Any] = {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}}
    if cpusn is not None:
        message["cpusn"] = cpusn
    return message


class RegistrationStoreCallsTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def setUp(self) -> Any:
        self.clock = Clock()
        self.store = CountingStore(self.mktemp() + ".sqlite3", reactor=reactor)
        self.store.calls = []
        yield self.store.start()
        self.addCleanup(self.store.stop)
        self.server = buildServer(ServerConfig(), reactor, self.store, clock=self.clock)

    def connect(self) -> MemoryTerminal:
        term = MemoryTerminal(self.server.factory, "/pub/chat")
        self.assertEqual(term.status, b"HTTP/1.1 101 Switching Protocols")
        self.addCleanup(self.disconnect, term)
        return term

    def disconnect(self, term: MemoryTerminal) -> None:
        if term.protocol.state != term.protocol.STATE_CLOSED:
            term.protocol.connectionLost(Failure(ConnectionDone()))

    @inlineCallbacks
    def reply(self, term: MemoryTerminal, message: dict[str, Any]) -> Any:
        term.send(message)
        for _ in range(500):
            got = term.messages()
            if got:
                return got[0]
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail("no reply")

    @inlineCallbacks
    def test_firstRegistrationIsOneStoreCall(self) -> Any:
        """A new terminal is checked, recorded and bound with one store call."""
        term = self.connect()
        self.assertEqual(self.store.calls, [])
        answer = yield self.reply(term, reg())
        self.assertEqual((answer["ret"], answer["result"]), ("reg", True))
        self.assertEqual(self.store.calls, ["registerTerminal"])
        terminal = yield self.store.getTerminal("S1")
        self.assertEqual(terminal.boundCpusn, "CPU-1")

    @inlineCallbacks
    def test_repeatedRegDoesNotWrite(self) -> Any:
        """A heartbeat C{reg} on the same connection costs no store call."""
        term = self.connect()
        yield self.reply(term, reg())
        del self.store.calls[:]
        for _ in range(3):
            self.clock.advance(10)
            answer = yield self.reply(term, reg())
            self.assertEqual(answer["result"], True)
        self.assertEqual(self.store.calls, [])

    @inlineCallbacks
    def test_reconnectIsOneStoreCall(self) -> Any:
        """A known, bound terminal on a new connection: one store call again."""
        first = self.connect()
        yield self.reply(first, reg())
        del self.store.calls[:]
        second = self.connect()
        answer = yield self.reply(second, reg())
        self.assertEqual(answer["result"], True)
        self.assertEqual(self.store.calls, ["registerTerminal"])

    @inlineCallbacks
    def test_impostorFlaggedOnceThenNoWrites(self) -> Any:
        """Other hardware is refused: flagged once; the same claim again is only checked."""
        term = self.connect()
        yield self.reply(term, reg())
        del self.store.calls[:]
        impostor = self.connect()
        answer = yield self.reply(impostor, reg(cpusn="CPU-2"))
        self.assertEqual(answer["result"], False)
        self.assertEqual(self.store.calls, ["registerTerminal", "flagTerminal"])
        del self.store.calls[:]
        again = self.connect()
        answer = yield self.reply(again, reg(cpusn="CPU-2"))
        self.assertEqual(answer["result"], False)
        self.assertEqual(self.store.calls, ["registerTerminal"])
        terminal = yield self.store.getTerminal("S1")
        self.assertEqual(terminal.boundCpusn, "CPU-1")

    @inlineCallbacks
    def test_closedBeforeTheDatabaseWritesNothing(self) -> Any:
        """
        A registration whose connection closed while it waited for the database is refused
        there, before anything is written (a terminal that gave up and retries costs one write,
        not two).
        """
        term = self.connect()
        term.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertIs(term.protocol.gone, True)
        registration = self.server.context.registration
        d = registration.register(term.protocol, Register(sn="S1", cpusn="CPU-1", devinfo={}))
        failure = yield self.assertFailure(d, TerminalRefused)
        self.assertEqual(failure.reason, REASON_GONE)
        self.assertEqual(self.store.calls, ["registerTerminal"])
        self.assertIsNone((yield self.store.getTerminal("S1")))
