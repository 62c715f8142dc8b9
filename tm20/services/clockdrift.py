"""
Clock drift: the terminal's clock (C{devinfo.time} in C{reg}, C{time} in a C{gettime} reply)
against the server's, both as wall-clock time in the terminal's time zone (its own, else
C{--timezone}, else the server's).

The drift is the terminal's time minus the server's, in seconds (positive: the terminal is
ahead); a C{reg} is answered within milliseconds, and the terminal's time has whole seconds, so
a drift within a couple of seconds is noise.  It is kept in memory at every observation and
written to the terminal's watch row (visible in the API) when first seen by this process, when
it crosses the threshold either way, and otherwise at most every L{ClockDrift.recordInterval}
seconds.  Past C{--clock-drift-threshold} the terminal is flagged (C{terminal.clock_drift}).
With C{--auto-settime-drift SECONDS} (0: off), a drift larger than that queues a C{settime}
(the terminal's local time now) through the durable command queue, at most once per
L{ClockDrift.correctionInterval} per terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from tm20.batches import Batcher
from tm20.events.payloads import watchEvent
from tm20.protocol.timefmt import parseTime

__all__ = ["ClockDrift", "driftSeconds"]


def driftSeconds(terminalTime: str, nowPosix: float, tz: str | None) -> float:
    """
    The terminal's clock minus the server's, in seconds.

    @param terminalTime: the terminal's C{YYYY-MM-DD HH:MM:SS} (its wall clock).
    @param nowPosix: the server's time now.
    @param tz: the terminal's IANA time zone (C{None}: the server's local zone).
    @raise ValueError: C{terminalTime} is not a valid date-time, or C{tz} is unknown.
    """
    theirs = parseTime(terminalTime)
    try:
        zone = ZoneInfo(tz) if tz else None
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"unknown time zone: {tz!r}") from e
    ours = datetime.fromtimestamp(nowPosix, zone).replace(tzinfo=None)
    return (theirs - ours).total_seconds()


class ClockDrift:
    """
    Records drift, flags it past a threshold, and optionally corrects it (module docstring).

    @ivar drift: C{sn} -> the latest drift seen by this process.
    """

    log = Logger()
    #: Seconds between two writes of an unremarkable drift of one terminal.
    recordInterval = 600.0
    #: Seconds between two corrections of one terminal.
    correctionInterval = 3600.0

    def __init__(
        self,
        store: Any,
        clock: Any,
        threshold: float,
        autoSettime: float = 0.0,
        defaultTimezone: str | None = None,
        settime: Callable[[str], Deferred[Any]] | None = None,
        metrics: Any = None,
    ) -> None:
        """
        @param store: the L{tm20.interfaces.IWatchStore}.
        @param threshold: seconds of drift past which a terminal is flagged (0: never).
        @param autoSettime: seconds of drift past which its clock is set (0: never).
        @param settime: queues a C{settime} for a terminal (the durable queue).
        """
        self.store = store
        self.clock = clock
        self.threshold = threshold
        self.autoSettime = autoSettime
        self.defaultTimezone = defaultTimezone
        self.settime = settime
        self.metrics = metrics
        self.drift: dict[str, float] = {}
        self._recorded: dict[str, tuple[float, bool]] = {}
        self._corrected: dict[str, float] = {}
        #: Watch writes: those asked while one is written go together in the next.
        self._write: Batcher[tuple[str, dict[str, Any], list[Any]], bool] = Batcher(
            lambda changes: self.store.updateWatches(changes)
        )

    def forget(self, sn: str) -> None:
        """Terminal C{sn} was deleted."""
        self.drift.pop(sn, None)
        self._recorded.pop(sn, None)
        self._corrected.pop(sn, None)

    def flagged(self, drift: float | None) -> bool:
        """C{True} when C{drift} is past the threshold."""
        return drift is not None and self.threshold > 0 and abs(drift) > self.threshold

    def observe(
        self, sn: str, timezone: str | None, terminalTime: object, source: str
    ) -> Deferred[None] | None:
        """
        The terminal C{sn} said its clock reads C{terminalTime} now.

        @param source: C{reg} or C{gettime} (logged).
        @return: a L{Deferred} when something is written or queued, else C{None}.
        """
        if not isinstance(terminalTime, str):
            return None
        now = self.clock.seconds()
        try:
            drift = driftSeconds(terminalTime, now, timezone or self.defaultTimezone)
        except ValueError:
            self.log.debug(
                "{sn}: unreadable terminal time {time!r}", sn=sn, time=str(terminalTime)[:40]
            )
            return None
        self.drift[sn] = drift
        flagged = self.flagged(drift)
        last = self._recorded.get(sn)
        correct = (
            self.autoSettime > 0
            and self.settime is not None
            and abs(drift) > self.autoSettime
            and now - self._corrected.get(sn, float("-inf")) >= self.correctionInterval
        )
        if not correct and last is not None and last[1] == flagged:
            if now - last[0] < self.recordInterval:
                return None
        self._recorded[sn] = (now, flagged)
        wasFlagged = None if last is None else last[1]
        return self._record(sn, drift, flagged, wasFlagged, now, source, correct)

    @inlineCallbacks
    def _record(
        self,
        sn: str,
        drift: float,
        flagged: bool,
        wasFlagged: bool | None,
        now: float,
        source: str,
        correct: bool,
    ) -> Any:
        """@param wasFlagged: the state last recorded by this process (C{None}: none)."""
        at = datetime.fromtimestamp(now, tz=UTC)
        changes: dict[str, Any] = {"clockDrift": drift, "clockCheckedAt": at}
        if correct:
            self._corrected[sn] = now
            changes["clockCorrectedAt"] = at
        newlyFlagged = flagged and not wasFlagged
        events = []
        if newlyFlagged:
            events.append(
                watchEvent(
                    "terminal.clock_drift",
                    sn,
                    drift=drift,
                    source=source,
                    threshold=self.threshold,
                    correcting=correct,
                )
            )
        try:
            known = yield self._write((sn, changes, events))
        except Exception as e:
            self.log.warn("could not record the clock drift of {sn}: {error}", sn=sn, error=str(e))
            self._recorded.pop(sn, None)
            return
        if not known:
            return
        if newlyFlagged:
            self.log.warn(
                "terminal {sn} clock is {drift:+.0f}s off (from {source}; threshold {threshold:g}s)",
                sn=sn,
                drift=drift,
                source=source,
                threshold=self.threshold,
                event="terminal.clock_drift",
            )
        elif wasFlagged and not flagged:
            self.log.info("terminal {sn} clock is within {t:g}s again", sn=sn, t=self.threshold)
        if correct and self.settime is not None:
            self.log.info("setting the clock of {sn} ({drift:+.0f}s off)", sn=sn, drift=drift)
            if self.metrics is not None:
                self.metrics.clockCorrections.inc()
            try:
                yield self.settime(sn)
            except Exception as e:
                self.log.warn("could not queue settime for {sn}: {error}", sn=sn, error=str(e))
