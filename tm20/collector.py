"""
CPython's cyclic garbage collector, set for a server that holds thousands of connections.

Python walks its youngest generation every 700 net allocations of container objects, and every
live object (a full pass) once the objects that survived since the last full pass exceed a
quarter of the rest.  A server taking 10 000 terminals at once keeps every connection's
objects: each full pass walks them all with the reactor stalled (~0.3 s at 5 000 connections),
and the ramp of a reconnect storm triggers one every few hundred registrations.  Measured in
C{bench.scaleout} (10 000 terminals, connect then storm): a third of every worker's CPU was the
collector's, 18 full passes per worker.  So, once the server has started and before it accepts
a terminal:

 - the start-up heap (modules, classes, routes, templates, the store's caches) is collected
   once, then frozen (C{gc.freeze}): it lives as long as the process and is never walked again;
 - the youngest generation's threshold is raised (C{--gc-threshold}, 10 000 by default; the
   older generations keep their thresholds), so a full pass is considered every ~1 000 000 net
   allocations instead of every 70 000.

Full passes then come rarely, and what a burst of connections leaves behind (the sockets a
reconnect storm replaced, the objects of every handshake) could wait for a long time in the
oldest generation, its memory not reused.  So the server makes full passes itself, around
bursts: it looks every L{CHECK_SECONDS} and, once at least L{MIN_CHURN} terminal sockets have
opened or closed since its last pass, makes one

 - when the burst is over (no socket opened or closed since the previous look), or
 - when as many sockets have closed as half of those open (a storm's dropped sockets, whose
   memory the reconnecting ones can then reuse; or a fleet that never stops churning).

A storm of 10 000 costs two passes (once its sockets have dropped, once it is over) instead of
one every few hundred registrations while it lasts.

C{--gc-threshold 0} leaves Python's collector as it is.
"""

from __future__ import annotations

import gc
import time

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tm20.interfaces import ITerminalRegistry

log = Logger()

#: Seconds between two looks at the terminal sockets opened and closed.
CHECK_SECONDS = 1.0
#: Sockets opened or closed since the last full pass below which none is made.
MIN_CHURN = 500


class GarbageCollector:
    """
    The collector's settings for one server process: L{settle} once started, L{release} when
    stopped (both idempotent; L{release} restores what L{settle} found).
    """

    def __init__(
        self,
        threshold: int,
        clock: IReactorTime | None = None,
        connections: ITerminalRegistry | None = None,
    ) -> None:
        """
        @param threshold: the youngest generation's threshold (net allocations between two of
            its collections); 0 leaves the collector untouched.
        @param clock: schedules the look at C{connections} (none without both).
        @param connections: the terminal connections whose bursts are followed by a full pass.
        """
        if threshold < 0:
            raise ValueError(f"the collector's threshold must be 0 or more, not {threshold}")
        self.threshold = threshold
        self._clock = clock
        self._connections = connections
        self._previous: tuple[int, int, int] | None = None
        self._loop: LoopingCall | None = None
        self._atPass = self._atLook = (0, 0)
        #: Full passes made after a burst.
        self.passes = 0

    def settle(self) -> None:
        """Freeze the start-up heap, raise the youngest generation's threshold."""
        if not self.threshold or self._previous is not None:
            return
        previous = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(self.threshold, previous[1], previous[2])
        self._previous = previous
        log.info(
            "garbage collector: {frozen} start-up objects frozen, young-generation threshold"
            " {threshold} (was {was})",
            frozen=gc.get_freeze_count(),
            threshold=self.threshold,
            was=previous[0],
        )
        connections = self._connections
        if self._clock is not None and connections is not None:
            self._atPass = self._atLook = (connections.opened, connections.closed)
            self._loop = LoopingCall(self.look)
            self._loop.clock = self._clock
            self._loop.start(CHECK_SECONDS, now=False)

    def look(self) -> None:
        """A full pass if a burst of terminal sockets is over, or has closed half of them."""
        connections = self._connections
        if connections is None:
            return
        opened, closed = now = (connections.opened, connections.closed)
        sinceOpened, sinceClosed = opened - self._atPass[0], closed - self._atPass[1]
        quiet = now == self._atLook
        self._atLook = now
        if sinceOpened + sinceClosed < MIN_CHURN:
            return
        if not (quiet or 2 * sinceClosed >= opened - closed):
            return
        started = time.perf_counter()
        found = gc.collect()
        self._atPass = now
        self.passes += 1
        log.info(
            "garbage collector: full pass after {opened} terminal sockets opened and {closed}"
            " closed, {found} objects freed in {ms:.0f} ms",
            opened=sinceOpened,
            closed=sinceClosed,
            found=found,
            ms=(time.perf_counter() - started) * 1000,
        )

    def release(self) -> None:
        """Undo L{settle}: the frozen objects collectable again, the thresholds as they were."""
        if self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None
        if self._previous is None:
            return
        gc.unfreeze()
        gc.set_threshold(*self._previous)
        self._previous = None
