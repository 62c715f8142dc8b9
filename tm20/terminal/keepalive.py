"""
Liveness without WebSocket pings.

TM20 firmware does not answer WebSocket pings, so a missing pong means nothing.  A terminal is
alive while it sends anything; after C{heartbeatInterval} seconds of silence we probe it with an
application command (C{gettime}), and only after C{connectionTimeout} seconds of total silence
we give up on it.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class KeepAlive:
    """
    Watches one connection's traffic with an injected clock.

    @param probe: called after C{heartbeatInterval} of silence (and again every interval while
        the silence lasts).
    @param expire: called once after C{connectionTimeout} of silence.
    """

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
        self._call: IDelayedCall | None = None
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
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

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
        self._call = self._clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._call = None
        if not self._running:
            return
        silence = self.silence
        if self._timeout > 0 and silence >= self._timeout:
            self._running = False
            self._expire()
            return
        if self._interval > 0 and silence >= self._interval:
            self._probe()
        self._schedule()
