"""
The benchmark suite's pure helpers: percentiles, summaries, verdicts, report rendering, profile
summaries, WebSocket framing of the lean client.  No timing is asserted here.
"""

from __future__ import annotations

import math
import unittest

from bench import report
from bench.loadgen import sendlogFrame
from bench.profiles import frameName, summarise
from bench.stats import Summary, formatNumber, percentile, rate
from bench.wsclient import decodeFrames, encodeFrame, mask


class PercentileTests(unittest.TestCase):
    def test_interpolates(self) -> None:
        values = [1.0, 2.0, 3.0, 4.0]
        self.assertEqual(percentile(values, 0), 1.0)
        self.assertEqual(percentile(values, 100), 4.0)
        self.assertAlmostEqual(percentile(values, 50), 2.5)
        self.assertAlmostEqual(percentile(list(range(101)), 99), 99.0)

    def test_unsorted_and_single(self) -> None:
        self.assertEqual(percentile([5.0, 1.0, 3.0], 50), 3.0)
        self.assertEqual(percentile([7.0], 99), 7.0)

    def test_empty_is_nan(self) -> None:
        self.assertTrue(math.isnan(percentile([], 50)))

    def test_out_of_range(self) -> None:
        with self.assertRaises(ValueError):
            percentile([1.0], 101)


class SummaryTests(unittest.TestCase):
    def test_median_min_max(self) -> None:
        s = Summary.of([30.0, 10.0, 20.0])
        self.assertEqual((s.median, s.low, s.high, s.runs), (20.0, 10.0, 30.0, 3))
        self.assertEqual(s.format(0, "ms"), "20 ms (10–30)")

    def test_nan_runs_left_out(self) -> None:
        s = Summary.of([math.nan, 4.0])
        self.assertEqual((s.median, s.runs), (4.0, 1))
        self.assertEqual(s.format(1), "4.0")
        self.assertEqual(Summary.of([]).format(), "n/a")

    def test_format_number(self) -> None:
        self.assertEqual(formatNumber(51234.4), "51\u202f234")
        self.assertEqual(formatNumber(math.nan), "n/a")
        self.assertTrue(math.isnan(rate(5, 0)))
        self.assertEqual(rate(10, 2), 5)


class VerdictTests(unittest.TestCase):
    def test_verdicts(self) -> None:
        self.assertEqual(report.verdict(60_000, (">=", 50_000)), "met")
        self.assertEqual(report.verdict(25_000, (">=", 50_000)), "**missed** by 50%")
        self.assertEqual(report.verdict(5, ("<=", 10)), "met")
        self.assertIn("×2.0", report.verdict(40, ("<=", 20)))
        self.assertEqual(report.verdict(3, ("<=", 0)), "**missed** (3)")
        self.assertEqual(report.verdict(math.nan, ("<=", 1)), "not measured")
        self.assertEqual(report.verdict(1, None), "")

    def test_short_error(self) -> None:
        text = "twistd exited at start:\n  File x\n    boom()\nTypeError: bad\n"
        self.assertEqual(report.shortError(text), "twistd exited at start: … TypeError: bad")
        self.assertEqual(report.shortError("x" * 400)[-1], "…")


class RenderTests(unittest.TestCase):
    def results(self) -> dict[str, object]:
        run = {"rate": 40_000.0, "p50": 10.0, "p99": 30.0, "ratio": 0.6, "ceilingInsert": 1.0}
        return {
            "meta": {"machine": "test box", "command": "make bench"},
            "settings": {"ingestTerminals": 100, "ingestBatch": 10, "ingestSeconds": 20},
            "errors": ["connections (postgresql) run 2: boom"],
            "profiles": {"ingest-postgresql": "| self | function |"},
            "runs": {
                "ingest": {
                    "postgresql": [run, {**run, "rate": 50_000.0}, {**run, "rate": 45_000.0}],
                    "sqlite": [{**run, "rate": 9_000.0}],
                }
            },
        }

    def test_render(self) -> None:
        text = report.render(self.results(), None, "## Notes\n\nhello")  # type: ignore[arg-type]
        self.assertIn("# tm20 benchmarks", text)
        self.assertIn("- **machine**: test box", text)
        self.assertIn(
            "| records committed and acknowledged /s | 45\u202f000 (40\u202f000–50\u202f000) |",
            text,
        )
        self.assertIn("9\u202f000", text)
        self.assertIn("**missed** by 10%", text)
        self.assertIn("**error**: connections (postgresql) run 2: boom", text)
        self.assertIn("### ingest-postgresql", text)
        self.assertTrue(text.rstrip().endswith("hello"))
        self.assertNotIn("### 2. Connections", text)

    def test_render_soak_only(self) -> None:
        soak = {
            "settings": {"soakTerminals": 10},
            "runs": {"soak": {"postgresql": [{"rssEnd": 2**20}]}},
        }
        text = report.render(None, soak)  # type: ignore[arg-type]
        self.assertIn("6. Idle soak", text)
        self.assertIn("1.0 MiB", text)


class ProfileTests(unittest.TestCase):
    def test_summarise(self) -> None:
        lines = [
            "process 1;main (/work/main/tm20/x.py:3);parse (/work/main/tm20/protocol/parser.py:9) 6\n",
            "main (/work/main/tm20/x.py:3);poll (twisted/internet/epollreactor.py:1) 4\n",
            "garbage\n",
        ]
        summary = summarise(lines)
        self.assertEqual((summary.samples, summary.idle, summary.busy()), (10, 4, 6))
        self.assertEqual(summary.selfTime, [("parse (tm20/protocol/parser.py)", 6)])
        self.assertIn("100.0%", report_profile(summary))

    def test_frame_name(self) -> None:
        self.assertEqual(
            frameName("f (/x/lib/python3.11/site-packages/autobahn/util.py:12)"),
            "f (autobahn/util.py)",
        )
        self.assertEqual(frameName("odd"), "odd")


def report_profile(summary: object) -> str:
    from bench.profiles import renderSummary

    return renderSummary(summary)  # type: ignore[arg-type]


class FramingTests(unittest.TestCase):
    def test_mask_round_trip(self) -> None:
        key = b"\x01\x02\x03\x04"
        self.assertEqual(mask(mask(b"hello world", key), key), b"hello world")
        self.assertEqual(mask(b"", key), b"")

    def test_encode_decode(self) -> None:
        for size in (5, 200, 70_000):
            payload = b"x" * size
            buffer = bytearray(encodeFrame(payload, key=b"abcd") + encodeFrame(b"tail"))
            frames = decodeFrames(buffer)
            self.assertEqual([f[2] for f in frames], [payload, b"tail"])
            self.assertEqual(buffer, bytearray())

    def test_partial_frame_waits(self) -> None:
        frame = encodeFrame(b"abcdef")
        buffer = bytearray(frame[:-2])
        self.assertEqual(decodeFrames(buffer), [])
        buffer += frame[-2:]
        self.assertEqual(decodeFrames(buffer), [(True, 1, b"abcdef")])

    def test_sendlog_frame_is_json(self) -> None:
        import json

        frame = json.loads(sendlogFrame("SN1", 1000, 3))
        self.assertEqual(frame["cmd"], "sendlog")
        self.assertEqual(frame["count"], 3)
        self.assertEqual([r["enrollid"] for r in frame["record"]], [1, 2, 3])
