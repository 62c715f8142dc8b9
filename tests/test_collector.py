"""
The garbage collector's settings (L{tm20.collector}): what a server process settles once
started, and gives back when stopped; the option that sets them; the metrics that show them.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.test_metrics import families, value
from tm20 import tap
from tm20.collector import CHECK_SECONDS, MIN_CHURN, GarbageCollector
from tm20.config import ServerConfig
from tm20.metrics import Metrics
from tm20.service import TM20Service, buildServer, collectorFor
from tm20.store.sqlite import SQLiteStore
from tm20.terminal.registry import TerminalRegistry


class _Restored:
    """Put Python's collector back as a test found it, whatever the test did."""

    def setUp(self) -> None:
        before = gc.get_threshold()
        frozen = gc.get_freeze_count()
        self.assertEqual(frozen, 0, "a test before this one left objects frozen")  # type: ignore[attr-defined]

        def restore() -> None:
            gc.unfreeze()
            gc.set_threshold(*before)

        self.addCleanup(restore)  # type: ignore[attr-defined]


class GarbageCollectorTests(_Restored, SynchronousTestCase):
    def setUp(self) -> None:
        _Restored.setUp(self)
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_settleFreezesTheHeapAndRaisesTheThreshold(self) -> None:
        before = gc.get_threshold()
        collector = GarbageCollector(12_345)
        collector.settle()
        self.assertEqual(gc.get_threshold(), (12_345, before[1], before[2]))
        frozen = gc.get_freeze_count()
        self.assertGreater(frozen, 1000)  # this process's modules, classes, functions
        said = [e for e in self.events if "objects frozen" in e.get("log_format", "")]
        self.assertEqual(len(said), 1)
        # (frozen objects freed since are no longer counted)
        self.assertGreaterEqual(said[0]["frozen"], frozen)
        self.assertEqual((said[0]["threshold"], said[0]["was"]), (12_345, before[0]))
        collector.settle()  # once only
        self.assertEqual(len(self.events), 1)
        collector.release()
        self.assertEqual((gc.get_threshold(), gc.get_freeze_count()), (before, 0))
        collector.release()  # idempotent
        self.assertEqual(gc.get_threshold(), before)

    def test_frozenObjectsAreNotWalked(self) -> None:
        class Cycle:
            pass

        GarbageCollector(10_000).settle()
        # garbage made after the freeze is still collected; the frozen heap is not walked
        made = Cycle()
        made.me = made  # type: ignore[attr-defined]
        del made
        self.assertGreaterEqual(gc.collect(), 1)
        self.assertNotIn(Cycle, {type(o) for o in gc.get_objects()})

    def test_zeroLeavesTheCollectorAlone(self) -> None:
        before = gc.get_threshold()
        collector = GarbageCollector(0)
        collector.settle()
        self.assertEqual((gc.get_threshold(), gc.get_freeze_count()), (before, 0))
        self.assertEqual(self.events, [])
        collector.release()
        self.assertEqual(gc.get_threshold(), before)

    def test_negativeRefused(self) -> None:
        with self.assertRaises(ValueError) as caught:
            GarbageCollector(-1)
        self.assertIn("threshold", str(caught.exception))

    def test_passesByGeneration(self) -> None:
        metrics = Metrics()
        gc.collect()
        fams = families(metrics.render().decode())
        full = value(fams, "python_gc_collections", "python_gc_collections_total", generation="2")
        self.assertGreaterEqual(full, 1)


class _Socket:
    """A connection as the registry tracks it (identity only)."""


def fullPasses() -> int:
    return int(gc.get_stats()[2]["collections"])


class AroundBurstTests(_Restored, SynchronousTestCase):
    """Full passes around bursts of terminal sockets (injected clock, the real registry)."""

    def setUp(self) -> None:
        _Restored.setUp(self)
        self.clock = Clock()
        self.registry = TerminalRegistry()
        self.collector = GarbageCollector(10_000, self.clock, self.registry)
        self.collector.settle()
        self.addCleanup(self.collector.release)
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def open(self, n: int) -> list[_Socket]:
        sockets = [_Socket() for _ in range(n)]
        for s in sockets:
            self.registry.track(s)  # type: ignore[arg-type]
        return sockets

    def close(self, sockets: list[_Socket]) -> None:
        for s in sockets:
            self.registry.untrack(s)  # type: ignore[arg-type]

    def look(self, times: int = 1) -> int:
        """Let the collector look C{times} times; the full passes it has made."""
        for _ in range(times):
            self.clock.advance(CHECK_SECONDS)
        return self.collector.passes

    def test_aPassOnceARampIsOver(self) -> None:
        before = fullPasses()
        for _ in range(4):  # a ramp: sockets open between every two looks
            self.open(MIN_CHURN)
            self.assertEqual(self.look(), 0)
        self.assertEqual(fullPasses(), before)
        self.assertEqual(self.look(), 1)  # none since the last look: over
        self.assertEqual(fullPasses(), before + 1)
        said = [e for e in self.events if "full pass" in e.get("log_format", "")]
        self.assertEqual([(e["opened"], e["closed"]) for e in said], [(MIN_CHURN * 4, 0)])
        self.assertEqual(self.look(5), 1)  # quiet, and nothing new: no other pass

    def test_aStormPassedOnceDroppedAndOnceOver(self) -> None:
        sockets = self.open(MIN_CHURN * 4)
        self.assertEqual(self.look(2), 1)
        self.close(sockets[:MIN_CHURN])  # closed: a third of those still open, not half
        self.assertEqual(self.look(), 1)
        self.close(sockets[MIN_CHURN:])  # all dropped: their garbage goes now
        self.assertEqual(self.look(), 2)
        for _ in range(3):  # they come back, a look apart
            self.open(MIN_CHURN)
            self.assertEqual(self.look(), 2)
        self.open(MIN_CHURN)
        self.assertEqual(self.look(2), 3)  # over
        self.assertEqual(
            (self.registry.opened, self.registry.closed), (MIN_CHURN * 8, MIN_CHURN * 4)
        )
        self.assertEqual(len(self.registry.sessions()), MIN_CHURN * 4)

    def test_aSmallBurstWaits(self) -> None:
        self.open(MIN_CHURN - 1)
        self.assertEqual(self.look(4), 0)
        self.open(1)  # now as many as the least worth a pass
        self.assertEqual(self.look(2), 1)

    def test_aChurnThatNeverStops(self) -> None:
        sockets = self.open(MIN_CHURN * 4)
        self.assertEqual(self.look(2), 1)
        passes = []
        for _ in range(8):  # sockets come and go between every two looks
            gone, sockets = sockets[: MIN_CHURN // 2], sockets[MIN_CHURN // 2 :]
            self.close(gone)
            sockets += self.open(MIN_CHURN // 2)
            passes.append(self.look())
        # a pass once as many have closed as half of those open (4 looks)
        self.assertEqual(passes, [1, 1, 1, 2, 2, 2, 2, 3])

    def test_releaseStopsLooking(self) -> None:
        self.collector.release()
        self.open(MIN_CHURN * 2)
        self.assertEqual((self.look(4), self.clock.getDelayedCalls()), (0, []))

    def test_untouchedCollectorDoesNotLook(self) -> None:
        self.collector.release()
        collector = GarbageCollector(0, self.clock, self.registry)
        collector.settle()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_theRegistryCountsEachSocketOnce(self) -> None:
        socket = _Socket()
        self.registry.untrack(socket)  # type: ignore[arg-type]  # never opened: not counted
        self.registry.track(socket)  # type: ignore[arg-type]
        self.registry.track(socket)  # type: ignore[arg-type]
        self.assertEqual((self.registry.opened, len(self.registry.sessions())), (1, 1))
        self.registry.untrack(socket)  # type: ignore[arg-type]
        self.registry.untrack(socket)  # type: ignore[arg-type]
        self.assertEqual((self.registry.closed, len(self.registry.sessions())), (1, 0))


class ServiceTests(_Restored, TestCase):
    """A server settles the collector after starting, before accepting, and gives it back."""

    @inlineCallbacks
    def test_startedServerSettlesItsCollector(self) -> Any:
        before = gc.get_threshold()
        store = SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor)
        config = ServerConfig(ports=("tcp:0:interface=127.0.0.1",), gcThreshold=20_000)
        server = buildServer(config, reactor, store)
        collector = collectorFor(server)
        self.assertEqual(collector.threshold, 20_000)
        service = TM20Service(server, collector=collector)
        service.startService()
        yield service.ready
        self.assertEqual(gc.get_threshold()[0], 20_000)
        self.assertGreater(gc.get_freeze_count(), 1000)
        yield service.stopService()
        self.assertEqual((gc.get_threshold(), gc.get_freeze_count()), (before, 0))

    @inlineCallbacks
    def test_twistdServiceTakesTheOption(self) -> Any:
        before = gc.get_threshold()
        options = tap.Options(environ={})
        path = self.mktemp() + ".sqlite3"
        options.parseOptions(
            [
                "--port",
                "tcp:0:interface=127.0.0.1",
                "--database",
                f"sqlite:{path}",
                "--gc-threshold",
                "30000",
            ]
        )
        service = tap.makeService(options)
        service.startService()
        yield service.ready
        self.assertEqual(gc.get_threshold()[0], 30_000)
        yield service.stopService()
        self.assertEqual(gc.get_threshold(), before)
