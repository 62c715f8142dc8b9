"""
What an L{tm20.interfaces.IEventSink} declares and returns, and the retry schedule the runner
applies to every sink.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs


@attrs.frozen
class StreamSpec:
    """
    One delivery stream of a sink.

    @ivar key: unique among all sinks and stable across restarts (its cursor is stored under
        it); start it with the sink's name (C{"erpnext"}, C{"webhook:12"}).
    @ivar types: the event types wanted (concrete names, see
        L{tm20.events.model.expandTypes}); C{None}: all.
    @ivar sn: only this terminal's events; C{None}: all.
    @ivar batchSize: the most events per L{tm20.interfaces.IEventSink.deliver} call.
    @ivar startAfter: where a stream seen for the first time starts: C{None} at the head of
        the log (only new events), C{0} at its beginning.
    @ivar data: anything the sink wants to find again in C{deliver} (not compared).
    """

    key: str
    types: tuple[str, ...] | None = None
    sn: str | None = None
    batchSize: int = 100
    startAfter: int | None = None
    data: Any = attrs.field(default=None, eq=False)


@attrs.frozen
class DeliveryReport:
    """What a successful delivery says about itself (kept with the attempt)."""

    status: int | None = None
    response: str | None = None


class DeliveryFailed(Exception):
    """A delivery failed; it will be retried.  C{status}/C{response} are kept with the attempt."""

    def __init__(self, error: str, status: int | None = None, response: str | None = None):
        super().__init__(error)
        self.error = error
        self.status = status
        self.response = response


class SinkGone(DeliveryFailed):
    """The destination says it will never take events again (HTTP 410): disable the stream."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

#: The default delays between attempts of the same batch: about 72 hours in all.
DEFAULT_RETRY_SCHEDULE = "5s,30s,2m,5m,15m,30m,1h,2h,4h,8h,12h,12h,12h,12h,8h"


def parseDuration(text: str) -> float:
    """C{"90"}, C{"90s"}, C{"5m"}, C{"2h"}, C{"1d"}, C{"250ms"} in seconds.  @raise ValueError."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@attrs.frozen
class RetrySchedule:
    """
    When to try a failed batch again: after the n-th failure, wait C{delays[n-1]} seconds,
    multiplied by a random factor in C{[1 - jitter, 1 + jitter]}.  After the last delay's
    attempt fails too, the stream is marked failing (it keeps its cursor).
    """

    delays: tuple[float, ...]
    jitter: float = 0.2

    @classmethod
    def parse(cls, text: str, jitter: float = 0.2) -> RetrySchedule:
        """From C{"5s,30s,2m,..."}.  @raise ValueError: naming the bad part."""
        parts = [p for p in (s.strip() for s in text.split(",")) if p]
        if not parts:
            raise ValueError("the retry schedule is empty")
        delays = tuple(parseDuration(p) for p in parts)
        if any(d <= 0 for d in delays):
            raise ValueError("retry delays must be positive")
        return cls(delays, jitter)

    @property
    def total(self) -> float:
        """Seconds from the first failure to the last retry (without jitter)."""
        return sum(self.delays)

    def delay(self, failures: int, randomValue: float) -> float | None:
        """
        The wait after C{failures} failed attempts (C{None}: give up, mark failing).

        @param randomValue: uniform in [0, 1) (injected, so tests are deterministic).
        """
        if failures < 1 or failures > len(self.delays):
            return None
        return self.delays[failures - 1] * (1 - self.jitter + 2 * self.jitter * randomValue)


def describeSchedule(delays: Sequence[float]) -> str:
    """C{"5s, 30s, 2m"}: a schedule for logs and documentation."""

    def one(seconds: float) -> str:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"{int(seconds // size)}{unit}"
        return f"{seconds:g}s"

    return ", ".join(one(d) for d in delays)


__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "DeliveryFailed",
    "DeliveryReport",
    "RetrySchedule",
    "SinkGone",
    "StreamSpec",
    "describeSchedule",
    "parseDuration",
]
