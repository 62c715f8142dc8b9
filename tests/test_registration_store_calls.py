"""
Database work per registration: one store call (one transaction) for a connection's C{reg},
none for a repeated C{reg} on the same connection, and none per connection at the upgrade.
No timing assertions: these count calls.  Deterministic: in-memory transport, injected
C{Clock}, a real SQLite store that answers synchronously (L{tests.syncstore}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.memoryws import MemoryTerminal
from tests.syncstore import fired, stopSync, syncSQLiteStore
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


class RegistrationStoreCallsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        CountingStore.calls = []
        self.store = syncSQLiteStore(self.mktemp() + ".sqlite3", self.clock, CountingStore)
        self.store.calls = []
        self.addCleanup(stopSync, self.store)
        self.server = buildServer(ServerConfig(), reactor, self.store, clock=self.clock)

    def connect(self) -> MemoryTerminal:
        term = MemoryTerminal(self.server.factory, "/pub/chat")
        self.assertEqual(term.status, b"HTTP/1.1 101 Switching Protocols")
        self.addCleanup(self.disconnect, term)
        return term

    def disconnect(self, term: MemoryTerminal) -> None:
        if term.protocol.state != term.protocol.STATE_CLOSED:
            term.protocol.connectionLost(Failure(ConnectionDone()))

    def reply(self, term: MemoryTerminal, message: dict[str, Any]) -> Any:
        """The one answer to C{message} (written before C{send} returns)."""
        term.send(message)
        [answer] = term.messages()
        return answer

    def test_firstRegistrationIsOneStoreCall(self) -> None:
        """A new terminal is checked, recorded and bound with one store call."""
        term = self.connect()
        self.assertEqual(self.store.calls, [])
        answer = self.reply(term, reg())
        self.assertEqual((answer["ret"], answer["result"]), ("reg", True))
        self.assertEqual(self.store.calls, ["registerTerminal"])
        terminal = fired(self.store.getTerminal("S1"))
        self.assertEqual(terminal.boundCpusn, "CPU-1")

    def test_repeatedRegDoesNotWrite(self) -> None:
        """A heartbeat C{reg} on the same connection costs no store call."""
        term = self.connect()
        self.reply(term, reg())
        del self.store.calls[:]
        for _ in range(3):
            self.clock.advance(10)
            answer = self.reply(term, reg())
            self.assertEqual(answer["result"], True)
        self.assertEqual(self.store.calls, [])

    def test_reconnectIsOneStoreCall(self) -> None:
        """A known, bound terminal on a new connection: one store call again."""
        first = self.connect()
        self.reply(first, reg())
        del self.store.calls[:]
        second = self.connect()
        answer = self.reply(second, reg())
        self.assertEqual(answer["result"], True)
        self.assertEqual(self.store.calls, ["registerTerminal"])

    def test_impostorFlaggedOnceThenNoWrites(self) -> None:
        """Other hardware is refused: flagged once; the same claim again is only checked."""
        term = self.connect()
        self.reply(term, reg())
        del self.store.calls[:]
        impostor = self.connect()
        answer = self.reply(impostor, reg(cpusn="CPU-2"))
        self.assertEqual(answer["result"], False)
        self.assertEqual(self.store.calls, ["registerTerminal", "flagTerminal"])
        del self.store.calls[:]
        again = self.connect()
        answer = self.reply(again, reg(cpusn="CPU-2"))
        self.assertEqual(answer["result"], False)
        self.assertEqual(self.store.calls, ["registerTerminal"])
        terminal = fired(self.store.getTerminal("S1"))
        self.assertEqual(terminal.boundCpusn, "CPU-1")

    def test_closedBeforeTheDatabaseWritesNothing(self) -> None:
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
        failure = self.failureResultOf(d, TerminalRefused).value
        self.assertEqual(failure.reason, REASON_GONE)
        self.assertEqual(self.store.calls, ["registerTerminal"])
        self.assertIsNone(fired(self.store.getTerminal("S1")))
