"""
C{python -m bench.run --full | --quick | --soak}

  - C{--full} (C{make bench}): every workload, median of 3 runs; rewrites C{BENCHMARKS.md} and
    C{bench/results/full.json}.  Under 10 minutes on the reference machine (2 cores).
  - C{--quick} (C{make bench-quick}): one short run of each; prints the report and writes it to
    a temporary file, leaving C{BENCHMARKS.md} alone.  Under 2 minutes.
  - C{--soak} (C{make bench-soak}): the 5-minute idle soak; rewrites its section of
    C{BENCHMARKS.md} and C{bench/results/soak.json}.

PostgreSQL: a private throwaway cluster is started for the run (C{initdb}, as the C{make test}
harness does), unless C{--database-url} names a server where databases may be created.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from bench import publish, report
from bench.procinfo import loadAverage, machine, raiseOpenFilesLimit
from bench.server import Databases
from bench.workloads import FULL, QUICK, SOAK, WORKLOADS, Context, Settings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _gitRevision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "tm20"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        rev = out.stdout.strip() or "?"
        return rev + (" (tm20/ modified)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def _versions(databases: Databases) -> str:
    parts = [f"Python {platform.python_version()}"]
    for dist in ("Twisted", "autobahn", "klein", "txpostgres", "psycopg2-binary"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except Exception:
            continue
    try:
        parts.append(f"PostgreSQL {databases.version()}")
    except Exception as e:
        parts.append(f"PostgreSQL ? ({e})")
    parts.append(f"SQLite {sqlite3.sqlite_version}")
    return ", ".join(parts)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN becomes None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def runSuite(
    settings: Settings, databaseURL: str | None, only: list[str] | None, fsync: bool = True
) -> dict[str, Any]:
    limit = raiseOpenFilesLimit()
    started = time.monotonic()
    startLoad = loadAverage()
    _log(f"{settings.name}: open-files limit {limit}; load average {startLoad}")
    databases = Databases(databaseURL, fsync=fsync)
    ctx = Context(settings, databases)
    ctx.log = _log
    results: dict[str, Any] = {"runs": {}, "errors": [], "profiles": ctx.profiles}
    try:
        versions = _versions(databases)
        workloads = [w for w in settings.workloads if only is None or w in only]
        for index in range(settings.runs):
            for name in workloads:
                function, storesAttr = WORKLOADS[name]
                for store in getattr(settings, storesAttr):
                    if time.monotonic() - started > settings.budget:
                        _log(f"time budget spent: skipping {name} ({store}) run {index + 1}")
                        results["errors"].append(
                            f"{name} ({store}) run {index + 1}: skipped, the suite's time budget "
                            f"({settings.budget:.0f} s) was spent"
                        )
                        continue
                    _log(f"run {index + 1}/{settings.runs}: {name} ({store})")
                    t0 = time.monotonic()
                    try:
                        figures = function(ctx, store, index)
                    except Exception as e:
                        traceback.print_exc()
                        results["errors"].append(f"{name} ({store}) run {index + 1}: {e}")
                        continue
                    figures["seconds"] = time.monotonic() - t0
                    _log(f"  {_brief(name, figures)} [{figures['seconds']:.0f} s]")
                    results["runs"].setdefault(name, {}).setdefault(store, []).append(figures)
    finally:
        databases.close()
    duration = time.monotonic() - started
    m = machine()
    results["meta"] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": {
            "full": "make bench",
            "quick": "make bench-quick",
            "soak": "make bench-soak",
        }.get(settings.name, settings.name),
        "machine": f"{m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('memory', '?')} RAM, "
        f"{m.get('kernel')}",
        "versions": versions,
        "tm20 revision": _gitRevision(),
        "database": databases.note,
        "open-files limit": str(limit),
        "load average (1/5/15 min) at start / end": f"{startLoad} / {loadAverage()}",
        "runs per workload": str(settings.runs),
        "wall time of the whole suite": f"{duration:.0f} s",
    }
    settingsDict = dataclasses.asdict(settings)
    settingsDict.pop("profileDir", None)
    results["settings"] = settingsDict
    return results


def _brief(name: str, f: dict[str, Any]) -> str:
    def g(key: str, digits: int = 0) -> str:
        v = f.get(key)
        return "n/a" if not isinstance(v, (int, float)) else f"{v:,.{digits}f}"

    if name == "ingest":
        return (
            f"{g('rate')} rec/s, p50 {g('p50', 1)} ms, p99 {g('p99', 1)} ms, server CPU "
            f"{g('serverShare', 2)}, loadgen {g('loadgenCpu', 1)} s, db {g('dbCpu', 1)} s; "
            f"ceiling insert {g('ceilingInsert')} copy {g('ceilingCopy')} ratio {g('ratio', 2)}"
            f" (to COPY {g('ratioCopy', 2)})"
        )
    if name == "connections":
        return (
            f"{g('connected')} in {g('connectSeconds', 2)} s ({g('connectFailures')} failed), "
            f"{(f.get('perConnection') or 0) / 1024:.1f} KiB/conn; storm {g('stormSeconds', 2)} s "
            f"({g('stormFailures')} failed, {g('stormGaveUp')} gave up); cmd seq p50/p99 "
            f"{g('cmdSeqP50', 1)}/{g('cmdSeqP99', 1)} ms, conc {g('cmdConP50', 1)}/"
            f"{g('cmdConP99', 1)} ms, errors {g('cmdSeqErrors')}+{g('cmdConErrors')}"
        )
    if name == "backfill":
        return (
            f"pull {g('pullSeconds', 2)} s ({g('pullInserted')} stored), push "
            f"{g('pushSeconds', 2)} s ({g('pushAcked')} acked)"
        )
    if name == "webhooks":
        return (
            f"ingest {g('ingestRate')} rec/s; delivered {g('delivered')}/{g('committed')} at "
            f"{g('deliveredRate')} ev/s in {g('requests')} requests; catch-up "
            f"{g('catchUp', 2)} s; commit→delivery p50 {g('lagP50', 1)} ms, p99 {g('lagP99', 1)} ms"
        )
    if name == "soak":
        return (
            f"RSS {(f.get('rssStart') or 0) / 2**20:.0f} -> {(f.get('rssEnd') or 0) / 2**20:.0f}"
            f" MiB, CPU {g('serverShare', 3)}, acked {g('acked')}"
        )
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--full", action="store_true", help="every workload, 3 runs (make bench)")
    mode.add_argument("--quick", action="store_true", help="a reduced run, under 2 minutes")
    mode.add_argument("--soak", action="store_true", help="the 5-minute idle soak")
    mode.add_argument(
        "--render",
        action="store_true",
        help="rewrite BENCHMARKS.md from bench/results/*.json and bench/NOTES.md, run nothing",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server where databases may be created (default: a private cluster)",
    )
    parser.add_argument("--runs", type=int, help="runs per workload (default: 3 full, 1 quick)")
    parser.add_argument(
        "--only", action="append", choices=sorted(WORKLOADS), help="run only this workload"
    )
    parser.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    parser.add_argument(
        "--pg-fsync-off",
        action="store_true",
        help="private cluster with fsync off (as the test harness), for comparison only",
    )
    parser.add_argument("--output", help="write the Markdown report here instead")
    args = parser.parse_args(argv)
    if args.render:
        publish.publish()
        _log("BENCHMARKS.md rewritten")
        return 0

    base = FULL if args.full else QUICK if args.quick else SOAK
    settings = dataclasses.replace(base)
    if args.runs:
        settings.runs = args.runs
    if args.no_profile:
        settings.profile = False
    results = runSuite(settings, args.database_url, args.only, fsync=not args.pg_fsync_off)
    clean = _clean(results)

    if args.quick or args.output or args.only or args.runs or args.pg_fsync_off:
        # a partial or reduced run never overwrites the published figures
        out = args.output or os.path.join(tempfile.mkdtemp(prefix="tm20-bench-"), "report.md")
        full, soak = (clean, None) if not args.soak else (None, clean)
        text = report.render(full, soak)
        with open(out, "w") as f:
            f.write(text)
        with open(out + ".json", "w") as f:
            json.dump(clean, f, indent=1)
        print(text)
        _log(f"report written to {out} (BENCHMARKS.md untouched)")
    else:
        publish.save("soak" if args.soak else "full", clean)
        publish.publish()
        _log("BENCHMARKS.md rewritten")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
