"""
Silent terminals: a terminal that sends nothing for longer than its threshold is marked silent,
whether it is connected or not; anything it sends marks it back to normal.

"Sends" means a command of its own (C{reg} and its heartbeat repeats, C{sendlog}, C{senduser},
...): a reply to the server's keep-alive probe does not count, nor does a WebSocket ping.  The
threshold is the terminal's own (C{silentAfter}, set through the API) or the server's
C{--silent-after}; C{0} turns the watch off (for the terminal, or for all).

When it was last heard of comes from memory (every command, no database write), and, for a
terminal not heard of since this process started, from its stored C{lastSeen} (its last
registration).  A sweep on the injected clock compares them with the thresholds, every
L{SilenceWatch.interval} seconds: the terminals and their watch fields read by pages of
L{SilenceWatch.pageSize} (only the columns needed; the metrics' census reuses them), and one
write per terminal that changes state (never one per terminal per sweep).  Terminals that were never
seen, pending or disabled terminals are never silent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tm20.events.model import NewEvent
from tm20.events.payloads import watchEvent
from tm20.model import Terminal, TerminalWatch, WatchedTerminal

__all__ = ["SilenceWatch", "sweepInterval"]


def sweepInterval(silentAfter: float) -> float:
    """How often to sweep: a tenth of the default threshold, between 1 s and 60 s."""
    return max(1.0, min(60.0, silentAfter / 10.0)) if silentAfter > 0 else 60.0


class SilenceWatch:
    """
    Marks terminals silent and recovered (see the module docstring).

    @ivar silent: the C{sn}s marked silent now (as stored).
    """

    log = Logger()
    #: Terminals read per page during a sweep.
    pageSize = 1000

    def __init__(
        self,
        store: Any,
        clock: Any,
        silentAfter: float,
        interval: float | None = None,
    ) -> None:
        """
        @param store: an L{tm20.interfaces.IStore} that is also an L{tm20.interfaces.IWatchStore}.
        @param clock: the reactor or a C{Clock}.
        @param silentAfter: the default threshold, seconds (0: no terminal is watched unless it
            has its own).
        @param interval: seconds between sweeps (L{sweepInterval} when C{None}).
        """
        self.store = store
        self.clock = clock
        self.silentAfter = silentAfter
        self.interval = sweepInterval(silentAfter) if interval is None else interval
        self.silent: set[str] = set()
        #: Called when a sweep starts (L{onStart}), with each page it read (L{onPage}: the
        #: metrics' census reuses the sweep's reads), then once it is over (L{onSwept}).
        self.onStart: Callable[[], object] | None = None
        self.onPage: Callable[[list[WatchedTerminal]], object] | None = None
        self.onSwept: Callable[[], Any] | None = None
        self._heard: dict[str, float] = {}
        self._loop: LoopingCall | None = None
        self._sweeping: Deferred[None] | None = None

    def start(self) -> None:
        """Sweep now and every L{interval} seconds."""
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self) -> None:
        if self._sweeping is None:
            self._sweeping = self.sweep()
            self._sweeping.addErrback(
                lambda f: self.log.warn("silence sweep failed: {error}", error=f.getErrorMessage())
            )
            self._sweeping.addBoth(self._swept)

    def _swept(self, _: object) -> None:
        self._sweeping = None

    def heard(self, sn: str) -> None:
        """Terminal C{sn} sent a command now: remember it, and end its silence if it was silent."""
        now = self.clock.seconds()
        self._heard[sn] = now
        if sn in self.silent:
            self.silent.discard(sn)
            self._write(
                sn, {"silentSince": None}, watchEvent("terminal.recovered", sn)
            ).addCallback(lambda watch: self._recovered(sn, watch))

    def forget(self, sn: str) -> None:
        """Terminal C{sn} was deleted."""
        self._heard.pop(sn, None)
        self.silent.discard(sn)

    def lastHeard(self, terminal: Terminal | WatchedTerminal) -> float | None:
        """When C{terminal} was last heard of (POSIX seconds), or C{None} if never."""
        heard = self._heard.get(terminal.sn)
        seen = terminal.lastSeen.timestamp() if terminal.lastSeen is not None else None
        candidates = [t for t in (heard, seen) if t is not None]
        return max(candidates) if candidates else None

    def thresholdFor(self, watch: TerminalWatch | WatchedTerminal | None) -> float:
        """The silence threshold of a terminal (its own, else the default); 0: not watched."""
        if watch is not None and watch.silentAfter is not None:
            return watch.silentAfter
        return self.silentAfter

    @inlineCallbacks
    def sweep(self) -> Any:
        """
        Compare every terminal's silence with its threshold; mark and unmark.  The terminals
        are read L{pageSize} at a time (the reactor runs between pages); each page goes to
        L{onPage}, then L{onSwept} is called.
        """
        after: str | None = None
        if self.onStart is not None:
            self.onStart()
        while True:
            page: list[WatchedTerminal] = yield self.store.watchPage(after, self.pageSize)
            now = self.clock.seconds()
            for terminal in page:
                if terminal.approved:
                    yield self._check(terminal, now)
            if self.onPage is not None:
                self.onPage(page)
            if len(page) < self.pageSize:
                break
            after = page[-1].sn
        if self.onSwept is not None:
            yield self.onSwept()

    def _check(self, terminal: WatchedTerminal, now: float) -> Deferred[Any] | None:
        isSilent = terminal.silentSince is not None
        threshold = self.thresholdFor(terminal)
        last = self.lastHeard(terminal)
        shouldBe = (
            terminal.active and threshold > 0 and last is not None and now - last >= threshold
        )
        if shouldBe and not isSilent and last is not None:
            return self._markSilent(terminal.sn, now, last, threshold)
        if isSilent and not shouldBe:
            self.silent.discard(terminal.sn)
            sn = terminal.sn
            recovered = watchEvent("terminal.recovered", sn)
            return self._write(sn, {"silentSince": None}, recovered).addCallback(
                lambda watch: self._recovered(sn, watch)
            )
        if isSilent:
            self.silent.add(terminal.sn)
        return None

    @inlineCallbacks
    def _markSilent(self, sn: str, now: float, last: float, threshold: float) -> Any:
        since = datetime.fromtimestamp(now, tz=UTC)
        event = watchEvent(
            "terminal.silent",
            sn,
            lastHeard=datetime.fromtimestamp(last, tz=UTC).isoformat(),
            silentAfter=threshold,
            since=since.isoformat(),
        )
        watch = yield self._write(sn, {"silentSince": since}, event)
        if watch is None:
            return
        self.silent.add(sn)
        self.log.warn(
            "terminal {sn} is silent: nothing received for {seconds:.0f}s (threshold {threshold:g}s)",
            sn=sn,
            seconds=now - last,
            threshold=threshold,
            event="terminal.silent",
        )

    def _recovered(self, sn: str, watch: TerminalWatch | None) -> None:
        if watch is None:
            return
        self.log.info("terminal {sn} is no longer silent", sn=sn, event="terminal.recovered")

    def _write(
        self, sn: str, changes: dict[str, Any], event: NewEvent
    ) -> Deferred[TerminalWatch | None]:
        d: Deferred[TerminalWatch | None] = self.store.updateWatch(sn, changes, [event])

        def failed(f: Any) -> None:
            self.log.warn(
                "could not record the silence state of {sn}: {error}",
                sn=sn,
                error=f.getErrorMessage(),
            )
            return None

        return d.addErrback(failed)
