"""
bench.scaleout runs (tiny sizes, on the tests' PostgreSQL): every part measures, nothing fails,
and BENCHMARKS.md, rendered by bench.publish from every suite's saved results, shows its figures
once beside the main suite's, with the analysis once.  No timing is asserted.
"""

from __future__ import annotations

import json
import os
import tempfile
import unittest

from bench import publish
from bench.scaleout import Sizes, runSuite, section
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
            # what the measured costs allow on this machine's cores: a real figure, and above
            # what was reached (the run itself did not use every core for nothing else)
            self.assertGreater(ingest["ceilingAtCost"], 0)
            self.assertAlmostEqual(
                ingest["ceilingAtCostRatio"], ingest["ceilingAtCost"] / ingest["ceilingCopy"]
            )
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
        for phase in ("sameNode", "crossNode"):
            budget = commands[phase]
            self.assertGreater(budget["cpuPerCommandMs"]["nodes"], 0)
            self.assertGreater(budget["cpuPerCommandMs"]["terminals"], 0)
            self.assertGreater(budget["ceilingPerSecond"], 0)
            # Little's law: the callers' mean round trip at that rate
            self.assertAlmostEqual(
                budget["roundTripFloorMs"],
                TINY.callers / budget["ceilingPerSecond"] * 1000,
                delta=0.01,
            )

        text = section(results)
        self.assertIn("`--workers 2`", text)
        self.assertIn("ingest ÷ `COPY` ceiling", text)
        self.assertIn("cross ÷ same", text)
        self.assertIn("the most these costs allow, records/s", text)
        self.assertIn("the most these costs allow on", text)
        self.assertIn("CPU per command: the two nodes", text)
        directory = tempfile.mkdtemp()
        saved = os.path.join(directory, "results")
        benchmarks = os.path.join(directory, "BENCHMARKS.md")
        notes = os.path.join(directory, "NOTES.md")
        with open(notes, "w") as f:
            f.write("## Scale-out: why\n\nwhy-it-is-so\n")
        full = {"meta": {"tm20 revision": "abc"}, "runs": {}, "settings": {}}
        publish.save("full", full, saved)
        publish.save("soak", {"meta": {"tm20 revision": "def"}, "runs": {}}, saved)
        publish.save("scaleout", results, saved)
        publish.publish(saved, notes, benchmarks)
        publish.publish(saved, notes, benchmarks)  # rewritten, not appended
        with open(benchmarks) as f:
            written = f.read()
        self.assertTrue(written.startswith("# tm20 benchmarks\n"))
        for once in (
            "## Conditions (full run)",
            "## Conditions (soak run)",
            "## Scale-out on one host",
            "why-it-is-so",
        ):
            self.assertEqual(written.count(once), 1, once)
        self.assertLess(written.index("## Scale-out on one host"), written.index("why-it-is-so"))
        self.assertEqual(publish.load("scaleout", saved), json.loads(json.dumps(results)))
