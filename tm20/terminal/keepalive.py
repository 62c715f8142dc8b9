"""
Liveness without WebSocket pings.

TM20 firmware does not answer WebSocket pings, so a missing pong means nothing.  A terminal is
alive while it sends anything; after C{heartbeatInterval} seconds of silence we probe it with an
application command (C{gettime}), and only after C{connectionTimeout} seconds of total silence
we give up on it.

The clock must be monotonic (L{tm20.terminal.monotonic.monotonicClock} of the reactor, as the
terminal factory gives it): silence measured on the wall clock would make a forward step of the
system clock drop every terminal, and a backward step keep silent ones "connected".
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class _Wheel:
    """
    One timer per clock for every L{KeepAlive} on it, instead of one C{DelayedCall} per
    connection: keep-alives wait in buckets of L{resolution} seconds, and the clock wakes the
    wheel for the earliest bucket only.  A bucket is due at its end, so a keep-alive never fires
    early, and at most L{resolution} late.
    """

    resolution = 0.1

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._buckets: dict[int, set[KeepAlive]] = {}
        self._call: IDelayedCall | None = None
        self._callAt: int | None = None

    def add(self, member: KeepAlive, when: float) -> int:
        """Wake C{member} (its C{_tick}) at C{when} or a little after.  @return: its bucket."""
        slot = math.ceil(when / self.resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
        bucket.add(member)
        if self._callAt is None or slot < self._callAt:
            self._schedule(slot)
        return slot

    def remove(self, member: KeepAlive, slot: int) -> None:
        bucket = self._buckets.get(slot)
        if bucket is not None:
            bucket.discard(member)
            if not bucket:
                del self._buckets[slot]
        if not self._buckets and self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
            self._callAt = None

    def _schedule(self, slot: int) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._callAt = slot
        delay = max(0.0, slot * self.resolution - self._clock.seconds())
        self._call = self._clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        self._callAt = None
        now = self._clock.seconds()
        due = [slot for slot in self._buckets if slot * self.resolution <= now]
        for slot in sorted(due):
            for member in self._buckets.pop(slot, ()):
                member._slot = None
                member._tick()
        if self._buckets and self._callAt is None:
            self._schedule(min(self._buckets))


_wheels: weakref.WeakKeyDictionary[Any, _Wheel] = weakref.WeakKeyDictionary()


def _wheelFor(clock: IReactorTime) -> _Wheel:
    wheel = _wheels.get(clock)
    if wheel is None:
        wheel = _wheels[clock] = _Wheel(clock)
    return wheel


class KeepAlive:
    """
    Watches one connection's traffic with an injected clock.

    Every keep-alive on a clock shares one timer (L{_Wheel}); traffic only records the time.

    @param probe: called after C{heartbeatInterval} of silence (and again every interval while
        the silence lasts).
    @param expire: called once after C{connectionTimeout} of silence.
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_expire",
        "_interval",
        "_lastTraffic",
        "_probe",
        "_running",
        "_slot",
        "_timeout",
        "_wheel",
    )

    def __init__(
        self,
        clock: IReactorTime,
        heartbeatInterval: float,
        connectionTimeout: float,
        probe: Callable[[], None],
        expire: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._interval = heartbeatInterval
        self._timeout = connectionTimeout
        self._probe = probe
        self._expire = expire
        self._lastTraffic = clock.seconds()
        self._wheel = _wheelFor(clock)
        self._slot: int | None = None
        self._running = False

    @property
    def silence(self) -> float:
        """Seconds since the last traffic."""
        return self._clock.seconds() - self._lastTraffic

    def start(self) -> None:
        """Begin watching (traffic is counted from now)."""
        self._running = True
        self._lastTraffic = self._clock.seconds()
        self._schedule()

    def touch(self) -> None:
        """The terminal sent something."""
        self._lastTraffic = self._clock.seconds()

    def stop(self) -> None:
        """Stop watching; no more probes or expiry."""
        self._running = False
        if self._slot is not None:
            self._wheel.remove(self, self._slot)
        self._slot = None

    def _schedule(self) -> None:
        if not self._running:
            return
        untilProbe = self._interval - self.silence if self._interval > 0 else float("inf")
        untilExpire = self._timeout - self.silence if self._timeout > 0 else float("inf")
        delay = max(0.0, min(untilProbe, untilExpire))
        if delay == float("inf"):
            return
        # With the silence already past the probe point, wait one interval between probes.
        if untilProbe <= 0:
            delay = max(0.0, min(self._interval, untilExpire))
        self._slot = self._wheel.add(self, self._clock.seconds() + delay)

    def _tick(self) -> None:
        self._slot = None
        if not self._running:
            return
        # A microsecond's tolerance: the wheel's times are floats (and it is never early).
        silence = self.silence + 1e-6
        if self._timeout > 0 and silence >= self._timeout:
            self._running = False
            self._expire()
            return
        if self._interval > 0 and silence >= self._interval:
            self._probe()
        self._schedule()
