"""
Rate limiting of failed authentication, per source (the REST API's bearer tokens).

A token bucket per source address: C{burst} failures are allowed at once, then one more every
C{1/refillPerSecond} seconds.  Successful requests cost nothing, and a success does not reset
the bucket (a client holding one valid token must not be able to keep guessing others).

Usage, in the API's authentication step::

    retry = limiter.retryAfter(source)
    if retry > 0:
        return 429, with "Retry-After: ceil(retry)"    # not even checked
    if not valid(token):
        limiter.failed(source)
        return 401

Memory is bounded: at most C{maxSources} sources are tracked; a source whose bucket is full
again is forgotten, and past the bound the least recently failing source is dropped first.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["FailureRateLimiter"]


class FailureRateLimiter:
    """
    Counts failures per source with a token bucket on an injected clock.

    @param clock: the time source (the reactor, or a C{Clock} in tests).
    @param burst: failures a source may make in a row before it must wait.
    @param refillPerSecond: the rate at which a source earns one more attempt back.
    @param maxSources: most sources tracked at once.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        burst: int = 10,
        refillPerSecond: float = 1 / 6,
        maxSources: int = 10_000,
    ) -> None:
        if burst < 1 or refillPerSecond <= 0 or maxSources < 1:
            raise ValueError("burst and maxSources must be >= 1, refillPerSecond > 0")
        self._clock = clock
        self.burst = burst
        self.refillPerSecond = refillPerSecond
        self.maxSources = maxSources
        #: source -> (tokens left, when counted); least recently failing first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, source: str, now: float) -> float:
        entry = self._buckets.get(source)
        if entry is None:
            return float(self.burst)
        tokens, at = entry
        tokens = min(float(self.burst), tokens + (now - at) * self.refillPerSecond)
        if tokens >= self.burst:
            del self._buckets[source]  # full again: nothing to remember
        return tokens

    def retryAfter(self, source: str) -> float:
        """
        Seconds before C{source} may try again: C{0.0} when it may now.  Checking does not
        count as an attempt.
        """
        tokens = self._tokens(source, self._clock.seconds())
        if tokens >= 1:
            return 0.0
        return (1 - tokens) / self.refillPerSecond

    def failed(self, source: str) -> float:
        """
        Count one failed attempt from C{source}.

        @return: L{retryAfter} after this failure (C{0.0}: it may still try now).
        """
        now = self._clock.seconds()
        tokens = max(0.0, self._tokens(source, now) - 1)
        self._buckets[source] = (tokens, now)
        self._buckets.move_to_end(source)
        while len(self._buckets) > self.maxSources:
            self._buckets.popitem(last=False)
        if tokens < 1:
            retry = (1 - tokens) / self.refillPerSecond
            self.log.warn(
                "too many failed authentications from {source}: blocked for {retry:.0f}s",
                source=source,
                retry=retry,
            )
            return retry
        return 0.0
