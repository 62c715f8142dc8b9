"""
The garbage collector's settings (L{tm20.collector}): what a server process settles once
started, and gives back when stopped; the option that sets them; the metrics that show them.
"""

from __future__ import annotations

import gc
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.test_metrics import families, value
from tm20 import tap
from tm20.collector import GarbageCollector
from tm20.config import ServerConfig
from tm20.metrics import Metrics
from tm20.service import TM20Service, buildServer
from tm20.store.sqlite import SQLiteStore


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
        said = [e for e in self.events if "garbage collector" in e.get("log_format", "")]
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


class ServiceTests(_Restored, TestCase):
    """A server settles the collector after starting, before accepting, and gives it back."""

    @inlineCallbacks
    def test_startedServerSettlesItsCollector(self) -> Any:
        before = gc.get_threshold()
        store = SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor)
        config = ServerConfig(ports=("tcp:0:interface=127.0.0.1",), gcThreshold=20_000)
        service = TM20Service(
            buildServer(config, reactor, store), collector=GarbageCollector(20_000)
        )
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
