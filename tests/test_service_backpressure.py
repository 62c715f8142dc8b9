"""
The ingest service's log queue, full, makes the server stop reading every terminal's socket; the
socket's pause reasons are kept apart; the log queue is bounded on SQLite too.
"""

from __future__ import annotations

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
from tm20.services.groupcommit import LogQueueFull
from tm20.services.ingest import LogIngest
from tm20.store.sqlite import SQLiteStore
from tm20.terminal.protocol import PAUSE_INBOX, PAUSE_STORE


def queueFull(server: Any, full: bool) -> None:
    """
    Make the server's log queue (its ingest service's) full, or drained again: as many rows as
    its bound are counted pending, or no longer, and the queue tells its observers.
    """
    queue = server.context.ingest.queue
    queue.pendingRows += queue.maxPendingRows if full else -queue.maxPendingRows
    queue._pendingChanged()


class BackpressureWiringTests(SynchronousTestCase):
    def test_fullQueuePausesAllTerminals(self) -> None:
        store = SQLiteStore(self.mktemp(), reactor=reactor)
        server = buildServer(ServerConfig(), reactor, store, clock=Clock())
        terminals: list[Any] = [MemoryTerminal(server.factory) for _ in range(3)]
        self.assertEqual(len(server.context.ingest.queue._observers), 1)
        queueFull(server, True)
        self.assertEqual([t.transport.paused for t in terminals], [True, True, True])
        queueFull(server, False)
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
        self.store = SQLiteStore(self.mktemp(), reactor=reactor)
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
        queueFull(self.server, True)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_INBOX, PAUSE_STORE})
        queueFull(self.server, False)
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
        queueFull(self.server, True)
        yield self.replies(term, 10)
        # the inbox drained; the store's queue is still full
        self.assertTrue(term.transport.paused)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_STORE})
        queueFull(self.server, False)
        self.assertFalse(term.transport.paused)

    @inlineCallbacks
    def test_terminalConnectingWhileFullStartsPaused(self) -> Any:
        queueFull(self.server, True)
        term = yield self.registered("S2")
        self.assertTrue(term.transport.paused)
        self.assertEqual(term.protocol.pausedFor, {PAUSE_STORE})
        queueFull(self.server, False)
        self.assertFalse(term.transport.paused)


class SQLiteLogQueueBoundTests(TestCase):
    """
    The ingest service's group commit has the same bound and backpressure on SQLite as on
    PostgreSQL (real SQLite).
    """

    timeout = 20

    @inlineCallbacks
    def test_boundAndBackpressure(self) -> Any:
        store = SQLiteStore(self.mktemp(), reactor=reactor, maxQueuedRows=10)
        yield store.start()
        self.addCleanup(store.stop)
        yield store.createTerminal("S1", None, True, None)
        ingest = LogIngest(store, reactor=reactor)
        seen: list[bool] = []
        ingest.addBackpressureObserver(seen.append)

        def records(n: int, first: int) -> list[LogRecord]:
            return [
                LogRecord(enrollid=1, time=f"2024-01-15 10:{first + i:02d}:00") for i in range(n)
            ]

        first = ingest.ingest("S1", records(8, 0))
        second = ingest.ingest("S1", records(2, 8))
        self.assertEqual(seen, [True])
        self.assertTrue(ingest.full)
        refused = ingest.ingest("S1", records(1, 10))
        self.failureResultOf(refused, LogQueueFull)
        self.assertIsInstance(refused, Deferred)
        results = yield gatherResults([first, second])
        self.assertEqual([r.inserted for r in results], [8, 2])
        self.assertEqual(seen, [True, False])
        self.assertFalse(ingest.full)
        self.assertEqual((yield store.countLogs("S1")), 10)
        # merged: the two batches went in one transaction
        self.assertEqual(ingest.queue.flushes, 1)
