"""The per-source limiter of failed authentication (for the REST API)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tm20.services.ratelimit import FailureRateLimiter


class FailureRateLimiterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.limiter = FailureRateLimiter(self.clock, burst=3, refillPerSecond=0.5)

    def test_burstThenBlocked(self) -> None:
        for _ in range(2):
            self.assertEqual(self.limiter.failed("1.2.3.4"), 0.0)
            self.assertEqual(self.limiter.retryAfter("1.2.3.4"), 0.0)
        self.assertEqual(self.limiter.failed("1.2.3.4"), 2.0)
        self.assertEqual(self.limiter.retryAfter("1.2.3.4"), 2.0)
        # Checking is not an attempt: still 2 s to wait.
        self.assertEqual(self.limiter.retryAfter("1.2.3.4"), 2.0)

    def test_refillsWithTime(self) -> None:
        for _ in range(3):
            self.limiter.failed("s")
        self.clock.advance(1)
        self.assertEqual(self.limiter.retryAfter("s"), 1.0)
        self.clock.advance(1)
        self.assertEqual(self.limiter.retryAfter("s"), 0.0)
        # One attempt earned back: a failure blocks again at once.
        self.assertEqual(self.limiter.failed("s"), 2.0)

    def test_persistentGuesserStaysThrottled(self) -> None:
        # Trying as soon as allowed, for an hour: about one guess per refill period.
        guesses = 0
        for _ in range(3600):
            if self.limiter.retryAfter("s") == 0.0:
                self.limiter.failed("s")
                guesses += 1
            self.clock.advance(1)
        self.assertLessEqual(guesses, 3 + 3600 * 0.5)
        self.assertGreaterEqual(guesses, 3600 * 0.5 - 1)

    def test_sourcesAreIndependent(self) -> None:
        for _ in range(3):
            self.limiter.failed("attacker")
        self.assertGreater(self.limiter.retryAfter("attacker"), 0)
        self.assertEqual(self.limiter.retryAfter("operator"), 0.0)

    def test_memoryBounded(self) -> None:
        limiter = FailureRateLimiter(self.clock, burst=2, refillPerSecond=1, maxSources=100)
        for i in range(1000):
            limiter.failed(f"10.0.{i // 256}.{i % 256}")
        self.assertEqual(len(limiter), 100)
        # Full buckets are forgotten.
        self.clock.advance(10)
        for i in range(900, 1000):
            limiter.retryAfter(f"10.0.{i // 256}.{i % 256}")
        self.assertEqual(len(limiter), 0)

    def test_badParameters(self) -> None:
        with self.assertRaises(ValueError):
            FailureRateLimiter(self.clock, burst=0)
        with self.assertRaises(ValueError):
            FailureRateLimiter(self.clock, refillPerSecond=0)
