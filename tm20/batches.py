"""
Requests answered together: the follow-up work of many registrations written in one store call.

A L{Batcher} hands its store call the requests made while its previous call ran (at most
C{limit} at a time), so a storm of registrations costs one transaction per batch, not one per
terminal; a lone request is written at once.  Each caller gets its own answer (or the batch's
failure).  The store calls run in the background lane (L{tm20.lanes}) unless told otherwise:
they are bookkeeping after a registration, never what a terminal or an API client waits for (the
registrations themselves, L{tm20.store._terminals}, are batched in the foreground lane).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from tm20.lanes import inBackground

__all__ = ["Batcher"]

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class Batcher(Generic[I, R]):
    """
    Calls C{write} with the requests that arrived while the previous call ran (module
    docstring).

    @ivar calls: the store calls made so far (for tests).
    """

    def __init__(
        self,
        write: Callable[[list[I]], Deferred[list[R]]],
        limit: int = 500,
        lane: Callable[..., Any] = inBackground,
        concurrency: int = 1,
    ) -> None:
        """
        @param write: writes or reads a batch in one store call; its answers are in the order
            of the requests.
        @param limit: the most requests in one call.
        @param lane: L{inBackground} (the default: follow-up work) or L{tm20.lanes.inForeground}
            (what a terminal waits for: its registration).
        @param concurrency: the most calls running at once (a request asked while fewer run
            starts its own at once).
        """
        if limit < 1 or concurrency < 1:
            raise ValueError("limit and concurrency must be at least 1")
        self._write = write
        self._lane = lane
        self.limit = limit
        self._waiting: list[tuple[I, Deferred[R]]] = []
        self._concurrency = concurrency
        self._running = 0
        self.calls = 0

    def __call__(self, item: I) -> Deferred[R]:
        """Ask for C{item}; its answer comes once the batch holding it is done."""
        d: Deferred[R] = Deferred()
        self._waiting.append((item, d))
        if self._running < self._concurrency:
            self._next()
        return d

    def _next(self) -> None:
        batch = self._waiting[: self.limit]
        del self._waiting[: self.limit]
        if not batch:
            return
        self._running += 1
        self.calls += 1
        written: Deferred[list[R]] = self._lane(
            maybeDeferred, self._write, [item for item, _ in batch]
        )

        def done(result: list[R] | Failure) -> None:
            self._running -= 1
            for i, (_, waiter) in enumerate(batch):
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result[i])
            if self._running < self._concurrency:
                self._next()

        written.addBoth(done)
