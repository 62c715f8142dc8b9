"""
A real SQLite store that answers synchronously, for deterministic session, queue and keep-alive
tests (as Buildbot runs its threaded database work synchronously in tests).

L{syncSQLiteStore} builds a L{tm20.store.sqlite.SQLiteStore} on a real file whose "pool thread"
is the caller's own: every call runs the same SQL, in the same transactions, and its L{Deferred}
has fired when the call returns.  Time (the store's "now", its health probes) comes from a
L{Clock}.  Nothing waits on the real reactor, so a test drives a server built with
C{buildServer(..., clock=clock)} by sending a frame and reading the reply at once, and moves time
with C{clock.advance}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tm20.store.sqlite import SQLiteStore


class SyncThreadPool:
    """Runs each piece of work at once, in the calling thread (a C{ThreadPool} stand-in)."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], object],
        function: Callable[..., Any],
        *a: Any,
        **kw: Any,
    ) -> None:
        try:
            result = function(*a, **kw)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)


class SyncReactor:
    """
    What the store asks of its reactor: time and timers from a L{Clock}; results "from the
    thread" delivered at once; the connection pool's thread pool made a L{SyncThreadPool}
    (C{adbapi.ConnectionPool} asks C{callWhenRunning} to start it, with itself as the bound
    method's C{__self__}).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, function: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, function, *a, **kw)

    def getDelayedCalls(self) -> Any:
        return self.clock.getDelayedCalls()

    def callFromThread(self, function: Callable[..., Any], *a: Any, **kw: Any) -> None:
        function(*a, **kw)

    def callWhenRunning(self, function: Callable[..., Any], *a: Any, **kw: Any) -> None:
        pool = getattr(function, "__self__", None)
        if pool is not None and hasattr(pool, "threadpool"):
            pool.threadpool = SyncThreadPool()
        function(*a, **kw)

    def addSystemEventTrigger(self, *a: Any, **kw: Any) -> None:
        return None

    def removeSystemEventTrigger(self, triggerID: Any) -> None:
        pass


def syncSQLiteStore(path: str, clock: Clock, storeClass: type[SQLiteStore] = SQLiteStore) -> Any:
    """
    A started L{SQLiteStore} (or C{storeClass}, a subclass) on C{path} that answers
    synchronously (see the module).
    """
    # flushRows=1: each log batch is written at once rather than on the reactor's next turn (the
    # group commit's timer), so that a sendlog's ack is sent before send() returns
    store = storeClass(
        path,
        reactor=SyncReactor(clock),  # type: ignore[arg-type]
        clock=clock,
        flushRows=1,
    )
    d = store.start()
    started: list[Any] = []
    d.addBoth(started.append)
    if not started:
        raise AssertionError("the synchronous store did not start synchronously")
    if isinstance(started[0], Failure):
        started[0].raiseException()
    return store


def stopSync(store: SQLiteStore) -> None:
    """Stop a store made by L{syncSQLiteStore} (synchronously)."""
    done: list[Any] = []
    store.stop().addBoth(done.append)
    if done and isinstance(done[0], Failure):
        done[0].raiseException()


def fired(d: Any) -> Any:
    """
    The result of a L{Deferred} that has already fired (a store made by L{syncSQLiteStore}
    answers before its call returns); its failure is raised.
    """
    got: list[Any] = []
    d.addBoth(got.append)
    if not got:
        raise AssertionError(f"{d!r} has not fired")
    if isinstance(got[0], Failure):
        got[0].raiseException()
    return got[0]
