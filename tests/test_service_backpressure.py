"""
A store whose log queue is full makes the server stop reading every terminal's socket; the
socket's pause reasons are kept apart; SQLite's log queue is bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.memoryws import MemoryTerminal
from tm20.config import ServerConfig
from tm20.protocol.messages import LogRecord
from tm20.service import buildServer
from tm20.store._groupcommit import LogQueueFull
from tm20.store.sqlite import SQLiteStore
from tm20.terminal.protocol import PAUSE_INBOX, PAUSE_STORE


class QueueingSQLiteStore(SQLiteStore):
    """A real store whose backpressure observers the test calls itself (full, drained)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, reactor=reactor)
        self.observers: list[Callable[[bool], object]] = []

    def addLogsBackpressure(self, observer: Callable[[bool], object]) -> Callable[[], None]:
        self.observers.append(observer)
        return lambda: self.observers.remove(observer)


class BackpressureWiringTests(SynchronousTestCase):
    def test_fullQueuePausesAllTerminals(self) -> None:
        store = QueueingSQLiteStore(self.mktemp())
        server = buildServer(ServerConfig(), reactor, store, clock=Clock())
        terminals: list[Any] = [MemoryTerminal(server.factory) for _ in range(3)]
        self.assertEqual(len(store.observers), 1)
        store.observers[0](True)
        self.assertEqual([t.transport.paused for t in terminals], [True, True, True])
        store.observers[0](False)
        self.assertEqual([t.transport.paused for t in terminals], [False, False, False])


def _reg(sn: str) -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}}


def _sendlog(i: int) -> dict[str, Any]:
    return {
        "cmd": "sendlog",
        "count": 1,
        "logindex": i,
        "record": [{"enrollid": 1, "time": f"2024-01-15 10:00:{i:02d}"}],
    }


class PauseReasonsTests(TestCase):
    """
    The terminal protocol is the only owner of its socket's pausing, with a set of reasons: the
    end of one (the store's queue drained) never clears another (its own inbox is full).
    Memory transport, a Clock for the server's timers, a real SQLite store.
    """

    timeout = 20

    @inlineCallbacks
    def setUp(self) -> Any:
        self.store = QueueingSQLiteStore(self.mktemp())
        yield self.store.start()
        self.addCleanup(self.store.stop)
        self.server = buildServer(
            ServerConfig(maxPendingMessages=4), reactor, self.store, clock=Clock()
        )

    @inlineCallbacks
    def registered(self, sn: str) -> Any:
        term = MemoryTerminal(self.server.factory)
        self.addCleanup(term.protocol.connectionLost, Failure(ConnectionDone()))
        term.send(_reg(sn))
        for _ in range(500):
            replies = term.messages()
            if replies:
                self.assertEqual(replies[0]["result"], True)
                return term
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail("no reg reply")

    @inlineCallbacks
    def replies(self, term: MemoryTerminal, count: int) -> Any:
        got: list[Any] = []
        for _ in range(500):
            got.extend(term.messages())
            if len(got) >= count:
                return got
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail(f"only {len(got)} replies")

    @inlineCallbacks
    def test_storeDrainingKeepsAFullInboxPaused(self) -> Any:
        term = yield self.registered("S1")
        for i in range(10):
            term.send(_sendlog(i))
        # nothing has been written yet (the store's thread has not answered): the inbox is full
        self.assertTrue(term.transport.paused)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_INBOX})
        [observer] = self.store.observers
        observer(True)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_INBOX, PAUSE_STORE})
        observer(False)
        # the store's reason ended; the inbox's still holds
        self.assertTrue(term.transport.paused)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_INBOX})
        replies = yield self.replies(term, 10)
        self.assertEqual([r["logindex"] for r in replies], list(range(10)))
        self.assertFalse(term.transport.paused)
        self.assertEqual(term.protocol.pausedFor, frozenset())

    @inlineCallbacks
    def test_inboxDrainingKeepsAFullStorePaused(self) -> Any:
        term = yield self.registered("S1")
        for i in range(10):
            term.send(_sendlog(i))
        [observer] = self.store.observers
        observer(True)
        yield self.replies(term, 10)
        # the inbox drained; the store's queue is still full
        self.assertTrue(term.transport.paused)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_STORE})
        observer(False)
        self.assertFalse(term.transport.paused)

    @inlineCallbacks
    def test_terminalConnectingWhileFullStartsPaused(self) -> Any:
        [observer] = self.store.observers
        observer(True)
        term = yield self.registered("S2")
        self.assertTrue(term.transport.paused)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_STORE})
        observer(False)
        self.assertFalse(term.transport.paused)


class SQLiteLogQueueBoundTests(TestCase):
    """SQLite's group commit has the bound and the backpressure of PostgreSQL's (real SQLite)."""

    timeout = 20

    @inlineCallbacks
    def test_boundAndBackpressure(self) -> Any:
        store = SQLiteStore(self.mktemp(), reactor=reactor, maxQueuedRows=10)
        yield store.start()
        self.addCleanup(store.stop)
        yield store.createTerminal("S1", None, True, None)
        seen: list[bool] = []
        store.addLogsBackpressure(seen.append)

        def records(n: int, first: int) -> list[LogRecord]:
            return [
                LogRecord(enrollid=1, time=f"2024-01-15 10:{first + i:02d}:00") for i in range(n)
            ]

        first = store.addLogs("S1", records(8, 0))
        second = store.addLogs("S1", records(2, 8))
        self.assertEqual(seen, [True])
        self.assertTrue(store.logQueueFull)
        refused = store.addLogs("S1", records(1, 10))
        self.failureResultOf(refused, LogQueueFull)
        self.assertIsInstance(refused, Deferred)
        results = yield gatherResults([first, second])
        self.assertEqual([r.inserted for r in results], [8, 2])
        self.assertEqual(seen, [True, False])
        self.assertFalse(store.logQueueFull)
        self.assertEqual((yield store.countLogs("S1")), 10)
        # merged: the two batches went in one transaction
        self.assertEqual(store.logQueue.flushes, 1)
