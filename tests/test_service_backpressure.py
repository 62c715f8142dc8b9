"""A store whose log queue is full makes the server stop reading every terminal's socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.memoryws import MemoryTerminal
from tm20.config import ServerConfig
from tm20.service import buildServer
from tm20.store.sqlite import SQLiteStore


class QueueingSQLiteStore(SQLiteStore):
    """A real store, plus the backpressure hook of a group-commit store (PostgreSQL's)."""

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
