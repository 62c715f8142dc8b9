"""
Wake-ups for event readers: L{EventFeed.wait} fires when events may have been appended (a commit
of this process, seen through L{tm20.interfaces.IEventStore.addEventObserver}) or after
C{pollInterval} seconds (events committed by another process sharing a PostgreSQL database).
Readers then read the log after their own cursor: the feed carries no events, so a missed
wake-up costs latency, never an event.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall


class EventFeed:
    """
    @ivar pollInterval: the longest a waiter sleeps without a wake-up.
    """

    def __init__(self, store: Any, clock: Any, pollInterval: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self.pollInterval = pollInterval
        self._waiters: list[Deferred[None]] = []
        self._remove: Any = None
        #: C{True} once L{stop} was called: long-lived readers (SSE) end.
        self.stopped = False
        #: Counts wake-ups: a reader notes it before reading the log and passes it to L{wait},
        #: so a wake-up that came between its read and its wait is not missed.
        self.version = 0

    def start(self) -> None:
        """Listen to the store's commits."""
        self.stopped = False
        if self._remove is None:
            self._remove = self._store.addEventObserver(self.wake)

    def stop(self) -> None:
        """Stop listening and release every waiter."""
        self.stopped = True
        if self._remove is not None:
            self._remove()
            self._remove = None
        self.wake()

    def wake(self) -> None:
        """Fire every waiter (new events may be in the log)."""
        self.version += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def wait(self, timeout: float | None = None, since: int | None = None) -> Deferred[None]:
        """
        A L{Deferred} firing at the next wake-up, or after C{timeout} (default: C{pollInterval})
        seconds, whichever comes first; at once when C{since} (a L{version}) is not the current
        version.  Cancelling it is allowed.
        """
        if since is not None and since != self.version:
            return succeed(None)
        delay = self.pollInterval if timeout is None else max(timeout, 0.0)
        timer: list[IDelayedCall] = []

        def cancel(d: Deferred[None]) -> None:
            if timer and timer[0].active():
                timer[0].cancel()
            if d in self._waiters:
                self._waiters.remove(d)

        d: Deferred[None] = Deferred(cancel)

        def expire() -> None:
            if d in self._waiters:
                self._waiters.remove(d)
            if not d.called:
                d.callback(None)

        def done(result: Any) -> Any:
            if timer and timer[0].active():
                timer[0].cancel()
            return result

        timer.append(self._clock.callLater(delay, expire))
        self._waiters.append(d)
        d.addBoth(done)
        return d


__all__ = ["EventFeed"]
