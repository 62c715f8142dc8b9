"""
Group commit: batches from every terminal are queued and written together.  The ingest service
(L{tm20.services.ingest.LogIngest}) builds one for log batches around the store's one log
operation (L{tm20.interfaces.ILogBatchWriter}; PostgreSQL: up to two flushes at once, each one
C{COPY} transaction; SQLite: one at a time in its writer thread); the access store builds one
for punches stored with their access decision.

A batch joins the queue and its caller gets a L{Deferred}.  The queue is flushed as one
transaction when it holds C{flushRows} rows, or C{flushInterval} seconds after the first batch
arrived in an empty queue, whichever comes first; while C{maxConcurrentFlushes} flushes are
already running, batches keep accumulating and go in the next one, which starts as soon as a
flush ends.  Each caller's Deferred fires after the flush holding its rows commits, with its own
counts.

The default C{flushInterval} is 0: classic group commit.  A batch arriving while a flush slot is
free is written at the next turn of the reactor (with whatever else arrived in the same turn),
so an idle queue adds no latency (a back-fill page, a lone terminal); under load the slots are
busy and batches merge while they wait, as they did with a fixed interval.

A batch of C{flushRows} rows or more is not merged with others: it is written at once in its own
transaction (a back-fill of thousands of logs must not hold small batches hostage).

A flush may fail one batch alone (a L{Failure} in place of its result: its rows were rolled
back, the others committed).  If a merged flush fails for a reason other than the database
being unavailable (say, one batch
has a value the database rejects), each batch of it is retried alone, so one bad batch fails only
its own caller.  A deadlock or serialization failure is retried once as it is.

The queue is bounded.  L{GroupCommitQueue.pendingRows} counts rows accepted but not yet
committed (queued or being written).  When it reaches C{maxPendingRows} the queue is I{full}:
observers registered with L{GroupCommitQueue.addBackpressureObserver} are called with C{True}
(stop reading from terminals), and with C{False} once it has drained to half of that.  A batch
that would take the queue past C{maxPendingRows} fails at once with L{LogQueueFull} (a
L{StoreUnavailable}: the terminal is answered C{result:false} and sends it again later), except
when the queue is empty, so a single back-fill larger than the bound is still accepted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from tm20.errors import StoreUnavailable

R = TypeVar("R")
I = TypeVar("I")  # noqa: E741


class LogQueueFull(StoreUnavailable):
    """The log queue is full: nothing was written; send the batch again later."""


class Batch(Generic[I, R]):
    """One caller's rows waiting for a flush."""

    __slots__ = ("sn", "items", "deferred")

    def __init__(self, sn: str, items: Sequence[I]) -> None:
        self.sn = sn
        self.items = items
        self.deferred: Deferred[R] = Deferred()

    def __len__(self) -> int:
        return len(self.items)


#: Writes batches in one transaction and returns one result per batch, in order; a
#: L{Failure} in place of a result fails that batch alone (its rows were rolled back, the
#: others committed).
FlushFunction = Callable[[Sequence[Batch[I, R]]], Awaitable[Sequence[R | Failure]]]


class GroupCommitQueue(Generic[I, R]):
    """
    Queues batches and flushes them together (see the module docstring).

    @ivar flushes: how many flush transactions were started (merged or alone), for tests and
        metrics.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        flush: FlushFunction[I, R],
        flushInterval: float = 0.0,
        flushRows: int = 500,
        maxPendingRows: int = 50_000,
        maxConcurrentFlushes: int = 2,
        isRetryable: Callable[[BaseException], bool] = lambda e: False,
    ) -> None:
        """
        @param reactor: an C{IReactorTime} for the flush timer.
        @param flush: writes a list of batches in one transaction (see L{FlushFunction}).
        @param flushInterval: the longest a batch waits for others while a flush slot is
            free, in seconds; 0 (the default): until the next turn of the reactor.
        @param flushRows: the rows that trigger a flush at once; also the size from which a
            batch is written alone.
        @param maxPendingRows: the bound of the queue (see the module docstring).
        @param maxConcurrentFlushes: merged flushes that may run at the same time.
        @param isRetryable: tells a transient failure (deadlock) worth one more try.
        """
        if flushRows < 1 or maxPendingRows < 1 or maxConcurrentFlushes < 1:
            raise ValueError("flushRows, maxPendingRows and maxConcurrentFlushes must be >= 1")
        self._reactor = reactor
        self._flush = flush
        self.flushInterval = flushInterval
        self.flushRows = flushRows
        self.maxPendingRows = maxPendingRows
        self.maxConcurrentFlushes = maxConcurrentFlushes
        self._isRetryable = isRetryable
        self._queue: deque[Batch[I, R]] = deque()
        self._queuedRows = 0
        self.pendingRows = 0
        self._inFlight = 0
        self._running: set[Deferred[None]] = set()
        self._timer: Any = None
        self._closed = False
        self._full = False
        self._observers: list[Callable[[bool], object]] = []
        self.flushes = 0

    # -- backpressure ----------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """C{True} from when L{pendingRows} reaches the bound until it drains to half of it."""
        return self._full

    def addBackpressureObserver(self, observer: Callable[[bool], object]) -> Callable[[], None]:
        """
        Call C{observer(True)} when the queue becomes full and C{observer(False)} when it has
        drained again.  If the queue is full now, C{observer(True)} is called at once.

        @return: a function that unregisters C{observer}.
        """
        self._observers.append(observer)
        if self._full:
            self._tell(observer, True)

        def remove() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return remove

    def _tell(self, observer: Callable[[bool], object], full: bool) -> None:
        try:
            observer(full)
        except Exception:
            self.log.failure("log backpressure observer failed")

    def _pendingChanged(self) -> None:
        if not self._full and self.pendingRows >= self.maxPendingRows:
            self._full = True
        elif self._full and self.pendingRows <= self.maxPendingRows // 2:
            self._full = False
        else:
            return
        self.log.info(
            "log queue {state} ({rows} rows pending)",
            state="full: pausing" if self._full else "drained: resuming",
            rows=self.pendingRows,
        )
        for observer in list(self._observers):
            self._tell(observer, self._full)

    # -- submitting ------------------------------------------------------------------------------

    def submit(self, sn: str, items: Sequence[I]) -> Deferred[R]:
        """
        Queue C{items} of terminal C{sn}.

        @return: a L{Deferred} firing with the flush function's result for this batch once it
            is committed; failing with L{LogQueueFull} when the queue has no room, or with the
            flush's error.
        """
        if self._closed:
            return defer.fail(StoreUnavailable("the store is stopping"))
        n = len(items)
        if self.pendingRows > 0 and self.pendingRows + n > self.maxPendingRows:
            return defer.fail(
                LogQueueFull(f"log queue full ({self.pendingRows} rows pending); retry later")
            )
        batch: Batch[I, R] = Batch(sn, items)
        self.pendingRows += n
        self._pendingChanged()
        if n >= self.flushRows:
            self._start([batch], merged=False)
        else:
            self._queue.append(batch)
            self._queuedRows += n
            if self._queuedRows >= self.flushRows:
                self._maybeFlush(now=True)
            elif self._timer is None and self._inFlight < self.maxConcurrentFlushes:
                self._timer = self._reactor.callLater(self.flushInterval, self._timerFired)
        return batch.deferred

    def _timerFired(self) -> None:
        self._timer = None
        self._maybeFlush(now=True)

    def _maybeFlush(self, now: bool) -> None:
        while self._queue and self._inFlight < self.maxConcurrentFlushes:
            if not now and self._queuedRows < self.flushRows:
                break
            taken: list[Batch[I, R]] = []
            rows = 0
            while self._queue and rows < self.flushRows:
                batch = self._queue.popleft()
                taken.append(batch)
                rows += len(batch)
            self._queuedRows -= rows
            self._start(taken, merged=True)
            now = self._queuedRows >= self.flushRows
        if self._timer is not None and (
            not self._queue or self._inFlight >= self.maxConcurrentFlushes
        ):
            self._timer.cancel()
            self._timer = None
        if self._queue and self._timer is None and self._inFlight < self.maxConcurrentFlushes:
            self._timer = self._reactor.callLater(self.flushInterval, self._timerFired)

    def _start(self, batches: list[Batch[I, R]], merged: bool) -> None:
        if merged:
            self._inFlight += 1
        d = Deferred.fromCoroutine(self._write(batches, merged))
        self._running.add(d)
        d.addBoth(lambda _: self._running.discard(d))

    async def _write(self, batches: list[Batch[I, R]], merged: bool) -> None:
        """Flush C{batches}, update the counters, then fire each one's Deferred.  Never fails."""
        outcomes: list[tuple[Batch[I, R], R | Failure]] = []
        try:
            results = await self._attempt(batches)
            outcomes = list(zip(batches, results, strict=True))
        except Exception as e:
            if len(batches) > 1 and not isinstance(e, StoreUnavailable):
                self.log.warn(
                    "a merged log flush of {n} batches failed ({error}); writing them one by one",
                    n=len(batches),
                    error=e,
                )
                for batch in batches:
                    try:
                        outcomes.append((batch, (await self._attempt([batch]))[0]))
                    except Exception:
                        outcomes.append((batch, Failure()))
            else:
                failure = Failure()
                outcomes = [(batch, failure) for batch in batches]
        # the counters first: a caller reacting to its result sees the room it freed
        self.pendingRows -= sum(len(b) for b in batches)
        if merged:
            self._inFlight -= 1
        self._pendingChanged()
        if self._queue:
            # whatever queued up while this flush ran goes now: it has waited long enough
            self._maybeFlush(now=True)
        for batch, outcome in outcomes:
            if isinstance(outcome, Failure):
                batch.deferred.errback(outcome)
            else:
                batch.deferred.callback(outcome)

    async def _attempt(self, batches: list[Batch[I, R]]) -> Sequence[R | Failure]:
        self.flushes += 1
        try:
            return await self._flush(batches)
        except Exception as e:
            if not self._isRetryable(e):
                raise
            self.flushes += 1
            return await self._flush(batches)

    # -- stopping --------------------------------------------------------------------------------

    def close(self) -> Deferred[None]:
        """
        Refuse new batches, flush everything queued and wait for every flush to finish.

        @return: a L{Deferred} firing when nothing is left (it never fails).
        """
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

        async def drain() -> None:
            while self._queue or self._running:
                self._maybeFlush(now=True)
                running = list(self._running)
                if running:
                    await defer.DeferredList(running, consumeErrors=True)

        return Deferred.fromCoroutine(drain())


__all__ = ["Batch", "FlushFunction", "GroupCommitQueue", "LogQueueFull"]
