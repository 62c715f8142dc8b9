"""
The one writer of C{BENCHMARKS.md}.

Every suite keeps its last figures in C{bench/results/} (kept in git, so that a run of one suite
on a new machine does not drop another suite's figures): C{full.json} and C{soak.json}
(L{bench.run}), C{scaleout.json} (L{bench.scaleout}).  After a run, the suite saves its JSON and
calls L{publish}, which renders the whole page from all of them and C{bench/NOTES.md} (the
analysis, copied once, below the figures).  Rendering is pure (L{render}); only L{publish} reads
and writes files.
"""

from __future__ import annotations

import json
import os
from typing import Any

from bench import report, scaleout

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
NOTES = os.path.join(HERE, "NOTES.md")
BENCHMARKS = os.path.join(os.path.dirname(HERE), "BENCHMARKS.md")


def render(
    full: dict[str, Any] | None,
    soak: dict[str, Any] | None,
    scaleoutResults: dict[str, Any] | None,
    notes: str,
) -> str:
    """The whole page: the main suite's figures, the scale-out figures, then the analysis."""
    out = [report.render(full, soak).rstrip(), ""]
    if scaleoutResults is not None:
        out += [scaleout.section(scaleoutResults).rstrip(), ""]
    if notes:
        out += [notes.rstrip(), ""]
    return "\n".join(out)


def load(name: str, results: str = RESULTS) -> dict[str, Any] | None:
    """The last saved results of a suite (C{full}, C{soak}, C{scaleout}), or None."""
    try:
        with open(os.path.join(results, f"{name}.json")) as f:
            loaded: dict[str, Any] = json.load(f)
            return loaded
    except (OSError, ValueError):
        return None


def save(name: str, results: dict[str, Any], directory: str = RESULTS) -> None:
    """Keep a suite's results as its last ones."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


def publish(results: str = RESULTS, notes: str = NOTES, benchmarks: str = BENCHMARKS) -> None:
    """Rewrite C{BENCHMARKS.md} from every suite's last results and the notes."""
    try:
        with open(notes) as f:
            analysis = f.read()
    except OSError:
        analysis = ""
    text = render(load("full", results), load("soak", results), load("scaleout", results), analysis)
    with open(benchmarks, "w") as f:
        f.write(text)


__all__ = ["load", "publish", "render", "save"]
