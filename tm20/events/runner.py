"""
The sink runner: feeds every stream of every L{tm20.interfaces.IEventSink} from the event log,
behind the stream's own durable cursor.

Per stream, one loop (L{StreamWorker}): read the next batch after the cursor (the events the
stream wants, in id order), hand it to the sink, and record the attempt and the outcome in one
store transaction:

  - delivered: the cursor moves to the batch's last id;
  - failed: the same batch is tried again after the next delay of the L{RetrySchedule} (with
    jitter), never a later one first; when the schedule is exhausted the stream is marked
    C{failing} and stops, keeping its cursor (nothing is skipped) until it is re-enabled or
    replayed;
  - L{SinkGone} (HTTP 410 for webhooks): the stream is C{disabled}.

The retry state (failures, next attempt time, first failure) is stored, so a restart resumes the
schedule where it was.  Ingest never waits for a sink: a slow or dead destination only grows
its stream's lag.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredList, maybeDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from tm20.events.feed import EventFeed
from tm20.events.model import (
    STREAM_ACTIVE,
    STREAM_DISABLED,
    STREAM_FAILING,
    EventQuery,
    SinkAttempt,
    SinkStream,
)
from tm20.events.sinks import DeliveryFailed, DeliveryReport, RetrySchedule, SinkGone, StreamSpec
from tm20.store._rows import utcFromSeconds

#: Seconds a worker waits after the store failed it (database down) before trying again.
STORE_RETRY_DELAY = 2.0

#: Seconds L{SinkRunner.stop} waits for the streams' last steps.
STOP_TIMEOUT = 5.0


class StreamWorker:
    """Delivers one stream (see the module docstring)."""

    log = Logger()

    def __init__(self, runner: SinkRunner, sink: Any, spec: StreamSpec) -> None:
        self.runner = runner
        self.sink = sink
        self.spec = spec
        self.stream: SinkStream | None = None
        self._running = False
        self._wakeup: Deferred[None] | None = None
        #: bumped by a replay or re-enable: an attempt in flight then is not recorded
        self._generation = 0
        self._loop: Deferred[None] | None = None
        self.delivering = False
        #: C{(after, spec, Deferred of the events after it)} read while a batch is delivered
        self._prefetch: tuple[int, StreamSpec, Deferred[list[Any]]] | None = None
        #: the write of the last delivered batch, still in progress
        self._recording: Deferred[Any] | None = None

    @property
    def key(self) -> str:
        return self.spec.key

    def start(self) -> None:
        self._running = True
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(
            lambda f: self.log.failure("sink stream {key} stopped", f, key=self.key)
        )

    def stop(self) -> Deferred[None]:
        self._running = False
        self.poke()
        loop = self._loop
        if loop is None or loop.called:
            return Deferred.fromCoroutine(_none())
        done: Deferred[None] = Deferred()
        loop.addBoth(lambda result: done.callback(None) if not done.called else None)
        return done

    async def _flushQuietly(self) -> None:
        try:
            await self._flushRecord()
        except Exception:
            pass  # the store failed it: the change below is written after it, or fails too

    def poke(self) -> None:
        """Wake the loop now (new spec, replay, re-enable, stop)."""
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup.called:
            wakeup.cancel()

    async def replay(self, fromId: int) -> SinkStream | None:
        """Deliver again from event C{fromId} on: cursor C{fromId - 1}, active, no retry due."""
        self._generation += 1
        self._prefetch = None
        await self._flushQuietly()
        stream: SinkStream | None = await self.runner.store.updateSinkStream(
            self.key,
            {
                "cursor": max(fromId - 1, 0),
                "state": STREAM_ACTIVE,
                "failures": 0,
                "retryAt": None,
                "failingSince": None,
                "lastError": None,
            },
        )
        self.stream = stream
        self.poke()
        return stream

    async def enable(self) -> SinkStream | None:
        """Make a failing or disabled stream active again (from its cursor), retrying now."""
        self._generation += 1
        await self._flushQuietly()
        stream: SinkStream | None = await self.runner.store.updateSinkStream(
            self.key,
            {"state": STREAM_ACTIVE, "failures": 0, "retryAt": None, "failingSince": None},
        )
        self.stream = stream
        self.poke()
        return stream

    async def _sleep(self, seconds: float | None, feed: bool, since: int | None = None) -> None:
        """Until C{seconds} pass, a poke, or (with C{feed}) new events since C{since}."""
        runner = self.runner
        if feed:
            d = runner.feed.wait(seconds, since)
        else:
            d = deferLater(runner.clock, seconds if seconds is not None else 3600.0, lambda: None)
        self._wakeup = d
        try:
            await d
        except CancelledError:
            pass
        finally:
            if self._wakeup is d:
                self._wakeup = None

    def _read(self, after: int, spec: StreamSpec) -> Deferred[list[Any]]:
        d: Deferred[list[Any]] = self.runner.store.listEvents(
            EventQuery(after=after, types=spec.types, sn=spec.sn, limit=spec.batchSize)
        )
        return d

    async def _nextBatch(self, cursor: int, spec: StreamSpec) -> list[Any]:
        """The batch after C{cursor}: the prefetched one when it matches and is not empty."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None and prefetch[0] == cursor and prefetch[1] is spec:
            try:
                events: list[Any] = await prefetch[2]
            except Exception:
                events = []
            if isinstance(events, list) and events:
                return events
        events = await self._read(cursor, spec)
        return events

    async def _flushRecord(self) -> None:
        """Wait for the write of the last delivered batch (it raises if that write failed)."""
        recording, self._recording = self._recording, None
        if recording is not None:
            await recording

    async def _run(self) -> None:
        while self._running:
            try:
                await self._step()
            except CancelledError:
                continue
            except Exception as e:
                self.log.warn(
                    "sink stream {key}: the store failed ({error}); trying again",
                    key=self.key,
                    error=e,
                )
                await self._sleep(STORE_RETRY_DELAY, feed=False)
        try:
            await self._flushRecord()
        except Exception as e:
            self.log.warn(
                "sink stream {key}: saving its cursor failed ({error}); the last batch will"
                " be delivered again",
                key=self.key,
                error=e,
            )

    async def _step(self) -> None:
        runner = self.runner
        if self.stream is None:
            self.stream = await runner.store.openSinkStream(self.key, self.spec.startAfter)
        stream = self.stream
        assert stream is not None
        if stream.state != STREAM_ACTIVE:
            await self._sleep(None, feed=False)  # until replayed or re-enabled
            fresh: SinkStream | None = await runner.store.getSinkStream(self.key)
            if fresh is not None:
                self.stream = fresh
            return
        now = runner.clock.seconds()
        if stream.retryAt is not None and stream.retryAt.timestamp() > now:
            await self._sleep(stream.retryAt.timestamp() - now, feed=False)
            return
        spec = self.spec
        version = runner.feed.version
        events = await self._nextBatch(stream.cursor, spec)
        if not self._running or self.stream is not stream:
            return
        if not events:
            await self._sleep(None, feed=True, since=version)
            return
        generation = self._generation
        started = runner.clock.seconds()
        self.delivering = True
        delivering = maybeDeferred(self.sink.deliver, spec, events)
        # read the batch after this one meanwhile: used if this one is delivered
        prefetch = self._read(events[-1].id, spec)
        prefetch.addErrback(lambda _: None)  # not awaited when the delivery fails: no noise
        self._prefetch = (events[-1].id, spec, prefetch)
        try:
            report = await delivering
            error: BaseException | None = None
        except CancelledError:
            raise
        except Exception as e:
            report, error = None, e
        finally:
            self.delivering = False
        if error is not None or generation != self._generation:
            self._prefetch = None
        if generation != self._generation:
            return  # replayed or re-enabled meanwhile: this outcome no longer applies
        finished = runner.clock.seconds()
        attempt = SinkAttempt(
            stream=self.key,
            at=utcFromSeconds(started),
            firstEvent=events[0].id,
            lastEvent=events[-1].id,
            events=len(events),
            ok=error is None,
            latencyMs=round((finished - started) * 1000.0, 3),
            status=(
                report.status
                if isinstance(report, DeliveryReport)
                else getattr(error, "status", None)
            ),
            error=None if error is None else _describe(error),
            response=(
                report.response
                if isinstance(report, DeliveryReport)
                else getattr(error, "response", None)
            ),
        )
        changes = self.runner.outcome(stream, error, finished, events[-1].id)
        await self._flushRecord()  # attempts are recorded in order
        if generation != self._generation:
            return
        if error is None:
            # The cursor moves in memory now and its write completes while the next batch is
            # read and delivered (awaited before the next write, a replay, or stopping).  If
            # the write fails, the stored cursor is behind: a restart delivers again, nothing
            # is skipped.
            self.stream = attrs.evolve(
                stream,
                cursor=events[-1].id,
                failures=0,
                retryAt=None,
                failingSince=None,
                lastError=None,
            )
            self._recording = runner.store.recordSinkAttempt(attempt, changes)
            runner.delivered(self.key, events, finished)
            return
        updated: SinkStream | None = await runner.store.recordSinkAttempt(attempt, changes)
        if generation != self._generation:
            return
        if updated is not None:
            self.stream = updated
        else:
            state = changes.get("state", stream.state)
            self.log.warn(
                "sink stream {key}: delivery of events {first}-{last} failed ({error}); {next}",
                key=self.key,
                first=events[0].id,
                last=events[-1].id,
                error=attempt.error,
                next=(
                    "disabled"
                    if state == STREAM_DISABLED
                    else "marked failing: replay or re-enable it"
                    if state == STREAM_FAILING
                    else f"retry {changes.get('failures')} at {changes.get('retryAt')}"
                ),
            )


async def _none() -> None:
    return None


def _describe(error: BaseException) -> str:
    if isinstance(error, DeliveryFailed):
        return error.error
    return f"{type(error).__name__}: {error}"


class SinkRunner:
    """
    Runs the streams of C{sinks}.

    @ivar workers: the running L{StreamWorker}s by stream key.
    @ivar onDelivered: called with C{(key, events, when)} after each delivered batch (metrics,
        benchmarks).
    """

    log = Logger()

    def __init__(
        self,
        store: Any,
        clock: Any,
        sinks: Sequence[Any],
        feed: EventFeed,
        schedule: RetrySchedule,
        context: Any = None,
        randomValue: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.clock = clock
        self.sinks = list(sinks)
        self.feed = feed
        self.schedule = schedule
        self.context = context
        self.randomValue = randomValue
        self.workers: dict[str, StreamWorker] = {}
        self.onDelivered: list[Callable[[str, list[Any], float], object]] = []
        self._started = False

    async def start(self) -> None:
        """Start every sink, then its streams."""
        self._started = True
        for sink in self.sinks:
            try:
                await maybeDeferred(sink.start, self.context)
            except Exception:
                self.log.failure("event sink {name} failed to start", name=_name(sink))
        await self.refresh()

    async def refresh(self) -> None:
        """Ask every sink for its streams again; start new ones, stop those no longer listed."""
        if not self._started:
            return
        wanted: dict[str, tuple[Any, StreamSpec]] = {}
        for sink in self.sinks:
            try:
                specs = await maybeDeferred(sink.streams)
            except Exception:
                self.log.failure("event sink {name}: listing its streams failed", name=_name(sink))
                # keep its running streams as they are
                for key, worker in self.workers.items():
                    if worker.sink is sink:
                        wanted[key] = (sink, worker.spec)
                continue
            for spec in specs:
                wanted[spec.key] = (sink, spec)
        for key in list(self.workers):
            if key not in wanted:
                await self.workers.pop(key).stop()
        for key, (sink, spec) in wanted.items():
            existing = self.workers.get(key)
            if existing is None:
                worker = StreamWorker(self, sink, spec)
                self.workers[key] = worker
                worker.start()
            elif existing.spec != spec or existing.spec.data is not spec.data:
                existing.spec = spec
                existing.poke()

    async def stop(self) -> None:
        """
        Stop every stream, then every sink (which should abandon what it has in flight: the
        batch is delivered again at the next start), and wait up to L{STOP_TIMEOUT} seconds
        for the streams' last steps.
        """
        self._started = False
        workers, self.workers = list(self.workers.values()), {}
        loops = [worker.stop() for worker in workers]
        for sink in self.sinks:
            try:
                await maybeDeferred(sink.stop)
            except Exception:
                self.log.failure("event sink {name} failed to stop", name=_name(sink))
        if loops:
            waiting = DeferredList(loops, consumeErrors=True)
            waiting.addTimeout(STOP_TIMEOUT, self.clock)
            try:
                await waiting
            except Exception:
                self.log.warn("some event sink streams did not stop in time")

    def outcome(
        self, stream: SinkStream, error: BaseException | None, now: float, lastEventId: int
    ) -> dict[str, Any]:
        """
        The changes to C{stream} after an attempt (of a batch ending with C{lastEventId}) that
        ended at C{now} (see the module docstring).
        """
        if error is None:
            return {
                "cursor": lastEventId,
                "failures": 0,
                "retryAt": None,
                "failingSince": None,
                "lastError": None,
            }
        failures = stream.failures + 1
        failingSince: datetime = stream.failingSince or utcFromSeconds(now)
        changes: dict[str, Any] = {
            "failures": failures,
            "failingSince": failingSince,
            "lastError": _describe(error),
        }
        if isinstance(error, SinkGone):
            changes.update(state=STREAM_DISABLED, retryAt=None)
            return changes
        delay = self.schedule.delay(failures, self.randomValue())
        if delay is None:
            changes.update(state=STREAM_FAILING, retryAt=None)
        else:
            changes["retryAt"] = utcFromSeconds(now + delay)
        return changes

    def delivered(self, key: str, events: list[Any], when: float) -> None:
        for observer in list(self.onDelivered):
            try:
                observer(key, events, when)
            except Exception:
                self.log.failure("delivery observer failed")


def _name(sink: Any) -> str:
    return str(getattr(sink, "name", type(sink).__name__))


__all__ = ["STORE_RETRY_DELAY", "SinkRunner", "StreamWorker"]
