"""
The database's two lanes (L{tm20.lanes}) in the PostgreSQL pool, on a real PostgreSQL: waiting
foreground work is served before waiting background work, background work never holds every
connection, it is not starved, and it fails like the rest when the pool closes.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import pgharness
from tm20.errors import StoreUnavailable
from tm20.lanes import inBackground, isBackground
from tm20.store._pgpool import BACKGROUND_PATIENCE, Cursor, Pool


class LaneTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Generator[Deferred[Any], Any, None]:
        url = pgharness.createDatabase("tm20_lanes")
        self.addCleanup(pgharness.dropDatabase, url)
        self.pool = Pool(url, reactor, size=2, name="lanes")
        yield self.pool.start()
        self.addCleanup(self.pool.close)
        self.order: list[str] = []
        self.started: dict[str, Deferred[None]] = {}

    def hold(self, name: str) -> tuple[Deferred[Any], Deferred[None]]:
        """
        Work that takes a connection, records its name when it has it (in L{order}), and keeps
        it until released; L{started} fires then.
        """
        release: Deferred[None] = Deferred()
        self.started[name] = Deferred()

        async def work(cur: Cursor) -> str:
            self.order.append(name)
            self.started[name].callback(None)
            await cur.execute("SELECT 1")
            await release
            return name

        return self.pool.runInteraction(work), release

    def backgroundHold(self, name: str) -> tuple[Deferred[Any], Deferred[None]]:
        return inBackground(self.hold, name)

    def test_laneFollowsTheWork(self) -> None:
        seen: list[bool] = []
        inBackground(lambda: seen.append(isBackground()))
        seen.append(isBackground())
        self.assertEqual(seen, [True, False])

    @inlineCallbacks
    def test_foregroundServedFirst(self) -> Generator[Deferred[Any], Any, None]:
        a, releaseA = self.hold("a")
        b, releaseB = self.hold("b")
        background, releaseBackground = self.backgroundHold("background")
        foreground, releaseForeground = self.hold("foreground")
        self.assertEqual(self.pool._backgroundWaiters.__len__(), 1)
        releaseA.callback(None)
        yield a
        yield self.started["foreground"]
        self.assertNotIn("background", self.order)  # b still holds the other connection
        releaseBackground.callback(None)
        releaseForeground.callback(None)
        releaseB.callback(None)
        yield foreground
        yield b
        yield background
        self.assertLess(self.order.index("foreground"), self.order.index("background"))

    @inlineCallbacks
    def test_backgroundNeverTakesEveryConnection(self) -> Generator[Deferred[Any], Any, None]:
        first, releaseFirst = self.backgroundHold("first")
        second, releaseSecond = self.backgroundHold("second")
        foreground, releaseForeground = self.hold("foreground")
        yield self.started["foreground"]  # served at once: a connection was kept for it
        releaseForeground.callback(None)
        yield foreground
        self.assertNotIn("second", self.order)
        releaseFirst.callback(None)
        releaseSecond.callback(None)
        yield first
        yield second
        self.assertLess(self.order.index("foreground"), self.order.index("second"))

    @inlineCallbacks
    def test_backgroundNotStarved(self) -> Generator[Deferred[Any], Any, None]:
        # Both connections busy, then a background wait and more foreground work than the
        # patience: the background work runs before the foreground queue is empty.
        held = [self.hold(f"held{i}") for i in range(2)]
        background, releaseBackground = self.backgroundHold("background")
        releaseBackground.callback(None)
        queued = []
        for i in range(BACKGROUND_PATIENCE + 4):
            d, release = self.hold(f"f{i}")
            release.callback(None)
            queued.append(d)
        for _held, release in held:
            release.callback(None)
        yield background
        for d in queued:
            yield d
        position = self.order.index("background")
        self.assertLess(position, len(self.order) - 1)
        self.assertLessEqual(position, BACKGROUND_PATIENCE + 2)

    @inlineCallbacks
    def test_closingFailsBackgroundWaiters(self) -> Generator[Deferred[Any], Any, None]:
        held = [self.hold(f"held{i}") for i in range(2)]
        background, _ = self.backgroundHold("background")
        self.pool.close()
        yield self.assertFailure(background, StoreUnavailable)
        for d, release in held:
            release.callback(None)
            yield self.assertFailure(d, StoreUnavailable, Exception)

    def test_foregroundInsideBackground(self) -> None:
        from tm20.lanes import inForeground

        seen: list[bool] = []
        inBackground(lambda: inForeground(lambda: seen.append(isBackground())))
        self.assertEqual(seen, [False])
