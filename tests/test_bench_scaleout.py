"""
bench.scaleout runs (tiny sizes, on the tests' PostgreSQL): every part measures, nothing fails,
and its section of BENCHMARKS.md is written (between its markers, replacing the previous one).
No timing is asserted.
"""

from __future__ import annotations

import os
import tempfile
import unittest

from bench.scaleout import BEGIN, END, Sizes, publish, runSuite, section
from tests import pgharness

TINY = Sizes(
    name="smoke",
    workers=(1, 2),
    ingestTerminals=20,
    ingestBatch=5,
    ingestSeconds=2.0,
    ceilingMaxRows=10_000,
    connTerminals=30,
    holdTerminals=40,
    loadgens=1,
    phaseTimeout=60.0,
    callers=2,
    cmdSeconds=1.0,
    cmdWarmup=0.5,
    profile=False,
)


class ScaleoutSmokeTests(unittest.TestCase):
    def test_tinyRun(self) -> None:
        results = runSuite(TINY, pgharness.databaseURL())
        self.assertEqual(results["errors"], [])
        for n in ("1", "2"):
            ingest = results["ingest"][n]
            self.assertEqual(ingest["workers"], int(n))
            self.assertGreater(ingest["acked"], 0)
            self.assertGreaterEqual(ingest["committed"], ingest["acked"])
            self.assertGreater(ingest["ceilingCopy"], 0)
            self.assertGreater(ingest["ratioCopy"], 0)
            connect = results["connect"][n]
            self.assertEqual((connect["connected"], connect["stormRegistered"]), (30, 30))
        hold = results["hold"]
        self.assertEqual((hold["workers"], hold["registered"]), (2, 40))
        self.assertEqual(hold["connectedSeen"], 40)
        self.assertGreater(hold["rssAfter"], 0)
        commands = results["commands"]
        self.assertEqual(commands["sameNode"]["failures"], 0)
        self.assertEqual(commands["crossNode"]["failures"], 0)
        self.assertGreater(commands["crossNode"]["commands"], 0)

        text = section(results)
        self.assertIn("`--workers 2`", text)
        self.assertIn("ingest ÷ `COPY` ceiling", text)
        self.assertIn("cross ÷ same", text)
        directory = tempfile.mkdtemp()
        benchmarks = os.path.join(directory, "BENCHMARKS.md")
        notes = os.path.join(directory, "NOTES.md")
        with open(benchmarks, "w") as f:
            f.write("# tm20 benchmarks\n\nkept\n")
        with open(notes, "w") as f:
            f.write("## Other\n\nx\n\n## Scale-out: why\n\nthe analysis\n\n## Later\n\ny\n")
        publish(results, benchmarks, notes)
        publish(results, benchmarks, notes)  # replaced, not appended twice
        with open(benchmarks) as f:
            written = f.read()
        self.assertTrue(written.startswith("# tm20 benchmarks\n\nkept\n"))
        self.assertEqual((written.count(BEGIN), written.count(END)), (1, 1))
        self.assertIn("the analysis", written)
        self.assertNotIn("## Later", written)
