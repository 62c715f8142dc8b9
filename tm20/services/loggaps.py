"""
Missing logs: what the terminals tell about their logs, compared with what the server holds;
what is missing is fetched through the pull service, one fetch at a time, paced.

What each firmware value is taken to mean (protocol notes, section 5; the firmwares do not
document them further):

  - C{devinfo.usedlog} (C{reg}): the logs held in the terminal's log memory, uploaded or not.
  - C{devinfo.usednewlog}: those of them not uploaded yet (not acknowledged by a C{sendlog}
    reply), which the terminal will push by itself.
  - C{devinfo.logsize}: the capacity of the log memory.
  - C{logindex} (C{sendlog}): the position of the batch's first record in the terminal's log
    sequence, so the next batch is expected at C{logindex + count}.

Rules:

  - At a C{reg} (at most every L{LogGaps.checkInterval} seconds per terminal), with S the logs
    stored for the terminal (punches and door events): C{usedlog - usednewlog - S} logs that the
    terminal counts as uploaded are not on the server.  If positive, that is the gap
    (C{source: usedlog}); its time window is unknown, so the whole log memory is read
    (C{getalllog} without dates; duplicates are ignored).
  - C{usednewlog > 0}: the terminal should push those itself.  If no C{sendlog} arrived
    L{LogGaps.newLogGrace} seconds after that C{reg}, they are fetched with C{getnewlog}
    (C{source: usednewlog}).
  - A C{sendlog} whose C{logindex} is beyond the expected one: C{logindex - expected} records
    were never received (C{source: logindex}); they are fetched with C{getalllog} from the day
    of the last record received to the day of the batch's first record.  A C{logindex} at or
    before the expected one (a resend, a numbering restarted by a reboot or a C{cleanlog}) is no
    gap and restarts the sequence.  Records held in the quarantine count in the sequence.  A firmware that numbered batches rather than records would
    never show a gap this way, never a false one.  The sequence is kept in memory: after a server
    restart, a terminal's first batch starts it again.
  - Counters absent or not integers: nothing is concluded from them (C{logindex} still works).
    Inconsistent (C{usednewlog > usedlog}, negative): ignored, logged at debug level.  When the
    server holds more than the terminal (C{S > usedlog - usednewlog}: the terminal was cleared,
    or its full memory overwrote old logs, C{usedlog >= logsize}) there is no gap to see.

A fetch is bounded by the pull service's page cap (the terminal's C{logsize} / 50 pages and
some slack); one fetch runs at a time for the whole server, L{LogGaps.pace} seconds apart; at
most one fetch per terminal is waiting (a new gap widens it).  Terminals that are not connected
when their turn comes are skipped: their next C{reg} finds the gap again.  After a fetch, the
logs newly stored are subtracted from the gap; what remains stays visible (logs the terminal no
longer holds).  Such a leftover gap is not fetched again unless the counters show it growing
(this is kept in memory: a server restart tries once more).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from tm20.batches import Batcher
from tm20.events.payloads import watchEvent
from tm20.protocol.messages import LogRecord

__all__ = ["Fetch", "LogGaps", "counterGap"]


@attrs.frozen
class Fetch:
    """A fetch to run: C{getnewlog}, or C{getalllog} between two days (C{None}: unbounded)."""

    sn: str
    allLogs: bool
    since: str | None = None
    until: str | None = None
    attempts: int = 0

    def widened(self, other: Fetch) -> Fetch:
        """One fetch covering C{self} and C{other}."""
        if not self.allLogs and not other.allLogs:
            return self
        if not self.allLogs or not other.allLogs:
            return Fetch(self.sn, True)
        since = None
        if self.since is not None and other.since is not None:
            since = min(self.since, other.since)
        until = None
        if self.until is not None and other.until is not None:
            until = max(self.until, other.until)
        return Fetch(self.sn, True, since, until, self.attempts)


def _counter(devinfo: Mapping[str, Any], key: str) -> int | None:
    value = devinfo.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def counterGap(devinfo: Mapping[str, Any], stored: int) -> int | None:
    """
    Logs the terminal counts as uploaded that the server does not hold (see the module
    docstring); C{None} when the counters are absent or inconsistent, 0 when nothing is missing.
    """
    used = _counter(devinfo, "usedlog")
    new = _counter(devinfo, "usednewlog")
    if used is None:
        return None
    new = 0 if new is None else new
    if used < 0 or new < 0 or new > used:
        return None
    return max(0, used - new - stored)


def _day(time: str) -> str:
    return time[:10]


class LogGaps:
    """Finds missing logs and fetches them (see the module docstring)."""

    log = Logger()
    #: Seconds between two comparisons of one terminal's counters.
    checkInterval = 600.0
    #: Seconds a terminal has to push the new logs it announced before they are fetched.
    newLogGrace = 120.0
    #: Seconds between two fetches (the whole server).
    pace = 5.0
    #: Times a fetch is tried again when the terminal is busy with another pull.
    maxAttempts = 3

    def __init__(
        self,
        store: Any,
        clock: Any,
        pulls: Any,
        isConnected: Callable[[str], bool],
        metrics: Any = None,
        fetch: bool = True,
    ) -> None:
        """
        @param store: the L{tm20.interfaces.IStore} and L{tm20.interfaces.IWatchStore}.
        @param pulls: the L{tm20.services.pulls.PullService}.
        @param isConnected: whether a terminal is connected now.
        @param fetch: fetch what is missing (C{False}: gaps are only recorded; the new logs a
            terminal announced are not waited for).
        """
        self.fetch = fetch
        self.store = store
        self.clock = clock
        self.pulls = pulls
        self.isConnected = isConnected
        self.metrics = metrics
        self.waiting: OrderedDict[str, Fetch] = OrderedDict()
        self.running: Fetch | None = None
        self._checkedAt: dict[str, float] = {}
        self._lastBatchAt: dict[str, float] = {}
        self._expected: dict[str, tuple[int, str | None]] = {}
        self._next: Any = None
        self._idle: list[Deferred[None]] = []
        self._timers: set[Any] = set()
        self._stopped = False
        #: C{sn} -> the gap a counter fetch could not close (not fetched again unless it grows).
        self._leftover: dict[str, int] = {}
        #: The logs stored for a terminal: the terminals registered meanwhile counted together.
        self._count: Batcher[str, int] = Batcher(self._countLogs)

    def _countLogs(self, sns: list[str]) -> Deferred[list[int]]:
        d: Deferred[dict[str, int]] = self.store.countLogsOfTerminals(sns)
        return d.addCallback(lambda counts: [counts.get(sn, 0) for sn in sns])

    # -- detection ---------------------------------------------------------------------------

    def registered(self, sn: str, devinfo: Mapping[str, Any]) -> Deferred[None] | None:
        """A C{reg} of C{sn} with these counters (compared at most every L{checkInterval})."""
        now = self.clock.seconds()
        if now - self._checkedAt.get(sn, float("-inf")) < self.checkInterval:
            return None
        if _counter(devinfo, "usedlog") is None:
            return None
        self._checkedAt[sn] = now
        return self._compare(sn, dict(devinfo), now)

    @inlineCallbacks
    def _compare(self, sn: str, devinfo: dict[str, Any], now: float) -> Any:
        try:
            stored = yield self._count(sn)
        except Exception as e:
            self.log.warn("{sn}: could not count its logs: {error}", sn=sn, error=str(e))
            self._checkedAt.pop(sn, None)
            return
        missing = counterGap(devinfo, stored)
        if missing is None:
            self.log.debug(
                "{sn}: inconsistent log counters usedlog={used!r} usednewlog={new!r}",
                sn=sn,
                used=devinfo.get("usedlog"),
                new=devinfo.get("usednewlog"),
            )
            return
        if missing > 0 and missing <= self._leftover.get(sn, 0):
            self.log.debug(
                "{sn}: {missing} logs still missing; a fetch could not find them",
                sn=sn,
                missing=missing,
            )
        elif missing > 0:
            yield self._found(sn, missing, "usedlog", None, None, Fetch(sn, True))
        new = _counter(devinfo, "usednewlog") or 0
        if new > 0 and self.fetch:
            timer = self.clock.callLater(self.newLogGrace, self._graceOver, sn, new, now)
            self._timers.add(timer)

    def _graceOver(self, sn: str, new: int, regAt: float) -> None:
        self._timers = {t for t in self._timers if t.active()}
        if self._lastBatchAt.get(sn, float("-inf")) >= regAt or not self.isConnected(sn):
            return
        self._found(sn, new, "usednewlog", None, None, Fetch(sn, False))

    def sendlog(
        self,
        sn: str,
        logindex: int | None,
        count: int | None,
        records: Sequence[LogRecord],
        rejected: int = 0,
    ) -> Deferred[None] | None:
        """
        A C{sendlog} batch of C{sn} was stored: check the C{logindex} sequence.

        @param rejected: how many records of the batch were quarantined (they count in the
            sequence; their times are unknown).
        """
        self._lastBatchAt[sn] = self.clock.seconds()
        size = len(records) + rejected
        if logindex is None or logindex < 0 or size == 0:
            return None
        times = sorted(r.time for r in records)
        n = count if count is not None and count > 0 else size
        expected = self._expected.get(sn)
        previousTime = expected[1] if expected is not None else None
        self._expected[sn] = (logindex + n, times[-1] if times else previousTime)
        if expected is None or logindex <= expected[0]:
            return None
        missing = logindex - expected[0]
        since = _day(previousTime) if previousTime else None
        until = _day(times[0]) if times else None
        return self._found(sn, missing, "logindex", since, until, Fetch(sn, True, since, until))

    @inlineCallbacks
    def _found(
        self,
        sn: str,
        missing: int,
        source: str,
        since: str | None,
        until: str | None,
        fetch: Fetch,
    ) -> Any:
        at = datetime.fromtimestamp(self.clock.seconds(), tz=UTC)
        try:
            watch = yield self.store.updateWatch(
                sn,
                {
                    "logGap": missing,
                    "logGapSource": source,
                    "logGapSince": at,
                    "logGapFrom": since,
                    "logGapTo": until,
                },
                [
                    watchEvent(
                        "terminal.logs_missing",
                        sn,
                        missing=missing,
                        source=source,
                        **{"from": since, "to": until},
                        fetching=self.fetch,
                    )
                ],
            )
        except Exception as e:
            self.log.warn("{sn}: could not record a log gap: {error}", sn=sn, error=str(e))
            return
        if watch is None:
            return
        self.log.warn(
            "terminal {sn}: {missing} logs missing (from {source}); fetching them",
            sn=sn,
            missing=missing,
            source=source,
            event="terminal.logs_missing",
        )
        if self.fetch:
            self.enqueue(fetch)

    def forget(self, sn: str) -> None:
        """Terminal C{sn} was deleted."""
        self._checkedAt.pop(sn, None)
        self._lastBatchAt.pop(sn, None)
        self._expected.pop(sn, None)
        self._leftover.pop(sn, None)
        self.waiting.pop(sn, None)

    # -- fetching ----------------------------------------------------------------------------

    def enqueue(self, fetch: Fetch) -> None:
        """Add (or widen) the waiting fetch of its terminal, and start fetching."""
        current = self.waiting.get(fetch.sn)
        self.waiting[fetch.sn] = fetch if current is None else current.widened(fetch)
        self._pump()

    def busy(self, sn: str) -> bool:
        """C{True} while a fetch of C{sn}'s missing logs runs or waits."""
        return sn in self.waiting or (self.running is not None and self.running.sn == sn)

    def idle(self) -> Deferred[None]:
        """A L{Deferred} firing once nothing is running or waiting (for tests and shutdown)."""
        d: Deferred[None] = Deferred()
        if self.running is None and not self.waiting:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    def stop(self) -> None:
        """Forget what is waiting (a running fetch ends by itself)."""
        self._stopped = True
        self.waiting.clear()
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None

    def _pump(self) -> None:
        if self.running is not None or self._next is not None or self._stopped:
            return
        while self.waiting:
            sn, fetch = self.waiting.popitem(last=False)
            if self.isConnected(sn):
                self.running = fetch
                self._run(fetch).addBoth(self._ran)
                return
        for d in self._idle:
            d.callback(None)
        self._idle = []

    def _ran(self, _: object) -> None:
        self.running = None
        if self._stopped:
            return
        self._next = self.clock.callLater(self.pace, self._paced)

    def _paced(self) -> None:
        self._next = None
        self._pump()

    @inlineCallbacks
    def _run(self, fetch: Fetch) -> Any:
        from tm20.services.pulls import PullBusyError

        sn = fetch.sn
        try:
            result = yield self.pulls.pullLogs(sn, fetch.allLogs, fetch.since, fetch.until)
        except PullBusyError:
            if fetch.attempts + 1 < self.maxAttempts:
                retry = attrs.evolve(fetch, attempts=fetch.attempts + 1)
                current = self.waiting.get(sn)
                self.waiting[sn] = retry if current is None else retry.widened(current)
            return
        except Exception as e:
            if self.metrics is not None:
                self.metrics.logRecoveries.labels("failed").inc()
            self.log.warn("{sn}: fetching missing logs failed: {error}", sn=sn, error=str(e))
            return
        if self.metrics is not None:
            self.metrics.logRecoveries.labels("ok").inc()
            self.metrics.logsRecovered.inc(result.inserted)
        try:
            watch = yield self.store.getWatch(sn)
            gap = watch.logGap if watch is not None else 0
            remaining = max(0, gap - result.inserted)
            changes: dict[str, Any] = {
                "logGap": remaining,
                "logsRecovered": (watch.logsRecovered if watch is not None else 0)
                + result.inserted,
                "lastRecoveryAt": datetime.fromtimestamp(self.clock.seconds(), tz=UTC),
            }
            if watch is not None and watch.logGapSource == "usedlog" and fetch.allLogs:
                self._leftover[sn] = remaining
            if remaining == 0:
                changes.update(logGapSource=None, logGapSince=None, logGapFrom=None, logGapTo=None)
            recovered = watchEvent(
                "terminal.logs_recovered",
                sn,
                received=result.received,
                recovered=result.inserted,
                remaining=remaining,
            )
            yield self.store.updateWatch(sn, changes, [recovered])
        except Exception as e:
            self.log.warn("{sn}: could not record recovered logs: {error}", sn=sn, error=str(e))
            return
        self.log.info(
            "terminal {sn}: fetched {received} logs, {inserted} were missing; {remaining} still"
            " missing",
            sn=sn,
            received=result.received,
            inserted=result.inserted,
            remaining=remaining,
            event="terminal.logs_recovered",
        )
