"""
CPython's cyclic garbage collector, set for a server that holds thousands of connections.

Python walks its youngest generation every 700 net allocations of container objects, and every
live object (a full pass) once the objects that survived since the last full pass exceed a
quarter of the rest.  A server taking 10 000 terminals at once keeps every connection's
objects: each full pass walks them all with the reactor stalled (~0.3 s at 5 000 connections),
and the ramp of a reconnect storm triggers one every few hundred registrations.  Measured in
C{bench.scaleout} (10 000 terminals, connect then storm): a third of every worker's CPU was the
collector's, 17 full passes per worker.  Two settings, applied once the server has started and
before it accepts a terminal:

 - the start-up heap (modules, classes, routes, templates, the store's caches) is collected
   once, then frozen (C{gc.freeze}): it lives as long as the process and is never walked again;
 - the youngest generation's threshold is raised (C{--gc-threshold}, 10 000 by default; the
   older generations keep their thresholds), so a full pass is considered every ~1 000 000 net
   allocations instead of every 70 000 — still bounded by Python's quarter rule, so the garbage
   of closed connections is collected as a fleet churns.

C{--gc-threshold 0} leaves Python's collector as it is.
"""

from __future__ import annotations

import gc

from twisted.logger import Logger

log = Logger()


class GarbageCollector:
    """
    The collector's settings for one server process: L{settle} once started, L{release} when
    stopped (both idempotent; L{release} restores what L{settle} found).
    """

    def __init__(self, threshold: int) -> None:
        """
        @param threshold: the youngest generation's threshold (net allocations between two of
            its collections); 0 leaves the collector untouched.
        """
        if threshold < 0:
            raise ValueError(f"the collector's threshold must be 0 or more, not {threshold}")
        self.threshold = threshold
        self._previous: tuple[int, int, int] | None = None

    def settle(self) -> None:
        """Freeze the start-up heap and raise the youngest generation's threshold."""
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

    def release(self) -> None:
        """Undo L{settle}: the frozen objects collectable again, the thresholds as they were."""
        if self._previous is None:
            return
        gc.unfreeze()
        gc.set_threshold(*self._previous)
        self._previous = None
