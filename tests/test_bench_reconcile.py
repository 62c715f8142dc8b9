"""bench.reconcile runs (small): every person synced, the periodic check lists every slot."""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from bench.reconcile import _run


class BenchReconcileSmokeTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_smallRun(self) -> Any:
        args = argparse.Namespace(
            persons=30,
            face_bytes=64,
            max_outstanding=4,
            database="sqlite:" + self.mktemp() + ".sqlite3",
            timeout=50.0,
        )
        figures = yield ensureDeferred(_run(reactor, args))
        self.assertEqual(figures["persons"], 30)
        self.assertEqual(figures["backlogAfter"], 0)
        self.assertGreater(figures["pushSeconds"], 0)
