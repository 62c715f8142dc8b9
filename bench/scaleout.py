"""
Scale-out on one host: C{python -m bench.scaleout} (C{make bench-scaleout}; part of
C{make bench}).  The real service (C{twistd -n tm20 --workers N}) on a private PostgreSQL cluster
with production durability (C{fsync} and C{synchronous_commit} on, L{bench.server.Databases}),
driven by the load generators of L{bench.workers}:

  - B{ingest}, C{--workers 1} and C{--workers 2}: C{ingestTerminals} terminals each send
    C{sendlog} batches of C{ingestBatch} records and wait for each ack.  Records committed
    (counted in the table after the server stopped) and acknowledged per second, ack p50/p99,
    and the ratio to the C{COPY} ceiling measured in the same run on the same table
    (L{bench.workloads.ceilingCopy}).  By Little's law the rate is at most the records in
    flight over the ack latency: 1 000 terminals x 10 records waiting at 50 ms is 200 000/s, so
    the ceiling, not the workload, bounds the rate.
  - B{connect} and B{storm}, C{--workers 1} and C{--workers 2}: C{connTerminals} terminals
    connect at once, then all drop and reconnect at once: time until all registered, failed
    attempts, terminals that gave up (a failure is retried after 1 s, at most 5 attempts).
  - B{hold}: C{holdTerminals} terminals held by C{--workers 2}: all registered?  Memory per
    connection = (RSS of the parent and its workers with every terminal registered - RSS
    before) / terminals.
  - B{commands}: the command round trip of 20 concurrent callers posted to the node holding the
    terminal and to one that does not (L{bench.crossnode.measure}).

Each part runs on its own server and database; a part that fails is reported as an error (the
others still run).  The figures go to C{bench/results/scaleout.json}, and L{bench.publish}
renders them in C{BENCHMARKS.md} with every other suite's (the analysis is in
C{bench/NOTES.md}).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench import crossnode
from bench.procinfo import loadAverage, machine, machineCPU, raiseOpenFilesLimit, selfCPU
from bench.profiles import renderSummary, summariseFile
from bench.report import shortError, verdict
from bench.server import Databases, ServerProcess
from bench.stats import formatNumber, mostAtCost, percentile, rate
from bench.workers import WorkerPool
from bench.workloads import _connectOps, _countLogs, _registration, _split, ceilingCopy

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
#: Seconds a server gets to stop (its workers close thousands of connections) before SIGKILL.
STOP_TIMEOUT = 60.0


@dataclass
class Sizes:
    """The size of each part (L{FULL}; the smoke test uses tiny ones)."""

    name: str = "full"
    workers: tuple[int, ...] = (1, 2)
    ingestTerminals: int = 1000
    ingestBatch: int = 10
    ingestSeconds: float = 20.0
    ceilingMaxRows: int = 200_000
    connTerminals: int = 10_000
    holdTerminals: int = 20_000
    loadgens: int = 4
    #: the longest a connect or reconnect phase may last (then it is reported as incomplete)
    phaseTimeout: float = 30.0
    callers: int = 20
    cmdSeconds: float = 10.0
    cmdWarmup: float = 2.0
    profile: bool = True
    parts: tuple[str, ...] = ("ingest", "connect", "hold", "commands")


FULL = Sizes()


def _log(message: str) -> None:
    print(f"[scaleout {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def startServer(url: str, workers: int, workdir: str, timeout: float = 90.0) -> ServerProcess:
    """C{twistd -n tm20 --workers N} on C{url}, once every worker is a live node."""
    server = ServerProcess(url, workdir=workdir, extraArgs=["--workers", str(workers)])
    server.start(timeout)
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while workers > 1 and time.monotonic() < deadline:
        status, body = server.request("GET", "/health", timeout=5.0)
        nodes = (body or {}).get("cluster", {}).get("nodes", []) if status == 200 else []
        seen = {n["node"] for n in nodes}
        if len(seen) >= workers:
            break
        time.sleep(0.2)
    else:
        if workers > 1:
            server.stop()
            raise RuntimeError(f"not {workers} live workers in {timeout}s: {sorted(seen)}")
    return server


def _profile(
    server: ServerProcess, sizes: Sizes, seconds: float, name: str, profiles: dict[str, str]
) -> Callable[[], None]:
    """Start py-spy on the server and its workers (when asked); the function that collects."""
    if not sizes.profile:
        return lambda: None
    path = os.path.join(server.workdir, f"{name}.txt")
    profiler = server.profile(seconds, path, subprocesses=True)
    if profiler is None:
        return lambda: None

    def collect() -> None:
        profiler.wait(60)
        summary = summariseFile(path, 20)
        if summary is not None and summary.samples:
            profiles[name] = renderSummary(summary)

    return collect


@contextmanager
def _serving(databases: Databases, name: str, workers: int) -> Iterator[tuple[ServerProcess, str]]:
    """
    A server of C{workers} workers on a new database C{name}: (the server, the database's URL).
    Stopped and the database dropped afterwards; its log kept (and its path said) on failure.
    """
    workdir = tempfile.mkdtemp(prefix="tm20-scaleout-")
    url = databases.create(name)
    server = startServer(url, workers, workdir)
    try:
        yield server, url
    except BaseException:
        print(f"bench: server log kept in {server.logPath}", file=sys.stderr, flush=True)
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.stop(STOP_TIMEOUT)
        databases.drop(url)


def runIngest(
    databases: Databases, sizes: Sizes, workers: int, profiles: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "workers": workers,
        "terminals": sizes.ingestTerminals,
        "batch": sizes.ingestBatch,
    }
    with _serving(databases, "bench_scaleout_ingest", workers) as (server, url):
        loadgens = min(sizes.loadgens, max(1, sizes.ingestTerminals // 100))
        with WorkerPool(loadgens, REPO) as pool:
            counts = _split(sizes.ingestTerminals, loadgens)
            reg = _registration(pool.run(_connectOps(server, "ING", counts, 60.0), 90.0))
            if reg["registered"] != sizes.ingestTerminals:
                raise RuntimeError(
                    f"ingest: only {reg['registered']} of {sizes.ingestTerminals} terminals "
                    f"registered ({reg['failures']} failed attempts, notes {reg['notes']})"
                )
            s0, c0, d0 = server.treeSample(), pool.cpu(), databases.cpu()
            m0, me0 = machineCPU(), selfCPU()
            collect = _profile(
                server,
                sizes,
                max(1.0, sizes.ingestSeconds - 4.0),
                f"ingest-workers{workers}",
                profiles,
            )
            t0 = time.monotonic()
            replies = pool.broadcast(
                {"op": "ingest", "seconds": sizes.ingestSeconds, "batch": sizes.ingestBatch},
                sizes.ingestSeconds + 60.0,
            )
            wall = time.monotonic() - t0
            s1, c1, d1 = server.treeSample(), pool.cpu(), databases.cpu()
            m1, me1 = machineCPU(), selfCPU()
            collect()
        ours = (s1.cpu - s0.cpu) + (c1 - c0) + (me1 - me0)
        if d0 is not None and d1 is not None:
            ours += d1 - d0
        acked = sum(r["acked"] for r in replies)
        elapsed = max(r["last"] for r in replies) - min(r["start"] for r in replies)
        latencies = [x for r in replies for x in r["latencies"]]
        out.update(
            acked=acked,
            nacked=sum(r["nacked"] for r in replies),
            rate=rate(acked, elapsed),
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
            serverShare=(s1.cpu - s0.cpu) / wall,
            loadgenShare=(c1 - c0) / wall,
            dbShare=(d1 - d0) / wall if d0 is not None and d1 is not None else math.nan,
            # CPU of every other process of the machine (other work sharing its cores)
            otherShare=max(0.0, (m1 - m0) - ours) / wall,
            cpuPerRecordUs=(s1.cpu - s0.cpu) / acked * 1e6 if acked else math.nan,
        )
        # what these costs allow: every core of the machine busy with this server, its database
        # and the load generators, and nothing else
        out["ceilingAtCost"] = mostAtCost(
            acked,
            (s1.cpu - s0.cpu) + (c1 - c0) + ((d1 - d0) if d0 is not None and d1 is not None else 0),
        )
        server.stop(STOP_TIMEOUT)
        out["committed"] = _countLogs(url)
        out["committedRate"] = rate(out["committed"], elapsed)
        rows = min(max(out["committed"], 10_000), sizes.ceilingMaxRows)
        out["ceilingCopy"] = ceilingCopy(url, rows)
        out["ratioCopy"] = out["rate"] / out["ceilingCopy"] if out["ceilingCopy"] else math.nan
        out["ceilingAtCostRatio"] = (
            out["ceilingAtCost"] / out["ceilingCopy"] if out["ceilingCopy"] else math.nan
        )
    return out


def _connect(
    pool: WorkerPool, server: ServerProcess, prefix: str, total: int, timeout: float
) -> dict[str, Any]:
    counts = _split(total, len(pool))
    reg = _registration(pool.run(_connectOps(server, prefix, counts, timeout), timeout + 60.0))
    if reg["registered"] < reg["count"]:
        reg["seconds"] = math.nan  # not all registered within the bound: no time to report
    return reg


def runConnect(
    databases: Databases, sizes: Sizes, workers: int, profiles: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"workers": workers, "terminals": sizes.connTerminals}
    with _serving(databases, "bench_scaleout_connect", workers) as (server, url):
        with WorkerPool(sizes.loadgens, REPO) as pool:
            pool.broadcast({"op": "cpu"}, 30.0)  # every load generator is up and idle
            collect = _profile(server, sizes, 10.0, f"connect-workers{workers}", profiles)
            reg = _connect(pool, server, "CONN", sizes.connTerminals, sizes.phaseTimeout)
            collect()
            out.update(
                connectSeconds=reg["seconds"],
                connectP99=reg["p99"],
                connected=reg["registered"],
                connectFailures=reg["failures"],
                connectGaveUp=reg["gaveUp"],
                connectNotes=reg["notes"],
            )
            storm = _registration(
                pool.broadcast(
                    {"op": "storm", "timeout": sizes.phaseTimeout}, sizes.phaseTimeout + 60.0
                )
            )
            if storm["registered"] < storm["count"]:
                storm["seconds"] = math.nan
            out.update(
                stormSeconds=storm["seconds"],
                stormP99=storm["p99"],
                stormRegistered=storm["registered"],
                stormFailures=storm["failures"],
                stormGaveUp=storm["gaveUp"],
                stormNotes=storm["notes"],
            )
    return out


def runHold(databases: Databases, sizes: Sizes) -> dict[str, Any]:
    workers = max(sizes.workers)
    out: dict[str, Any] = {"workers": workers, "terminals": sizes.holdTerminals}
    with _serving(databases, "bench_scaleout_hold", workers) as (server, url):
        with WorkerPool(sizes.loadgens, REPO) as pool:
            pool.broadcast({"op": "cpu"}, 30.0)
            time.sleep(1.0)
            before = server.treeSample()
            reg = _connect(pool, server, "HOLD", sizes.holdTerminals, max(sizes.phaseTimeout, 60.0))
            time.sleep(2.0)  # the last registrations' writes settle
            after = server.treeSample()
            out.update(
                seconds=reg["seconds"],
                registered=reg["registered"],
                failures=reg["failures"],
                gaveUp=reg["gaveUp"],
                notes=reg["notes"],
                rssBefore=before.rss,
                rssAfter=after.rss,
                perConnection=(after.rss - before.rss) / reg["registered"]
                if reg["registered"] == reg["count"]
                else math.nan,
            )
            try:
                status, body = server.request("GET", "/api/connected/?limit=1", timeout=60.0)
            except OSError as e:  # an overloaded server: say so, keep the figures
                status, body = 0, {"error": str(e)}
            out["connectedSeen"] = body.get("count") if status == 200 and body else None
    return out


def runSuite(sizes: Sizes, databaseURL: str | None = None) -> dict[str, Any]:
    """Every part in L{Sizes.parts}; the results (errors included, never raised)."""
    limit = raiseOpenFilesLimit()
    started = time.monotonic()
    startLoad = loadAverage()
    databases = Databases(databaseURL)
    results: dict[str, Any] = {"errors": [], "profiles": {}}

    def attempt(label: str, function: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        _log(f"{label} (load average {loadAverage()})")
        t0 = time.monotonic()
        try:
            figures = function()
        except Exception as e:
            traceback.print_exc()
            results["errors"].append(f"{label}: {e}")
            return None
        figures["seconds_wall"] = time.monotonic() - t0
        _log(f"  {json.dumps(_clean(figures))[:600]}")
        return figures

    try:
        if "ingest" in sizes.parts:
            for n in sizes.workers:
                got = attempt(
                    f"ingest --workers {n}",
                    lambda n=n: runIngest(databases, sizes, n, results["profiles"]),
                )
                if got is not None:
                    results.setdefault("ingest", {})[str(n)] = got
        if "connect" in sizes.parts:
            for n in sizes.workers:
                got = attempt(
                    f"connect --workers {n}",
                    lambda n=n: runConnect(databases, sizes, n, results["profiles"]),
                )
                if got is not None:
                    results.setdefault("connect", {})[str(n)] = got
        if "hold" in sizes.parts:
            got = attempt("hold", lambda: runHold(databases, sizes))
            if got is not None:
                results["hold"] = got
        if "commands" in sizes.parts:
            got = attempt(
                "commands (same node, cross node)",
                lambda: crossnode.measure(
                    databases, sizes.callers, sizes.cmdSeconds, warmup=sizes.cmdWarmup
                ),
            )
            if got is not None:
                results["commands"] = got
        m = machine()
        results["meta"] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "make bench-scaleout (python -m bench.scaleout)",
            "machine": f"{m.get('cpu', '?')}, {m.get('cores')} cores, "
            f"{m.get('memory', '?')} RAM, {m.get('kernel')}",
            "database": databases.note,
            "open-files limit": str(limit),
            "load average (1/5/15 min) at start / end": f"{startLoad} / {loadAverage()}",
            "wall time": f"{time.monotonic() - started:.0f} s",
        }
        results["sizes"] = dataclasses.asdict(sizes)
    finally:
        databases.close()
    cleaned: dict[str, Any] = _clean(results)
    return cleaned


def _clean(value: Any) -> Any:
    """JSON-safe: NaN becomes None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# -- the report ------------------------------------------------------------------------------------


def _n(value: Any, digits: int = 0, unit: str = "") -> str:
    if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return formatNumber(float(value), digits) + (f" {unit}" if unit else "")


def _v(value: Any, target: tuple[str, float]) -> str:
    return verdict(value if isinstance(value, (int, float)) else math.nan, target)


def section(results: dict[str, Any]) -> str:
    """The figures of a run as Markdown (pure)."""
    sizes = results.get("sizes", {})
    out = [
        "## Scale-out on one host (`make bench-scaleout`)",
        "",
        "Generated by `python -m bench.scaleout` (also run by `make bench`); the analysis is "
        "in the section *Scale-out* further below (from `bench/NOTES.md`). The server is "
        "`twistd -n tm20 --workers N` (a parent holding the listening socket, N worker "
        "processes adopting it, each a node of the cluster) on a private PostgreSQL cluster; "
        "its CPU and memory are those of the parent **and** its workers. Ratios are to "
        "ceilings measured in the same run.",
        "",
    ]
    for key, value in results.get("meta", {}).items():
        out.append(f"- **{key}**: {value}")
    for error in results.get("errors", []):
        out.append(f"- **error**: {shortError(error)}")
    out.append("")
    ingest = results.get("ingest", {})
    if ingest:
        out += [
            "### Ingest",
            "",
            f"{sizes.get('ingestTerminals')} terminals, each sending `sendlog` batches of "
            f"{sizes.get('ingestBatch')} records and waiting for each ack, for "
            f"{sizes.get('ingestSeconds')} s (by Little's law, 10 000 records in flight: the "
            "workload does not cap the rate below the ceiling). *Committed* counts the rows in "
            "the table after the server stopped. The ceiling: `COPY attendance_logs FROM STDIN`"
            " of the same number of rows (10 000 per `COPY` and commit) into the same, emptied "
            "table, right after.",
            "",
            "| | " + " | ".join(f"`--workers {n}`" for n in ingest) + " | target |",
            "|---|" + "---:|" * len(ingest) + "---|",
        ]
        rows: list[tuple[str, str, int, str, tuple[str, float] | None]] = [
            ("records acknowledged /s", "rate", 0, "", None),
            ("records committed /s", "committedRate", 0, "", None),
            ("ack latency p50", "p50", 1, "ms", None),
            ("ack latency p99", "p99", 1, "ms", None),
            ("batches refused (result:false)", "nacked", 0, "", ("<=", 0)),
            ("`COPY` ceiling, rows/s", "ceilingCopy", 0, "", None),
            ("**ingest ÷ `COPY` ceiling**", "ratioCopy", 2, "", (">=", 0.5)),
            ("server CPU (parent + workers), cores", "serverShare", 2, "", None),
            ("server CPU per record acknowledged, µs", "cpuPerRecordUs", 0, "", None),
            ("PostgreSQL CPU, cores", "dbShare", 2, "", None),
            ("PostgreSQL CPU per record acknowledged, µs", "dbCpuPerRecordUs", 0, "", None),
            ("load generators' CPU, cores", "loadgenShare", 2, "", None),
            ("CPU of other processes (not this benchmark), cores", "otherShare", 2, "", None),
            (
                "the most these costs allow, records/s (every core busy with server, PostgreSQL"
                " and load generators)",
                "ceilingAtCost",
                0,
                "",
                None,
            ),
            ("… ÷ `COPY` ceiling", "ceilingAtCostRatio", 2, "", None),
        ]
        for f in ingest.values():
            share, db, per = f.get("serverShare"), f.get("dbShare"), f.get("cpuPerRecordUs")
            if share and db is not None and per is not None:
                f.setdefault("dbCpuPerRecordUs", per * db / share)
        for label, key, digits, unit, target in rows:
            cells = [_n(f.get(key), digits, unit) for f in ingest.values()]
            verdicts = ", ".join(_v(f.get(key), target) for f in ingest.values()) if target else ""
            text = f"≥ {target[1]}" if target and target[0] == ">=" else ""
            text = f"{target[1]:g}" if target and target[0] == "<=" else text
            out.append(
                f"| {label} | "
                + " | ".join(cells)
                + f" | {text}{' (' + verdicts + ')' if verdicts else ''} |"
            )
        out.append("")
    connect = results.get("connect", {})
    if connect:
        out += [
            "### Connect at once, then the reconnect storm",
            "",
            f"{sizes.get('connTerminals')} terminals connect and register at once (from "
            f"{sizes.get('loadgens')} load generators, 100 terminals per 127.x.y.z source "
            "address); then every one drops its socket at once and reconnects at once. A failed "
            "attempt is retried after 1 s, at most 5 attempts; a phase is cut after "
            f"{sizes.get('phaseTimeout')} s (then its time is n/a and *registered* says how far "
            "it got).",
            "",
            "| | " + " | ".join(f"`--workers {n}`" for n in connect) + " | target |",
            "|---|" + "---:|" * len(connect) + "---|",
        ]
        crows: list[tuple[str, str, int, str, tuple[str, float] | None]] = [
            ("connect: registered", "connected", 0, "", None),
            (
                "connect: time until all registered (n/a: not all)",
                "connectSeconds",
                2,
                "s",
                ("<=", 10),
            ),
            ("connect: failed attempts", "connectFailures", 0, "", ("<=", 0)),
            ("connect: gave up (5 attempts)", "connectGaveUp", 0, "", ("<=", 0)),
            ("storm: registered", "stormRegistered", 0, "", None),
            ("storm: time until all registered (n/a: not all)", "stormSeconds", 2, "s", ("<=", 10)),
            ("storm: failed attempts", "stormFailures", 0, "", ("<=", 0)),
            ("storm: gave up", "stormGaveUp", 0, "", ("<=", 0)),
        ]
        for label, key, digits, unit, target in crows:
            cells = [_n(f.get(key), digits, unit) for f in connect.values()]
            verdicts = (
                ", ".join(
                    "**missed** (not all registered)"
                    if key.endswith("Seconds") and f.get(key) is None
                    else _v(f.get(key), target)
                    for f in connect.values()
                )
                if target
                else ""
            )
            limit = ""
            if target:
                limit = f"< {target[1]:g} {unit}".rstrip() if target[1] else "0"
            out.append(
                f"| {label} | "
                + " | ".join(cells)
                + f" | {limit}{' (' + verdicts + ')' if verdicts else ''} |"
            )
        notes = {n: f.get("connectNotes") or f.get("stormNotes") for n, f in connect.items()}
        for n, note in notes.items():
            if note:
                out.append(f"\nFailed attempts with `--workers {n}`, by cause: `{note}`")
        out.append("")
    hold = results.get("hold")
    if hold:
        out += [
            f"### {_n(hold.get('terminals'))} terminals held by `--workers {hold.get('workers')}`",
            "",
            "| | measured | target |",
            "|---|---:|---|",
            f"| registered | {_n(hold.get('registered'))} of {_n(hold.get('terminals'))} "
            f"| all ({_v(hold.get('terminals', 0) - (hold.get('registered') or 0), ('<=', 0))}) |",
            f"| time until all registered | {_n(hold.get('seconds'), 2, 's')} | |",
            f"| failed attempts | {_n(hold.get('failures'))} | |",
            f"| RSS of parent + workers, before → after | "
            f"{_n((hold.get('rssBefore') or math.nan) / 2**20, 0, 'MiB')} → "
            f"{_n((hold.get('rssAfter') or math.nan) / 2**20, 0, 'MiB')} | |",
            f"| memory per connection | "
            f"{_n((hold.get('perConnection') or math.nan) / 1024, 1, 'KiB')} | |",
            "",
        ]
    commands = results.get("commands")
    if commands:
        same, cross = commands.get("sameNode", {}), commands.get("crossNode", {})
        out += [
            "### Command round trip, same node and cross node",
            "",
            f"`bench.crossnode`: two nodes on the same database, {commands.get('terminals')} "
            f"simulated terminals on node A, {commands.get('callers')} caller threads posting "
            f"`opendoor` (waited for) for {commands.get('seconds')} s to A (*same node*), "
            "then to B (*cross node*: B stores the command and wakes A with `NOTIFY`).",
            "",
            "| | same node | cross node | cross ÷ same | target |",
            "|---|---:|---:|---:|---|",
            f"| p50 | {_n(same.get('p50_ms'), 1, 'ms')} | {_n(cross.get('p50_ms'), 1, 'ms')} "
            f"| {_n(commands.get('crossOverSame_p50'), 2)} | |",
            f"| p99 | {_n(same.get('p99_ms'), 1, 'ms')} | {_n(cross.get('p99_ms'), 1, 'ms')} "
            f"| {_n(commands.get('crossOverSame_p99'), 2)} | < 20 ms "
            f"({_v(same.get('p99_ms'), ('<=', 20))}, {_v(cross.get('p99_ms'), ('<=', 20))}) |",
            f"| commands /s | {_n(same.get('perSecond'), 1)} | {_n(cross.get('perSecond'), 1)} "
            "| | |",
            f"| failures | {_n(same.get('failures'))} | {_n(cross.get('failures'))} | | 0 |",
        ]
        sameCPU, crossCPU = same.get("cpuPerCommandMs") or {}, cross.get("cpuPerCommandMs") or {}
        if sameCPU or crossCPU:
            for label, key in (
                ("CPU per command: the two nodes", "nodes"),
                ("… PostgreSQL", "database"),
                ("… the simulated terminals", "terminals"),
                ("… the callers (the benchmark's threads)", "callers"),
                ("… other processes (not this benchmark)", "other"),
            ):
                out.append(
                    f"| {label} | {_n(sameCPU.get(key), 2, 'ms')} "
                    f"| {_n(crossCPU.get(key), 2, 'ms')} | | |"
                )
            out += [
                f"| the most these costs allow on {same.get('cores') or cross.get('cores')} "
                f"cores, commands/s | {_n(same.get('ceilingPerSecond'), 0)} "
                f"| {_n(cross.get('ceilingPerSecond'), 0)} | | |",
                f"| … the mean round trip it implies for {commands.get('callers')} callers "
                "(Little's law) "
                f"| {_n(same.get('roundTripFloorMs'), 1, 'ms')} "
                f"| {_n(cross.get('roundTripFloorMs'), 1, 'ms')} | | |",
            ]
        out.append("")
    for name, text in results.get("profiles", {}).items():
        out += [f"### Profile: {name} (py-spy, parent and workers)", "", text, ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server where databases may be created (default: a private cluster)",
    )
    parser.add_argument(
        "--only", action="append", choices=FULL.parts, help="run only this part (repeatable)"
    )
    parser.add_argument("--no-profile", action="store_true", help="do not run py-spy")
    parser.add_argument(
        "--render", action="store_true", help="rewrite the section from the last results only"
    )
    parser.add_argument(
        "--output",
        help="write the JSON results here and leave BENCHMARKS.md alone (partial runs)",
    )
    args = parser.parse_args(argv)
    from bench import publish  # it renders this module's section: imported late, no cycle

    if args.render:
        publish.publish()
        return 0
    sizes = dataclasses.replace(
        FULL, profile=not args.no_profile, parts=tuple(args.only or FULL.parts)
    )
    results = runSuite(sizes, args.database_url)
    if args.output or args.only:
        out = args.output or os.path.join(tempfile.mkdtemp(prefix="tm20-scaleout-"), "out.json")
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
        print(section(results))
        _log(f"results written to {out} (BENCHMARKS.md untouched)")
    else:
        publish.save("scaleout", results)
        publish.publish()
        _log("BENCHMARKS.md rewritten (scale-out figures from this run)")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
