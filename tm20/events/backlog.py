"""
How far behind the event sinks (webhooks, sink plugins) are, for the metrics: measured every
L{SinkBacklog.interval} seconds from the streams' cursors the sink runner keeps in memory, with
small reads: the last event id, and per stream that is behind, its oldest undelivered event.

  - C{tm20_event_sinks{state}}: streams by state (C{active}, C{failing}, C{disabled});
  - C{tm20_event_sink_backlog_events{state}}: for the stream furthest behind among those in
    that state, the events written since the oldest one it has not delivered (of the types and
    terminal it wants): an upper bound of what it still has to deliver, 0 when up to date;
  - C{tm20_event_sink_lag_seconds{state}}: the age of that oldest undelivered event.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tm20.events.model import STREAM_STATES, EventQuery

__all__ = ["SinkBacklog"]


class SinkBacklog:
    """Measures the sinks' backlog and lag (see the module docstring)."""

    log = Logger()
    #: Seconds between two measures.
    interval = 30.0

    def __init__(self, store: Any, clock: Any, runner: Any, metrics: Any) -> None:
        """
        @param store: the L{tm20.interfaces.IEventStore}.
        @param runner: the L{tm20.events.runner.SinkRunner} (its workers' streams).
        @param metrics: the L{tm20.metrics.Metrics} to publish in.
        """
        self.store = store
        self.clock = clock
        self.runner = runner
        self.streams: dict[str, int] = dict.fromkeys(STREAM_STATES, 0)
        self.backlog: dict[str, int] = dict.fromkeys(STREAM_STATES, 0)
        self.lag: dict[str, float] = dict.fromkeys(STREAM_STATES, 0.0)
        self._loop: LoopingCall | None = None
        for name, documentation, values in (
            (
                "tm20_event_sinks",
                "Event delivery streams (webhooks, sink plugins) by state.",
                self.streams,
            ),
            (
                "tm20_event_sink_backlog_events",
                "Events written since the oldest one not yet delivered by the stream furthest"
                " behind (an upper bound of its backlog), by the streams' state.",
                self.backlog,
            ),
            (
                "tm20_event_sink_lag_seconds",
                "Age of the oldest event not yet delivered by the stream furthest behind, by"
                " the streams' state (0: up to date).",
                self.lag,
            ),
        ):
            metrics.sample(
                name,
                documentation,
                ("state",),
                lambda values=values: [((state,), float(values[state])) for state in STREAM_STATES],
            )

    def start(self) -> None:
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self) -> Any:
        d = self.measure()
        d.addErrback(lambda f: self.log.debug("sink backlog: {e}", e=f.getErrorMessage()))
        return d

    @inlineCallbacks
    def measure(self) -> Any:
        """Per stream, its oldest undelivered event (of the types and terminal it wants)."""
        workers = [w for w in list(self.runner.workers.values()) if w.stream is not None]
        lastId = yield self.store.lastEventId()
        now = self.clock.seconds()
        counts = dict.fromkeys(STREAM_STATES, 0)
        backlog = dict.fromkeys(STREAM_STATES, 0)
        lag = dict.fromkeys(STREAM_STATES, 0.0)
        for worker in workers:
            stream, spec = worker.stream, worker.spec
            state = stream.state if stream.state in counts else STREAM_STATES[0]
            counts[state] += 1
            if stream.cursor >= lastId:
                continue
            oldest = yield self.store.listEvents(
                EventQuery(after=stream.cursor, types=spec.types, sn=spec.sn, limit=1)
            )
            if not oldest:
                continue
            backlog[state] = max(backlog[state], lastId - oldest[0].id + 1)
            lag[state] = max(lag[state], now - oldest[0].createdAt.timestamp())
        self.streams.update(counts)
        self.backlog.update(backlog)
        self.lag.update(lag)
