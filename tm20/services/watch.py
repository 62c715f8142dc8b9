"""
Terminals that watch themselves: one object the doors call, wiring the three watches
(L{tm20.services.silence}, L{tm20.services.loggaps}, L{tm20.services.clockdrift}) to what
terminals send, and the terminal states sampled by the metrics.

The terminal protocol calls L{Watch.answered} once it has answered a command of a registered
terminal (after the answer, not on its way): the terminal was heard, and an acknowledged
C{sendlog} batch is committed; the C{reg} handler calls L{Watch.registered}; the keep-alive
probe's C{gettime} replies come to L{Watch.clockReply}.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from zope.interface import implementer

from tm20.interfaces import ITerminalWatch
from tm20.metrics import TERMINAL_STATES
from tm20.model import Terminal, WatchedTerminal
from tm20.protocol.messages import Register, SendLog, TerminalMessage
from tm20.services.clockdrift import ClockDrift
from tm20.services.loggaps import LogGaps
from tm20.services.silence import SilenceWatch

__all__ = ["Watch"]


@implementer(ITerminalWatch)
class Watch:
    """
    The watches of one server.

    @ivar silence: the L{SilenceWatch}.
    @ivar gaps: the L{LogGaps}.
    @ivar drift: the L{ClockDrift}.
    @ivar counts: the terminals by state at the last census (for the metrics): C{known},
        C{pending}, C{silent}, C{log_gap}, C{clock_drift}; taken after each silence sweep,
        from what the sweep read.
    @ivar pendingCommands: commands waiting in the durable queue at the last census.
    """

    log = Logger()

    def __init__(
        self,
        store: Any,
        clock: Any,
        registry: Any,
        pulls: Any,
        settime: Callable[[str], Deferred[Any]] | None,
        silentAfter: float,
        driftThreshold: float,
        autoSettime: float,
        defaultTimezone: str | None,
        metrics: Any = None,
        fetchMissingLogs: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.silence = SilenceWatch(store, clock, silentAfter)
        self.gaps = LogGaps(
            store,
            clock,
            pulls,
            lambda sn: registry.get(sn) is not None,
            metrics=metrics,
            fetch=fetchMissingLogs,
        )
        self.drift = ClockDrift(
            store,
            clock,
            driftThreshold,
            autoSettime,
            defaultTimezone,
            settime=settime,
            metrics=metrics,
        )
        self.counts: dict[str, int] = {}
        self.pendingCommands = 0
        self._counting: Counter[str] = Counter()
        self.silence.onStart = self._counting.clear
        self.silence.onPage = self.countPage
        self.silence.onSwept = self.census
        if metrics is not None:
            metrics.sample(
                "tm20_terminals",
                "Terminals by state (connected: now; the others: at the last silence sweep).",
                ("state",),
                self.states,
            )
            metrics.sample(
                "tm20_command_queue_depth",
                "Commands waiting in the durable queue (queued or sent), all terminals, at the"
                " last silence sweep.",
                (),
                lambda: [((), float(self.pendingCommands))],
            )
            metrics.sample(
                "tm20_log_recovery_waiting",
                "Terminals whose missing logs wait to be fetched (plus the one being fetched).",
                (),
                lambda: [((), len(self.gaps.waiting) + (self.gaps.running is not None))],
            )

    def start(self) -> None:
        """Start the silence sweeps (each followed by the census)."""
        self.silence.start()

    def stop(self) -> None:
        """Stop the periodic work."""
        self.silence.stop()
        self.gaps.stop()

    # -- what terminals send ---------------------------------------------------------------------

    def heard(self, sn: str) -> None:
        """A registered terminal sent a command."""
        self.silence.heard(sn)

    def answered(self, sn: str, message: TerminalMessage, reply: Mapping[str, Any] | None) -> None:
        """
        The command C{message} of registered terminal C{sn} was answered C{reply}: it was
        heard; a C{sendlog} acknowledged C{result:true} is committed (nothing is acknowledged
        before), so its C{logindex} sequence is checked (L{logsStored}).
        """
        self.silence.heard(sn)
        if isinstance(message, SendLog) and reply is not None and reply.get("result") is True:
            self.logsStored(sn, message)

    def registered(self, terminal: Terminal, message: Register) -> None:
        """C{reg} of C{terminal} accepted (first or heartbeat)."""
        self.silence.heard(terminal.sn)
        self.drift.observe(terminal.sn, terminal.timezone, message.devinfo.get("time"), "reg")
        self.gaps.registered(terminal.sn, message.devinfo)

    def logsStored(self, sn: str, message: SendLog) -> None:
        """A C{sendlog} batch of C{sn} was committed."""
        self.gaps.sendlog(
            sn, message.logindex, message.count, message.records, len(message.rejected)
        )

    def clockReply(self, sn: str, timezone: str | None, time: object) -> None:
        """A C{gettime} reply of C{sn} said C{time}."""
        self.drift.observe(sn, timezone, time, "gettime")

    def forget(self, sn: str) -> None:
        """Terminal C{sn} was deleted: forget what was kept in memory about it."""
        self.silence.forget(sn)
        self.gaps.forget(sn)
        self.drift.forget(sn)

    # -- census ----------------------------------------------------------------------------------

    def countPage(self, page: list[WatchedTerminal]) -> None:
        """Count one page of a sweep into the census being taken."""
        counting = self._counting
        counting["known"] += len(page)
        for terminal in page:
            if not terminal.approved:
                counting["pending"] += 1
            if terminal.logGap > 0:
                counting["log_gap"] += 1
            if self.drift.flagged(terminal.clockDrift):
                counting["clock_drift"] += 1

    @inlineCallbacks
    def census(self) -> Any:
        """A sweep is over: publish its counts (for L{states}) and count the waiting commands."""
        counts = dict(self._counting)
        counts["silent"] = len(self.silence.silent)
        self.counts = counts
        self._counting.clear()
        try:
            self.pendingCommands = yield self.store.countPendingCommands()
        except Exception as e:
            self.log.debug("could not count the queued commands: {error}", error=str(e))

    def states(self) -> list[tuple[tuple[str, ...], float]]:
        """C{tm20_terminals} samples: the last census, and connected/disconnected now."""
        connected = len(self.registry.connected())
        known = self.counts.get("known", 0)
        values = dict(self.counts)
        values["connected"] = connected
        values["disconnected"] = max(0, known - connected)
        return [((state,), float(values.get(state, 0))) for state in TERMINAL_STATES]
