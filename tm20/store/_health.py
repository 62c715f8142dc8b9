"""
The health of a store, known without asking the database: C{ok}, C{degraded} or C{unhealthy},
with a reason and since when.

  - C{ok}: the store answers and can write.
  - C{degraded}: the database does not answer now (down, frozen, unreachable, locked by another
    process); the server carries on, refuses what needs the database (terminals get
    C{result:false} and resend), and recovers by itself when the database is back.
  - C{unhealthy}: the store cannot write (disk full, read-only or unreadable file): an operator
    must act.

A L{HealthMonitor} keeps the state from I{sources}, each reporting its own condition: a probe
the monitor runs every C{interval} seconds (at most one at a time), and whatever the store reports
(say, the outcome of its writes).  The state is the worst condition among the sources; C{since}
is when it last changed.  A probe that has not answered after C{overdue} seconds makes the store
C{degraded} at once, so that a database that hangs (rather than fails) is noticed.

Reading the state (L{HealthMonitor.current}) does no I/O: C{/health} answers at once whatever
the database does.  Each change of state is logged once (a warning when it worsens, an info line
when the store is C{ok} again), never once per failed call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

OK = "ok"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"

_RANK = {OK: 0, DEGRADED: 1, UNHEALTHY: 2}

#: The source name of the monitor's own probe.
PROBE = "probe"


@attrs.frozen
class StoreHealth:
    """
    The health of a store at one moment.

    @ivar state: C{"ok"}, C{"degraded"} or C{"unhealthy"}.
    @ivar reason: why it is not C{ok} (C{None} when it is).
    @ivar since: when it entered this state, in POSIX seconds.
    """

    state: str
    reason: str | None
    since: float

    @property
    def ok(self) -> bool:
        return self.state == OK

    def asJSON(self) -> dict[str, Any]:
        """C{{"state", "reason", "since"}}, C{since} as ISO 8601 UTC."""
        since = datetime.fromtimestamp(self.since, UTC).isoformat(timespec="seconds")
        return {"state": self.state, "reason": self.reason, "since": since.replace("+00:00", "Z")}


#: A probe: a Deferred firing with C{(state, reason)}; a failure counts as C{degraded}.
Probe = Callable[[], "Deferred[tuple[str, str | None]]"]


class HealthMonitor:
    """
    Keeps a store's L{StoreHealth} (see the module docstring).

    @ivar probes: how many probes were started (for tests).
    """

    log = Logger()

    def __init__(
        self, clock: Any, name: str, probe: Probe, interval: float, overdue: float
    ) -> None:
        """
        @param clock: an C{IReactorTime}.
        @param name: names the store in log lines.
        @param probe: checks the store (see L{Probe}).
        @param interval: seconds between probes.
        @param overdue: seconds after which an unanswered probe makes the store C{degraded}.
        """
        self._clock = clock
        self.name = name
        self._probe = probe
        self.interval = interval
        self.overdue = overdue
        self._conditions: dict[str, tuple[str, str]] = {}
        self._health = StoreHealth(OK, None, clock.seconds())
        self._loop: LoopingCall | None = None
        self._probing = False
        self._stopped = False
        self._overdueTimer: Any = None
        self.probes = 0

    def current(self) -> StoreHealth:
        """The health now."""
        return self._health

    def report(self, source: str, state: str, reason: str | None = None) -> None:
        """
        Set the condition of C{source}: C{OK} clears it.

        @param reason: why it is not C{OK}; required unless it is.
        """
        if state == OK:
            if self._conditions.pop(source, None) is None:
                return
        else:
            if self._conditions.get(source) == (state, reason or state):
                return
            self._conditions[source] = (state, reason or state)
        self._update()

    def _update(self) -> None:
        worst: tuple[str, str | None] = (OK, None)
        for state, reason in self._conditions.values():
            if _RANK[state] > _RANK[worst[0]]:
                worst = (state, reason)
        old = self._health
        if (old.state, old.reason) == worst:
            return
        now = self._clock.seconds()
        if worst[0] == old.state:
            # same state, new reason: keep "since"
            self._health = StoreHealth(worst[0], worst[1], old.since)
            return
        self._health = StoreHealth(worst[0], worst[1], now)
        if worst[0] == OK:
            self.log.info(
                "store {store} ok again after {seconds:.1f}s {previous} ({reason})",
                store=self.name,
                seconds=now - old.since,
                previous=old.state,
                reason=old.reason,
            )
        else:
            self.log.warn(
                "store {store} {state}: {reason}",
                store=self.name,
                state=worst[0],
                reason=worst[1],
            )

    # -- the probe ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Probe now, then every C{interval} seconds until L{stop}."""
        if self._loop is not None:
            return
        self._stopped = False
        if not self._conditions:
            self._health = StoreHealth(OK, None, self._clock.seconds())
        self._loop = LoopingCall(self.probe)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        """Stop probing; the outcome of a probe still running is then ignored (a store that is
        closing its connections fails it, which says nothing of the database)."""
        self._stopped = True
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._overdueTimer is not None and self._overdueTimer.active():
            self._overdueTimer.cancel()
        self._overdueTimer = None

    def probe(self) -> None:
        """Run the probe now, unless one is still running (probes never pile up)."""
        if self._probing:
            return
        self._probing = True
        self.probes += 1
        self._overdueTimer = self._clock.callLater(self.overdue, self._overdueFired)
        try:
            d = self._probe()
        except Exception:
            d = Deferred()
            d.errback(Failure())
        d.addCallbacks(self._probed, self._probeFailed)

    def _overdueFired(self) -> None:
        self._overdueTimer = None
        self.report(PROBE, DEGRADED, f"the database has not answered for {self.overdue:g}s")

    def _probeDone(self) -> None:
        self._probing = False
        if self._overdueTimer is not None and self._overdueTimer.active():
            self._overdueTimer.cancel()
        self._overdueTimer = None

    def _probed(self, result: tuple[str, str | None]) -> None:
        self._probeDone()
        if self._stopped:
            return
        state, reason = result
        self.report(PROBE, state, reason)

    def _probeFailed(self, f: Failure) -> None:
        self._probeDone()
        if self._stopped:
            return
        self.report(PROBE, DEGRADED, f.getErrorMessage())


__all__ = ["DEGRADED", "OK", "PROBE", "UNHEALTHY", "HealthMonitor", "Probe", "StoreHealth"]
