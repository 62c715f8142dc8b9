"""
The sink runner on a real SQLite store that answers synchronously (L{tests.syncstore}), with a
deterministic L{Clock} for the retry schedule and everything else (no real time passes):
order, batches, retries with backoff and jitter, failing after the schedule, 410 disables,
replay, and a restart resuming where the stored state says.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.storecontract import SN, T0, at, punch
from tests.syncstore import stopSync, syncSQLiteStore
from tm20.errors import StoreUnavailable
from tm20.events.feed import EventFeed
from tm20.events.model import STREAM_ACTIVE, STREAM_DISABLED, STREAM_FAILING, Event
from tm20.events.runner import STORE_RETRY_DELAY, SinkRunner
from tm20.events.sinks import (
    DeliveryFailed,
    DeliveryReport,
    RetrySchedule,
    SinkGone,
    StreamSpec,
    parseDuration,
)


class RecordingSink:
    """A sink whose outcomes the test queues: C{None} delivers, an exception fails."""

    name = "test"

    def __init__(self, *specs: StreamSpec) -> None:
        self.specs = list(specs)
        self.calls: list[list[int]] = []
        self.outcomes: deque[Any] = deque()
        self.started = 0
        self.stopped = 0
        self.pending: list[Deferred[Any]] = []

    def start(self, context: Any) -> None:
        self.started += 1

    def streams(self) -> list[StreamSpec]:
        return list(self.specs)

    def deliver(self, stream: StreamSpec, events: list[Event]) -> Deferred[Any]:
        self.calls.append([event.id for event in events])
        outcome = self.outcomes.popleft() if self.outcomes else None
        if isinstance(outcome, Deferred):
            self.pending.append(outcome)
            return outcome
        if isinstance(outcome, BaseException):
            return fail(outcome)
        return succeed(DeliveryReport(status=200, response="ok"))

    def stop(self) -> None:
        self.stopped += 1
        for held in self.pending:
            if not held.called:
                held.cancel()


class SinkRunnerTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self) -> Any:
        self.clock = Clock()
        self.clock.advance(T0)
        self.path = os.path.join(self.mktemp() + ".sqlite3")
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.store = syncSQLiteStore(self.path, self.clock)
        self.addCleanup(self.stopStore, self.store)
        yield succeed(None)

    def stopStore(self, store: Any) -> None:
        if store._state != "stopped":
            stopSync(store)

    def runner(
        self, sink: RecordingSink, delays: tuple[float, ...] = (10, 20, 40), jitter: float = 0.0
    ) -> SinkRunner:
        feed = EventFeed(self.store, self.clock, pollInterval=1.0)
        feed.start()
        self.addCleanup(feed.stop)
        runner = SinkRunner(
            self.store,
            self.clock,
            [sink],
            feed,
            RetrySchedule(delays, jitter),
            randomValue=lambda: 0.0,
        )
        self.addCleanup(lambda: Deferred.fromCoroutine(runner.stop()))
        return runner

    @inlineCallbacks
    def until(self, check: Any, what: str) -> Any:
        """C{check()} holds now, or once the calls due now on the clock have run."""
        for _ in range(20):
            value = check()
            if isinstance(value, Deferred):
                value = yield value
            if value:
                return value
            self.clock.advance(0)
        self.fail(f"never happened: {what}")

    @inlineCallbacks
    def quiet(self) -> Any:
        """Run what is due now on the clock: nothing should happen."""
        for _ in range(10):
            self.clock.advance(0)
        yield succeed(None)

    @inlineCallbacks
    def stream(self, key: str = "test") -> Any:
        stream = yield self.store.getSinkStream(key)
        return stream

    @inlineCallbacks
    def test_deliversInOrderInBatches(self) -> Any:
        yield self.store.addLogs(
            SN, [punch(i, f"2026-04-30 08:{i // 60:02d}:{i % 60:02d}") for i in range(1, 251)]
        )
        sink = RecordingSink(StreamSpec("test", batchSize=100, startAfter=0))
        runner = self.runner(sink)
        yield Deferred.fromCoroutine(runner.start())
        self.assertEqual(sink.started, 1)
        yield self.until(lambda: len(sink.calls) == 3, "three batches")
        delivered = [i for call in sink.calls for i in call]
        self.assertEqual([len(c) for c in sink.calls], [100, 100, 50])
        self.assertEqual(delivered, sorted(delivered))
        self.assertEqual(len(set(delivered)), 250)
        stream = yield self.until(
            lambda: self.stream().addCallback(lambda s: s if s.cursor == delivered[-1] else None),
            "cursor at the last event",
        )
        self.assertEqual(stream.state, STREAM_ACTIVE)
        attempts = yield self.store.listSinkAttempts("test", 10, None)
        self.assertEqual(
            [(a.events, a.ok, a.status) for a in attempts][::-1],
            [
                (100, True, 200),
                (100, True, 200),
                (50, True, 200),
            ],
        )
        # new events wake the runner at once (no clock advance needed)
        yield self.store.addLogs(SN, [punch(999, "2026-04-30 10:00:00")])
        yield self.until(lambda: len(sink.calls) == 4, "the new event")

    @inlineCallbacks
    def test_newStreamStartsAtTheHead(self) -> Any:
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        sink = RecordingSink(StreamSpec("test"))
        runner = self.runner(sink)
        yield Deferred.fromCoroutine(runner.start())
        yield self.until(self.stream, "stream opened")
        yield self.quiet()
        self.assertEqual(sink.calls, [])
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")])
        yield self.until(lambda: sink.calls, "the new event")
        self.assertEqual(len(sink.calls[0]), 1)

    @inlineCallbacks
    def test_retriesWithBackoffAndJitterInOrder(self) -> Any:
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        sink = RecordingSink(StreamSpec("test", startAfter=0))
        sink.outcomes.extend([DeliveryFailed("HTTP 500", 500, "boom"), DeliveryFailed("x")])
        runner = self.runner(sink, delays=(10, 20, 40), jitter=0.5)  # random 0: half the delay
        yield Deferred.fromCoroutine(runner.start())
        yield self.until(lambda: len(sink.calls) == 1, "first attempt")
        stream = yield self.until(
            lambda: self.stream().addCallback(lambda s: s if s.failures == 1 else None),
            "first failure recorded",
        )
        self.assertEqual(stream.retryAt, at(T0 + 5))
        self.assertEqual(stream.failingSince, at(T0))
        self.assertEqual(stream.lastError, "HTTP 500")
        # a punch arriving meanwhile waits behind the failed batch
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 08:00:05")])
        self.clock.advance(4.9)
        yield self.quiet()
        self.assertEqual(len(sink.calls), 1)
        self.clock.advance(0.2)
        yield self.until(lambda: len(sink.calls) == 2, "second attempt at +5s")
        first = sink.calls[0][0]
        self.assertEqual(sink.calls[1][0], first)
        stream = yield self.until(
            lambda: self.stream().addCallback(lambda s: s if s.failures == 2 else None),
            "second failure recorded",
        )
        self.assertEqual(stream.retryAt, at(T0 + 5.1 + 10))
        self.clock.advance(10)
        yield self.until(lambda: len(sink.calls) == 3, "third attempt at +10s more")
        self.assertEqual(sink.calls[2], [first, first + 1])
        stream = yield self.until(
            lambda: self.stream().addCallback(lambda s: s if s.cursor == first + 1 else None),
            "delivered",
        )
        self.assertEqual((stream.failures, stream.retryAt, stream.lastError), (0, None, None))
        attempts = yield self.store.listSinkAttempts("test", 10, None)
        self.assertEqual([a.ok for a in attempts], [True, False, False])
        self.assertEqual(attempts[2].status, 500)
        self.assertEqual(attempts[2].response, "boom")
        self.assertEqual(attempts[1].error, "x")

    @inlineCallbacks
    def test_failingAfterTheScheduleKeepsCursorThenReEnableAndReplay(self) -> Any:
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")])
        sink = RecordingSink(StreamSpec("test", startAfter=0))
        sink.outcomes.extend([RuntimeError("down")] * 3)
        runner = self.runner(sink, delays=(1, 1))
        yield Deferred.fromCoroutine(runner.start())
        yield self.until(lambda: len(sink.calls) == 1, "attempt 1")
        for n in (2, 3):
            yield self.until(
                lambda n=n: self.stream().addCallback(lambda s: s.failures == n - 1),
                f"failure {n - 1} recorded",
            )
            self.clock.advance(1)
            yield self.until(lambda n=n: len(sink.calls) == n, f"attempt {n}")
        stream = yield self.until(
            lambda: self.stream().addCallback(lambda s: s if s.state == STREAM_FAILING else None),
            "marked failing",
        )
        self.assertEqual(stream.cursor, 0)
        self.assertEqual(stream.lastError, "RuntimeError: down")
        self.clock.advance(86400)
        yield self.quiet()
        self.assertEqual(len(sink.calls), 3)
        # re-enabled: from its cursor, nothing skipped
        yield Deferred.fromCoroutine(runner.workers["test"].enable())
        yield self.until(lambda: len(sink.calls) == 4, "delivered after re-enable")
        first = sink.calls[0][0]
        self.assertEqual(sink.calls[3], [first, first + 1])
        yield self.until(
            lambda: self.stream().addCallback(lambda s: s.cursor == first + 1), "cursor moved"
        )
        # replay from the first event: delivered again
        yield Deferred.fromCoroutine(runner.workers["test"].replay(first))
        yield self.until(lambda: len(sink.calls) == 5, "replayed")
        self.assertEqual(sink.calls[4], [first, first + 1])

    @inlineCallbacks
    def test_goneDisables(self) -> Any:
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        sink = RecordingSink(StreamSpec("test", startAfter=0))
        sink.outcomes.append(SinkGone("HTTP 410 Gone", 410, ""))
        runner = self.runner(sink)
        yield Deferred.fromCoroutine(runner.start())
        stream = yield self.until(
            lambda: self.stream().addCallback(lambda s: s if s.state == STREAM_DISABLED else None),
            "disabled",
        )
        self.assertEqual(stream.cursor, 0)
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")])
        self.clock.advance(3600)
        yield self.quiet()
        self.assertEqual(len(sink.calls), 1)

    @inlineCallbacks
    def test_restartResumesTheRetrySchedule(self) -> Any:
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        sink = RecordingSink(StreamSpec("test", startAfter=0))
        sink.outcomes.append(DeliveryFailed("HTTP 503", 503))
        runner = self.runner(sink, delays=(30,))
        yield Deferred.fromCoroutine(runner.start())
        yield self.until(
            lambda: self.stream().addCallback(lambda s: s.failures == 1), "failure recorded"
        )
        yield Deferred.fromCoroutine(runner.stop())
        self.assertEqual(sink.stopped, 1)
        # a new process: same store, same stream
        self.store = yield self._reopen()
        again = RecordingSink(StreamSpec("test", startAfter=0))
        runner2 = self.runner(again, delays=(30,))
        yield Deferred.fromCoroutine(runner2.start())
        self.clock.advance(29)
        yield self.quiet()
        self.assertEqual(again.calls, [])
        self.clock.advance(1.5)
        yield self.until(lambda: again.calls, "retried at its stored time")
        self.assertEqual(again.calls[0], sink.calls[0])

    @inlineCallbacks
    def _reopen(self) -> Any:
        yield self.store.stop()
        store = syncSQLiteStore(self.path, self.clock)
        self.addCleanup(self.stopStore, store)
        return store

    @inlineCallbacks
    def test_replayWhileDeliveringDiscardsTheStaleOutcome(self) -> Any:
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")])
        sink = RecordingSink(StreamSpec("test", startAfter=0, batchSize=1))
        held: Deferred[Any] = Deferred()
        sink.outcomes.append(held)
        runner = self.runner(sink)
        yield Deferred.fromCoroutine(runner.start())
        yield self.until(lambda: sink.calls, "first delivery in flight")
        first = sink.calls[0][0]
        yield Deferred.fromCoroutine(runner.workers["test"].replay(first))
        held.callback(DeliveryReport(200))
        yield self.until(lambda: len(sink.calls) >= 3, "delivered again from the replay")
        self.assertEqual(sink.calls[:3], [[first], [first], [first + 1]])

    @inlineCallbacks
    def test_slowSinkDoesNotSlowIngest(self) -> Any:
        sink = RecordingSink(StreamSpec("test", startAfter=0, batchSize=1))
        sink.outcomes.append(Deferred())  # never answers
        runner = self.runner(sink)
        yield Deferred.fromCoroutine(runner.start())
        for i in range(20):
            result = yield self.store.addLogs(SN, [punch(i + 1, "2026-04-30 08:00:00")])
            self.assertEqual(result.inserted, 1)
        self.assertEqual(len(sink.calls), 1)

    @inlineCallbacks
    def test_storeOutageIsWaitedOut(self) -> Any:
        """The store failing a read: the stream waits STORE_RETRY_DELAY and goes on."""
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        failures = [StoreUnavailable("down"), StoreUnavailable("still down")]
        listEvents = self.store.listEvents

        def flaky(query: Any) -> Any:
            if failures:
                return fail(failures.pop(0))
            return listEvents(query)

        self.store.listEvents = flaky
        sink = RecordingSink(StreamSpec("test", startAfter=0))
        runner = self.runner(sink)
        yield Deferred.fromCoroutine(runner.start())
        yield self.quiet()
        self.assertEqual((sink.calls, len(failures)), ([], 1))
        self.clock.advance(STORE_RETRY_DELAY)
        yield self.quiet()
        self.assertEqual((sink.calls, len(failures)), ([], 0))
        self.clock.advance(STORE_RETRY_DELAY)
        yield self.until(lambda: sink.calls, "delivered after the outage")
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_filtersAndRefresh(self) -> Any:
        sink = RecordingSink(StreamSpec("doors", types=("door.event",), sn=SN, startAfter=0))
        runner = self.runner(sink)
        yield Deferred.fromCoroutine(runner.start())
        yield self.store.addLogs(
            SN, [punch(1, "2026-04-30 08:00:00"), punch(0, "2026-04-30 08:00:01")]
        )
        yield self.store.addLogs("OTHER", [punch(0, "2026-04-30 08:00:02")])
        yield self.until(lambda: sink.calls, "the door event")
        yield self.quiet()
        self.assertEqual(len(sink.calls), 1)
        self.assertEqual(len(sink.calls[0]), 1)
        # a stream no longer listed stops; a new one starts
        sink.specs = [StreamSpec("all", startAfter=0)]
        yield Deferred.fromCoroutine(runner.refresh())
        self.assertEqual(sorted(runner.workers), ["all"])
        yield self.until(lambda: len(sink.calls) == 2, "the new stream from the start")
        self.assertEqual(len(sink.calls[1]), 3)


class ScheduleTests(TestCase):
    def test_parse(self) -> None:
        schedule = RetrySchedule.parse("5s, 30s,2m,1h,1d,250ms,7")
        self.assertEqual(schedule.delays, (5, 30, 120, 3600, 86400, 0.25, 7))
        for bad in ("", "5x", "0s", "-1s"):
            with self.assertRaises(ValueError):
                RetrySchedule.parse(bad)

    def test_defaultCoversAbout72Hours(self) -> None:
        from tm20.events.sinks import DEFAULT_RETRY_SCHEDULE

        total = RetrySchedule.parse(DEFAULT_RETRY_SCHEDULE).total
        self.assertGreater(total, 71 * 3600)
        self.assertLessEqual(total, 72 * 3600)

    def test_jitter(self) -> None:
        schedule = RetrySchedule((100.0, 200.0), jitter=0.2)
        self.assertEqual(schedule.delay(1, 0.0), 80.0)
        self.assertEqual(schedule.delay(1, 0.5), 100.0)
        self.assertAlmostEqual(schedule.delay(2, 0.999999) or 0, 240.0, places=3)
        self.assertIsNone(schedule.delay(3, 0.5))
        self.assertIsNone(schedule.delay(0, 0.5))
        self.assertEqual(parseDuration("2h"), 7200)
