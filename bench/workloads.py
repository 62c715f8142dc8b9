"""
The workloads.  Each C{run*} function starts a fresh server (and database), drives it with the
load generators, measures, stops everything, and returns one run's figures as a flat dict.

Every wait is bounded: load-generator ops carry a timeout, HTTP requests a socket timeout, the
server's start and stop a deadline.
"""

from __future__ import annotations

import http.client
import io
import math
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.loadgen import logTime
from bench.procinfo import machineCPU, selfCPU
from bench.profiles import renderSummary, summariseFile
from bench.server import Databases, ServerProcess, apiCall
from bench.stats import percentile, rate
from bench.webhooks import runWebhooks
from bench.workers import WorkerPool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Settings:
    """The size of each workload (L{FULL}, L{QUICK}, L{SOAK})."""

    name: str
    runs: int = 3
    ingestTerminals: int = 100
    ingestBatch: int = 10
    ingestSeconds: float = 20.0
    ingestWorkers: int = 2
    ingestStores: tuple[str, ...] = ("postgresql", "sqlite")
    ceilingMaxRows: int = 200_000
    connTerminals: int = 10_000
    connWorkers: int = 4
    connStores: tuple[str, ...] = ("postgresql",)
    #: the longest a connect or reconnect phase may last (then it is reported as incomplete)
    phaseTimeout: float = 30.0
    #: the longest each command phase (sequential, concurrent) may last; one request at most 5 s
    cmdPhaseSeconds: float = 15.0
    #: the suite stops starting new runs after this many seconds (the rest is reported skipped):
    #: a bound for a suite whose phases keep timing out, not for a slow machine (the full suite
    #: took 566 s and 582 s on the 2-core machine on two days; 560 s skipped its last run)
    budget: float = 900.0
    cmdSequential: int = 300
    cmdConcurrency: int = 20
    cmdPerClient: int = 30
    backfillLogs: int = 100_000
    pushBatch: int = 100
    backfillStores: tuple[str, ...] = ("postgresql",)
    soakTerminals: int = 10_000
    soakSeconds: float = 300.0
    soakInterval: float = 10.0
    webhookStores: tuple[str, ...] = ("postgresql", "sqlite")
    #: how long delivery may trail the end of ingest before the run counts as failed
    webhookCatchUpSeconds: float = 120.0
    workloads: tuple[str, ...] = ("ingest", "connections", "backfill", "webhooks")
    profile: bool = True
    profileDir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="tm20-bench-prof-"))


FULL = Settings(name="full")
QUICK = Settings(
    name="quick",
    runs=1,
    ingestSeconds=5.0,
    ingestStores=("postgresql", "sqlite"),
    ceilingMaxRows=50_000,
    connTerminals=2_000,
    connWorkers=2,
    cmdSequential=100,
    cmdPerClient=10,
    backfillLogs=10_000,
    profile=False,
    budget=110.0,
)
SOAK = Settings(name="soak", runs=1, workloads=("soak",), budget=900.0)


class Context:
    """What every workload needs: the databases, the settings, the profiles taken."""

    def __init__(self, settings: Settings, databases: Databases) -> None:
        self.settings = settings
        self.databases = databases
        self.profiles: dict[str, str] = {}
        self.log: Callable[[str], None] = print

    def database(self, store: str, prefix: str, workdir: str) -> str:
        if store == "postgresql":
            return self.databases.create(prefix)
        return "sqlite:" + os.path.join(workdir, f"{prefix}.sqlite3")

    def dropDatabase(self, url: str) -> None:
        if url.startswith("postgres"):
            self.databases.drop(url)


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _connectOps(server: ServerProcess, prefix: str, counts: list[int], timeout: float) -> list[Any]:
    return [
        {
            "op": "connect",
            "port": server.port,
            "prefix": f"{prefix}{w}-",
            "count": n,
            # terminals dial from many loopback addresses, 100 per address (one site's NAT):
            # a per-address limit sees a realistic fleet, and no address runs out of ports
            "sourceBase": f"127.{10 + w}",
            "perAddress": 100,
            "timeout": timeout,
            "regTimeout": 20.0,
            "retryDelay": 1.0,
            "maxAttempts": 5,
        }
        for w, n in enumerate(counts)
    ]


def _registration(replies: list[dict[str, Any]]) -> dict[str, Any]:
    start = min(r["start"] for r in replies)
    last = max(r["last"] for r in replies)
    times = [t for r in replies for t in r["regTimes"]]
    notes: dict[str, int] = {}
    for r in replies:
        for k, v in r.get("notes", {}).items():
            notes[k] = notes.get(k, 0) + v
    return {
        "registered": sum(r["registered"] for r in replies),
        "count": sum(r["count"] for r in replies),
        "failures": sum(r["failures"] for r in replies),
        "gaveUp": sum(r["gaveUp"] for r in replies),
        "seconds": last - start if last else math.nan,
        "p50": percentile(times, 50),
        "p99": percentile(times, 99),
        "notes": notes,
    }


# -- ingest ----------------------------------------------------------------------------------------


def runIngest(ctx: Context, store: str, index: int) -> dict[str, Any]:
    s = ctx.settings
    workdir = tempfile.mkdtemp(prefix="tm20-bench-")
    url = ctx.database(store, "bench_ingest", workdir)
    server = ServerProcess(url, workdir=workdir)
    server.start()
    out: dict[str, Any] = {"store": store}
    try:
        counts = _split(s.ingestTerminals, s.ingestWorkers)
        with WorkerPool(s.ingestWorkers, REPO) as pool:
            reg = _registration(pool.run(_connectOps(server, "ING", counts, 60.0), 90.0))
            if reg["registered"] != s.ingestTerminals:
                raise RuntimeError(f"ingest: only {reg['registered']} terminals registered")
            s0, c0, d0 = server.sample(), pool.cpu(), ctx.databases.cpu()
            m0, me0 = machineCPU(), selfCPU()
            profiler = None
            profPath = os.path.join(s.profileDir, f"ingest-{store}.txt")
            if s.profile and index == 0:
                profiler = server.profile(max(1.0, s.ingestSeconds - 4.0), profPath)
            t0 = time.monotonic()
            replies = pool.broadcast(
                {"op": "ingest", "seconds": s.ingestSeconds, "batch": s.ingestBatch},
                s.ingestSeconds + 30.0,
            )
            wall = time.monotonic() - t0
            s1, c1, d1 = server.sample(), pool.cpu(), ctx.databases.cpu()
            m1, me1 = machineCPU(), selfCPU()
            if profiler is not None:
                profiler.wait(30)
                summary = summariseFile(profPath, 20)
                if summary is not None and summary.samples:
                    ctx.profiles[f"ingest-{store}"] = renderSummary(summary)
            ours = (s1.cpu - s0.cpu) + (c1 - c0) + (me1 - me0)
            if d0 is not None and d1 is not None:
                ours += d1 - d0
            out["otherCpu"] = max(0.0, (m1 - m0) - ours)
            out["machineShare"] = (m1 - m0) / wall
        acked = sum(r["acked"] for r in replies)
        elapsed = max(r["last"] for r in replies) - min(r["start"] for r in replies)
        latencies = [x for r in replies for x in r["latencies"]]
        out.update(
            rate=rate(acked, elapsed),
            acked=acked,
            nacked=sum(r["nacked"] for r in replies),
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
            elapsed=elapsed,
            serverCpu=s1.cpu - s0.cpu,
            serverShare=(s1.cpu - s0.cpu) / wall,
            loadgenCpu=c1 - c0,
            dbCpu=(d1 - d0) if d0 is not None and d1 is not None else math.nan,
            wall=wall,
            serverRss=s1.rss,
        )
        server.stop()
        out["committed"] = _countLogs(url)
        if store == "postgresql":
            rows = min(max(out["committed"], 10_000), s.ceilingMaxRows)
            out["ceilingInsert"] = ceilingInsert(url, rows)
            out["ceilingCopy"] = ceilingCopy(url, rows)
        else:
            rows = min(max(out["committed"], 10_000), s.ceilingMaxRows)
            out["ceilingInsert"] = ceilingSQLite(url, rows)
            out["ceilingCopy"] = math.nan
        out["ratio"] = out["rate"] / out["ceilingInsert"] if out["ceilingInsert"] else math.nan
        out["ratioCopy"] = (
            out["rate"] / out["ceilingCopy"]
            if isinstance(out["ceilingCopy"], float) and out["ceilingCopy"] > 0
            else math.nan
        )
    except BaseException:
        print(f"bench: server log kept in {server.logPath}", flush=True)
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.stop()
        ctx.dropDatabase(url)
    return out


def _countLogs(url: str) -> int:
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url[len("sqlite:") :])
        try:
            return int(conn.execute("SELECT count(*) FROM attendance_logs").fetchone()[0])
        finally:
            conn.close()
    import psycopg2

    pg = psycopg2.connect(url)
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT count(*) FROM attendance_logs")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        pg.close()


def ceilingRows(count: int, terminals: int = 100, batch: int = 10) -> Iterator[tuple[Any, ...]]:
    """
    The rows the ingest workload's terminals send (same sns, same record numbering), as
    C{(sn, enrollid, time, mode, inout, event)}, interleaved as they arrive.
    """
    made = 0
    first = 0
    while made < count:
        for t in range(terminals):
            sn = f"CEIL{t % 2}-{t // 2:06d}"
            for n in range(first, first + batch):
                yield (sn, n % 1000 + 1, logTime(n // 1000), 1, n & 1, 0)
                made += 1
                if made >= count:
                    return
        first += batch


_PG_COLUMNS = "sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra, received_at"


def _timedPostgres(url: str, load: Callable[[Any, Any], None]) -> float:
    """
    Rows/s of C{load(connection, cursor)} into the emptied C{attendance_logs} (the same table,
    indexes and constraints the server writes to), counted by the table afterwards.
    """
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE attendance_logs")
            conn.commit()
            start = time.perf_counter()
            load(conn, cur)
            elapsed = time.perf_counter() - start
            cur.execute("SELECT count(*) FROM attendance_logs")
            row = cur.fetchone()
            stored = int(row[0]) if row else 0
    finally:
        conn.close()
    return rate(stored, elapsed)


def ceilingInsert(url: str, rows: int, perStatement: int = 1000) -> float:
    """
    Rows/s of plain psycopg2 multi-row C{INSERT ... VALUES (...), ... ON CONFLICT DO NOTHING}
    (C{execute_values}, C{perStatement} rows per statement, one commit per statement).
    """
    import psycopg2.extras

    data = list(ceilingRows(rows))
    now = datetime.now(UTC)

    def load(conn: Any, cur: Any) -> None:
        for i in range(0, len(data), perStatement):
            psycopg2.extras.execute_values(
                cur,
                f"INSERT INTO attendance_logs ({_PG_COLUMNS}) VALUES %s "
                "ON CONFLICT (sn, enrollid, time, mode, inout, event) DO NOTHING",
                [(*r, now) for r in data[i : i + perStatement]],
                template="(%s, %s, %s, %s, %s, %s, NULL, NULL, NULL, '{}', %s)",
                page_size=perStatement,
            )
            conn.commit()

    return _timedPostgres(url, load)


def ceilingCopy(url: str, rows: int, perCopy: int = 10_000) -> float:
    """Rows/s of C{COPY attendance_logs FROM STDIN}, C{perCopy} rows per COPY and commit."""
    data = list(ceilingRows(rows))
    now = datetime.now(UTC).isoformat()

    def load(conn: Any, cur: Any) -> None:
        for i in range(0, len(data), perCopy):
            text = "".join(
                f"{sn}\t{e}\t{t}\t{m}\t{io_}\t{ev}\t\\N\t\\N\t\\N\t{{}}\t{now}\n"
                for sn, e, t, m, io_, ev in data[i : i + perCopy]
            )
            cur.copy_expert(f"COPY attendance_logs ({_PG_COLUMNS}) FROM STDIN", io.StringIO(text))
            conn.commit()

    return _timedPostgres(url, load)


def ceilingSQLite(url: str, rows: int, perTransaction: int = 1000) -> float:
    """
    Rows/s of plain C{sqlite3} C{executemany("INSERT OR IGNORE ...")} into the same file and
    table, with the store's settings (WAL, C{synchronous=FULL}), C{perTransaction} rows a commit.
    """
    data = list(ceilingRows(rows))
    now = datetime.now(UTC).isoformat()
    conn = sqlite3.connect(url[len("sqlite:") :], isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("DELETE FROM attendance_logs")
        start = time.perf_counter()
        for i in range(0, len(data), perTransaction):
            conn.execute("BEGIN")
            conn.executemany(
                f"INSERT OR IGNORE INTO attendance_logs ({_PG_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, '{}', ?)",
                [(*r, now) for r in data[i : i + perTransaction]],
            )
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        stored = int(conn.execute("SELECT count(*) FROM attendance_logs").fetchone()[0])
    finally:
        conn.close()
    return rate(stored, elapsed)


# -- connections, reconnect storm, command round trip ------------------------------------------


def runConnections(ctx: Context, store: str, index: int) -> dict[str, Any]:
    s = ctx.settings
    workdir = tempfile.mkdtemp(prefix="tm20-bench-")
    url = ctx.database(store, "bench_conn", workdir)
    server = ServerProcess(url, workdir=workdir)
    server.start()
    out: dict[str, Any] = {"store": store}
    try:
        counts = _split(s.connTerminals, s.connWorkers)
        with WorkerPool(s.connWorkers, REPO) as pool:
            pool.broadcast({"op": "cpu"}, 30.0)  # every load generator is up and idle
            time.sleep(0.5)
            base = server.sample()
            c0 = pool.cpu()
            profiler = None
            profPath = os.path.join(s.profileDir, f"connect-{store}.txt")
            if s.profile and index == 0:
                profiler = server.profile(8.0, profPath)
            replies = pool.run(_connectOps(server, "CONN", counts, s.phaseTimeout), 120.0)
            reg = _registration(replies)
            if reg["registered"] < reg["count"]:
                reg["seconds"] = s.phaseTimeout  # not all within the bound: a lower bound
            if profiler is not None:
                profiler.wait(30)
                summary = summariseFile(profPath, 20)
                if summary is not None and summary.samples:
                    ctx.profiles[f"connect-{store}"] = renderSummary(summary)
            out.update(
                connectSeconds=reg["seconds"],
                connectP50=reg["p50"],
                connectP99=reg["p99"],
                connected=reg["registered"],
                connectFailures=reg["failures"],
                connectNotes=reg["notes"],
            )
            loaded = server.sample()
            time.sleep(1.0)
            settled = server.sample()
            out.update(
                rssBase=base.rss,
                rssLoaded=settled.rss,
                # only meaningful when every terminal is connected (not amid a pile of retries)
                perConnection=(settled.rss - base.rss) / reg["registered"]
                if reg["registered"] == reg["count"]
                else math.nan,
                connectServerCpu=loaded.cpu - base.cpu,
                connectLoadgenCpu=pool.cpu() - c0,
            )
            # the reconnect storm: every terminal drops at once and reconnects at once
            before = server.sample()
            storm = _registration(
                pool.broadcast({"op": "storm", "timeout": s.phaseTimeout}, s.phaseTimeout + 30)
            )
            if storm["registered"] < storm["count"]:
                storm["seconds"] = s.phaseTimeout
            after = server.sample()
            out.update(
                stormSeconds=storm["seconds"],
                stormP50=storm["p50"],
                stormP99=storm["p99"],
                stormRegistered=storm["registered"],
                stormFailures=storm["failures"],
                stormGaveUp=storm["gaveUp"],
                stormNotes=storm["notes"],
                stormServerCpu=after.cpu - before.cpu,
            )
            # commands go to terminals registered now, once the server answers /health quickly
            # (its database pool is not buried under queued registrations), bounded in time
            out["settleSeconds"] = _settle(server, 20.0)
            sns = [sn for r in pool.broadcast({"op": "registered"}, 30.0) for sn in r["sns"]]
            out["commandTargets"] = len(sns)
            profiler = None
            profPath = os.path.join(s.profileDir, f"command-{store}.txt")
            if s.profile and index == 0:
                profiler = server.profile(8.0, profPath)
            if sns:
                out.update(commandRoundTrips(server, sns, s, index))
            if profiler is not None:
                profiler.wait(30)
                summary = summariseFile(profPath, 20)
                if summary is not None and summary.samples:
                    ctx.profiles[f"command-{store}"] = renderSummary(summary)
            out["rssEnd"] = server.sample().rss
    except BaseException:
        print(f"bench: server log kept in {server.logPath}", flush=True)
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.stop()
        ctx.dropDatabase(url)
    return out


def _settle(server: ServerProcess, bound: float) -> float:
    """Wait (at most C{bound} s) until C{GET /health} answers within 50 ms; the time waited."""
    start = time.monotonic()
    while time.monotonic() - start < bound:
        t = time.monotonic()
        try:
            status, _ = server.request("GET", "/health", timeout=max(0.5, bound))
        except OSError:
            status = 0
        if status == 200 and time.monotonic() - t < 0.05:
            break
        time.sleep(0.2)
    return time.monotonic() - start


def commandRoundTrips(
    server: ServerProcess, sns: list[str], s: Settings, seed: int
) -> dict[str, Any]:
    """
    C{POST /api/terminals/{sn}/command/} (opendoor) to random connected terminals: one caller
    in sequence, then C{cmdConcurrency} callers at once (threads, one kept-alive connection
    each).  Latency: from sending the request to the full response (the terminal's reply).
    """
    body = {"command": "opendoor", "params": {"doornum": 1}}
    rng = random.Random(seed)
    timeout = 5.0
    deadline = [0.0]

    def caller(count: int, latencies: list[float], errors: list[str], picks: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        try:
            for sn in picks[:count]:
                if time.monotonic() > deadline[0]:
                    errors.append("not sent: phase deadline passed")
                    continue
                t = time.perf_counter()
                try:
                    status, reply = apiCall(
                        conn, "POST", f"/api/terminals/{sn}/command/", server.token, body
                    )
                except (OSError, http.client.HTTPException) as e:
                    errors.append(type(e).__name__)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
                    continue
                latencies.append((time.perf_counter() - t) * 1000.0)
                ok = (
                    status == 200 and isinstance(reply, dict) and reply.get("status") == "succeeded"
                )
                if not ok:
                    errors.append(f"{status} {str(reply)[:120]}")
        finally:
            conn.close()

    seqLatencies: list[float] = []
    seqErrors: list[str] = []
    deadline[0] = time.monotonic() + s.cmdPhaseSeconds
    t0 = time.perf_counter()
    caller(
        s.cmdSequential, seqLatencies, seqErrors, [rng.choice(sns) for _ in range(s.cmdSequential)]
    )
    seqWall = time.perf_counter() - t0

    conLatencies: list[list[float]] = [[] for _ in range(s.cmdConcurrency)]
    conErrors: list[str] = []
    threads = [
        threading.Thread(
            target=caller,
            args=(
                s.cmdPerClient,
                conLatencies[i],
                conErrors,
                [rng.choice(sns) for _ in range(s.cmdPerClient)],
            ),
        )
        for i in range(s.cmdConcurrency)
    ]
    deadline[0] = time.monotonic() + s.cmdPhaseSeconds
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(s.cmdPhaseSeconds + timeout + 5.0)
    conWall = time.perf_counter() - t0
    allCon = [x for lst in conLatencies for x in lst]
    return {
        "cmdSeqP50": percentile(seqLatencies, 50),
        "cmdSeqP99": percentile(seqLatencies, 99),
        "cmdSeqRate": rate(len(seqLatencies), seqWall),
        "cmdSeqErrors": len(seqErrors),
        "cmdConP50": percentile(allCon, 50),
        "cmdConP99": percentile(allCon, 99),
        "cmdConRate": rate(len(allCon), conWall),
        "cmdConErrors": len(conErrors),
        "cmdErrorSample": sorted(set(seqErrors + conErrors))[:5],
    }


# -- back-fill -------------------------------------------------------------------------------------


def runBackfill(ctx: Context, store: str, index: int) -> dict[str, Any]:
    s = ctx.settings
    workdir = tempfile.mkdtemp(prefix="tm20-bench-")
    url = ctx.database(store, "bench_backfill", workdir)
    server = ServerProcess(url, workdir=workdir)
    server.start()
    out: dict[str, Any] = {"store": store, "logs": s.backfillLogs}
    try:
        with WorkerPool(2, REPO) as pool:
            holders = ["PULL000001", "PUSH000001"]
            pool.run(
                [
                    {
                        "op": "hold",
                        "port": server.port,
                        "sn": sn,
                        "logs": s.backfillLogs,
                        "seed": 7,
                        "source": f"127.0.0.{2 + i}",
                        "timeout": 120.0,
                    }
                    for i, sn in enumerate(holders)
                ],
                180.0,
            )
            profiler = None
            profPath = os.path.join(s.profileDir, f"pull-{store}.txt")
            if s.profile and index == 0:
                profiler = server.profile(6.0, profPath)
            t0 = time.perf_counter()
            status, reply = server.request(
                "POST", f"/api/terminals/{holders[0]}/logs/pull/", {"source": "all"}, timeout=90
            )
            pullSeconds = time.perf_counter() - t0
            if profiler is not None:
                profiler.wait(30)
                summary = summariseFile(profPath, 20)
                if summary is not None and summary.samples:
                    ctx.profiles[f"pull-{store}"] = renderSummary(summary)
            if status != 200 or not isinstance(reply, dict):
                raise RuntimeError(f"pull failed: {status} {reply}")
            out.update(
                pullSeconds=pullSeconds,
                pullRate=rate(reply.get("inserted", 0), pullSeconds),
                pullReceived=reply.get("received"),
                pullInserted=reply.get("inserted"),
            )
            (push,) = pool.run(
                [{"op": "push", "batch": s.pushBatch, "timeout": 40.0}],
                60.0,
                workers=[pool.workers[1]],
            )
            pushSeconds = push["last"] - push["start"]
            out.update(
                pushSeconds=pushSeconds,
                pushRate=rate(push["acked"], pushSeconds),
                pushAcked=push["acked"],
                pushPending=push["pending"],
                pushTimedOut=push["timedOut"],
            )
        server.stop()
        out["committed"] = _countLogs(url)
    except BaseException:
        print(f"bench: server log kept in {server.logPath}", flush=True)
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.stop()
        ctx.dropDatabase(url)
    return out


# -- idle soak -------------------------------------------------------------------------------------


def runSoak(ctx: Context, store: str, index: int) -> dict[str, Any]:
    s = ctx.settings
    workdir = tempfile.mkdtemp(prefix="tm20-bench-")
    url = ctx.database(store, "bench_soak", workdir)
    server = ServerProcess(url, workdir=workdir)
    server.start()
    out: dict[str, Any] = {"store": store, "terminals": s.soakTerminals}
    try:
        counts = _split(s.soakTerminals, s.connWorkers)
        with WorkerPool(s.connWorkers, REPO) as pool:
            reg = _registration(pool.run(_connectOps(server, "SOAK", counts, 90.0), 120.0))
            out["connected"] = reg["registered"]
            time.sleep(2.0)
            start = server.sample()
            c0 = pool.cpu()
            d0 = ctx.databases.cpu() if store == "postgresql" else None
            rssTrace: list[tuple[float, int]] = []
            t0 = time.monotonic()
            for w in pool.workers:
                w.send({"op": "soak", "seconds": s.soakSeconds, "interval": s.soakInterval})
            # sample the server's RSS while the load generators run (bounded by the soak time)
            deadline = t0 + s.soakSeconds
            while time.monotonic() < deadline:
                time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
                rssTrace.append((time.monotonic() - t0, server.sample().rss))
            replies = pool._collect(pool.workers, s.soakInterval + 60.0)
            end = server.sample()
            wall = time.monotonic() - t0
            latencies = [x for r in replies for x in r["latencies"]]
            d1 = ctx.databases.cpu() if store == "postgresql" else None
            out.update(
                rssStart=start.rss,
                rssEnd=end.rss,
                rssMax=max(r for _, r in rssTrace) if rssTrace else end.rss,
                rssTrace=rssTrace,
                serverShare=(end.cpu - start.cpu) / wall,
                loadgenShare=(pool.cpu() - c0) / wall,
                dbShare=((d1 - d0) / wall) if d0 is not None and d1 is not None else math.nan,
                acked=sum(r["acked"] for r in replies),
                nacked=sum(r["nacked"] for r in replies),
                skipped=sum(r["skipped"] for r in replies),
                stillConnected=sum(r["connected"] for r in replies),
                p50=percentile(latencies, 50),
                p99=percentile(latencies, 99),
                wall=wall,
            )
    except BaseException:
        print(f"bench: server log kept in {server.logPath}", flush=True)
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.stop()
        ctx.dropDatabase(url)
    return out


WORKLOADS: dict[str, tuple[Callable[[Context, str, int], dict[str, Any]], str]] = {
    "ingest": (runIngest, "ingestStores"),
    "connections": (runConnections, "connStores"),
    "backfill": (runBackfill, "backfillStores"),
    "soak": (runSoak, "connStores"),
    "webhooks": (runWebhooks, "webhookStores"),
}

__all__ = [
    "FULL",
    "QUICK",
    "SOAK",
    "WORKLOADS",
    "Context",
    "Settings",
    "ceilingCopy",
    "ceilingInsert",
    "ceilingRows",
    "ceilingSQLite",
    "commandRoundTrips",
]
