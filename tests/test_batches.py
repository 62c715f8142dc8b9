"""Tests for L{tm20.batches.Batcher}: how many calls run at once, and what goes in each."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from tm20.batches import Batcher


class BatcherConcurrencyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.calls: list[tuple[list[str], Deferred[list[str]]]] = []

    def write(self, items: list[str]) -> Deferred[list[str]]:
        d: Deferred[list[str]] = Deferred()
        self.calls.append((items, d))
        return d

    def finish(self, i: int) -> None:
        items, d = self.calls[i]
        d.callback([item.upper() for item in items])

    def test_concurrentCalls(self) -> None:
        """
        With C{concurrency=2}, the first two requests each start a call at once; the next wait
        and go together in one call when a call ends; each caller gets its own answer.
        """
        batcher: Batcher[str, str] = Batcher(self.write, concurrency=2)
        answers = [batcher(name) for name in ("a", "b", "c", "d")]
        self.assertEqual([items for items, _ in self.calls], [["a"], ["b"]])
        self.finish(1)
        self.assertEqual([items for items, _ in self.calls], [["a"], ["b"], ["c", "d"]])
        self.finish(0)
        self.finish(2)
        self.assertEqual([self.successResultOf(d) for d in answers], ["A", "B", "C", "D"])
        self.assertEqual(batcher.calls, 3)

    def test_oneAtATimeByDefault(self) -> None:
        """Without C{concurrency}, one call at a time, as before."""
        batcher: Batcher[str, str] = Batcher(self.write)
        answers = [batcher(name) for name in ("a", "b", "c")]
        self.assertEqual([items for items, _ in self.calls], [["a"]])
        self.finish(0)
        self.assertEqual([items for items, _ in self.calls], [["a"], ["b", "c"]])
        self.finish(1)
        self.assertEqual([self.successResultOf(d) for d in answers], ["A", "B", "C"])

    def test_concurrencyAtLeastOne(self) -> None:
        self.assertRaises(ValueError, Batcher, self.write, concurrency=0)
