"""
One warning per store outage, not one per refused call.

While the store is unavailable every batch a terminal sends is refused (the terminal resends it
later): thousands of refusals in a few seconds, each of which used to be logged.  L{OutageLog}
logs the first refusal as the start of an outage and the next success as its end, with how many
calls were refused in between and for how long.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger


class OutageLog:
    """
    Counts the calls refused during one outage of the store and logs its start and its end.

    @ivar refused: calls refused in the current outage (0 when there is none).
    @ivar items: what those calls carried (logs of refused batches, say).
    @ivar outages: outages seen so far.
    """

    log = Logger()

    def __init__(self, what: str, clock: Any) -> None:
        """
        @param what: what is refused, plural, for the log lines (C{"log batches"}).
        @param clock: an C{IReactorTime}, to time the outage.
        """
        self.what = what
        self._clock = clock
        self.refused = 0
        self.items = 0
        self.outages = 0
        self._since = 0.0

    @property
    def ongoing(self) -> bool:
        """C{True} between a refusal and the next success."""
        return self.refused > 0

    def refusedOne(self, items: int, error: str) -> None:
        """A call carrying C{items} was refused because the store is unavailable."""
        if not self.ongoing:
            self.outages += 1
            self._since = self._clock.seconds()
            self.log.warn(
                "store unavailable, refusing {what}: {error}", what=self.what, error=error
            )
        self.refused += 1
        self.items += items

    def succeeded(self) -> None:
        """A call succeeded: the outage, if any, is over."""
        if not self.ongoing:
            return
        self.log.warn(
            "store available again: refused {refused} {what} ({items} items) in {seconds:.1f}s",
            what=self.what,
            refused=self.refused,
            items=self.items,
            seconds=self._clock.seconds() - self._since,
        )
        self.refused = 0
        self.items = 0


__all__ = ["OutageLog"]
