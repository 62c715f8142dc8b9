"""bench.access runs (small): every decision grants, and the figures are there."""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from bench.access import _run


class BenchAccessSmokeTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_smallRun(self) -> Any:
        args = argparse.Namespace(
            terminals=20,
            persons=10,
            samples=20,
            concurrency=5,
            database="sqlite:" + self.mktemp() + ".sqlite3",
        )
        figures = yield ensureDeferred(_run(reactor, args))
        self.assertEqual(figures["terminals"], 20)
        self.assertEqual((figures["seqDenied"], figures["conDenied"]), (0, 0))
        self.assertGreater(figures["seqDecisionP99"], 0)
        self.assertGreater(figures["conRatioP99"], 0)
