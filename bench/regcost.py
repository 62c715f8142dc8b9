"""
What one registration costs the server, counted: C{python -m bench.regcost [--terminals 2000]
[--storm] [--top 15]}.

The server (C{buildServer}, default settings) runs in this process on a private PostgreSQL
cluster (C{fsync} on); the terminals are C{bench.loadgen} processes (L{bench.workers}) on
loopback, as in C{bench.run}'s connection workload, so this process's CPU is the server's alone.
From the first connection until the follow-up work of the registrations has settled (no
statement for C{--quiet} seconds), counted per registration: the pool's hand-outs (one per
transaction or one-statement read), the transactions committed, the statements sent (round
trips, C{BEGIN} riding along, C{COMMIT} included) and the server's CPU seconds; with
C{--storm}, the same again for the reconnect storm.  Prints one JSON line (C{--top}: the
statements sent most often, by their first words).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import time
from collections import Counter, deque
from typing import Any

from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from bench import inprocess
from bench.workers import WorkerPool
from bench.workloads import _connectOps, _registration, _split
from tm20.collector import CHECK_SECONDS
from tm20.config import ServerConfig
from tm20.service import TM20Service, buildServer, collectorFor
from tm20.store import _pgpool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Counts:
    """Statements and hand-outs of the pool since the last L{take}."""

    def __init__(self) -> None:
        self.handouts = 0
        self.commits = 0
        self.statements = 0
        self.recent: deque[float] = deque(maxlen=16)
        self.kinds: Counter[str] = Counter()

    def take(self) -> dict[str, Any]:
        out = {
            "handouts": self.handouts,
            "commits": self.commits,
            "statements": self.statements,
            "kinds": self.kinds,
        }
        self.handouts = self.commits = self.statements = 0
        self.kinds = Counter()
        return out


def _instrument(counts: _Counts) -> None:
    execute = _pgpool.Cursor.execute
    run = _pgpool.Pool._run

    async def countedExecute(self: Any, sql: str, params: Any = None, commit: bool = False) -> Any:
        counts.statements += 1
        counts.recent.append(time.monotonic())
        if sql == "COMMIT" or commit:
            counts.commits += 1
        counts.kinds[re.sub(r"\s+", " ", sql.strip())[:70]] += 1
        return await execute(self, sql, params, commit)

    def countedRun(self: Any, *args: Any) -> Any:
        counts.handouts += 1
        return run(self, *args)

    _pgpool.Cursor.execute = countedExecute  # type: ignore[method-assign]
    _pgpool.Pool._run = countedRun  # type: ignore[method-assign]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _settled(reactor: Any, counts: _Counts, quiet: float, limit: float) -> float:
    """
    Wait until at most 4 statements were sent in the last C{quiet} seconds (the periodic
    health probe and lease renewal go on); the seconds waited.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        now = time.monotonic()
        if now - t0 >= quiet and sum(1 for at in counts.recent if now - at < quiet) <= 4:
            break
        await deferLater(reactor, 0.2, lambda: None)
    return time.monotonic() - t0


def _perRegistrationMs(cpu: float, reg: dict[str, Any]) -> float:
    """
    The server's CPU from the first connection until every load generator had its answers
    (all registered, or given up), per registration: no idle wait subtracted, so it does not
    swing with how long the follow-up took to settle.
    """
    return round(cpu / max(1, reg["registered"]) * 1000, 3)


def _phase(
    name: str, counts: _Counts, reg: dict[str, Any], cpu: float, settle: float, top: int
) -> dict[str, Any]:
    taken = counts.take()
    n = max(1, reg["registered"])
    attempts = max(1, reg["registered"] + reg["failures"])
    return {
        f"{name}Registered": reg["registered"],
        f"{name}Failures": reg["failures"],
        f"{name}Seconds": round(reg["seconds"], 2),
        f"{name}SettleSeconds": round(settle, 1),
        f"{name}CpuPerRegistrationMs": round(cpu / n * 1000, 3),
        f"{name}HandoutsPerAttempt": round(taken["handouts"] / attempts, 3),
        f"{name}CommitsPerAttempt": round(taken["commits"] / attempts, 3),
        f"{name}StatementsPerAttempt": round(taken["statements"] / attempts, 3),
        f"{name}Top": [[k, v] for k, v in taken["kinds"].most_common(top)],
    }


async def _run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    counts = _Counts()
    _instrument(counts)
    store = inprocess.store(args.database, reactor)
    config = ServerConfig(ports=("tcp:0:interface=127.0.0.1",), logLevel="warn")
    server = buildServer(config, reactor, store)
    # the collector as a server process settles it (tm20.collector)
    collector = collectorFor(server)
    service = TM20Service(server, collector=collector)
    service.startService()
    ports = await service.ready
    port = ports[0].getHost().port  # type: ignore[attr-defined]

    class _Server:  # what _connectOps reads
        pass

    server = _Server()
    server.port = port  # type: ignore[attr-defined]
    out: dict[str, Any] = {"terminals": args.terminals}
    pool = WorkerPool(args.workers, REPO)
    try:
        await deferToThread(pool.broadcast, {"op": "cpu"}, 30.0)
        await deferLater(reactor, 1.0, lambda: None)
        await _settled(reactor, counts, args.quiet, 30.0)
        counts.take()
        rss0, cpu0 = _rss(), _cpu()
        profiler = None
        if args.profile:
            import cProfile

            # by the reactor thread's CPU time: waits (epoll, the GIL, a loaded machine) left out
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
        ops = _connectOps(server, "RC", _split(args.terminals, args.workers), 30.0)  # type: ignore[arg-type]
        replies = await deferToThread(pool.run, ops, 120.0)
        registeredCpu = _cpu() - cpu0
        reg = _registration(replies)
        settle = await _settled(reactor, counts, args.quiet, 120.0)
        cpu = _cpu() - cpu0 - min(settle, args.quiet)  # the quiet wait is not work
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        out.update(_phase("connect", counts, reg, max(cpu, 0.0), settle, args.top))
        out["connectCpuUntilRegisteredMs"] = _perRegistrationMs(registeredCpu, reg)
        out["perConnectionKiB"] = round((_rss() - rss0) / max(1, reg["registered"]) / 1024, 1)
        if args.storm:
            cpu0 = _cpu()
            stormOp = {"op": "storm", "timeout": 30.0}
            replies = await deferToThread(pool.broadcast, stormOp, 60.0)
            registeredCpu = _cpu() - cpu0
            reg = _registration(replies)
            settle = await _settled(reactor, counts, args.quiet, 120.0)
            cpu = _cpu() - cpu0 - min(settle, args.quiet)
            out.update(_phase("storm", counts, reg, max(cpu, 0.0), settle, args.top))
            out["stormCpuUntilRegisteredMs"] = _perRegistrationMs(registeredCpu, reg)
        out["maxRssMiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        # the memory now, then once the collector's pass after a burst has had its time
        out["rssMiB"] = round(_rss() / 2**20, 1)
        await deferLater(reactor, 2 * CHECK_SECONDS + 1.0, lambda: None)
        out["rssSettledMiB"] = round(_rss() / 2**20, 1)
        out["collectorPasses"] = collector.passes
        out["loadAverage"] = os.getloadavg()[0]
        return out
    finally:
        await deferToThread(pool.close)
        await service.stopService()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.regcost", description=__doc__)
    parser.add_argument("--terminals", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--storm", action="store_true", help="then the reconnect storm")
    parser.add_argument(
        "--quiet", type=float, default=2.0, help="seconds of quiet that end a phase"
    )
    parser.add_argument(
        "--profile", help="cProfile (reactor thread CPU time) the connect phase into this file"
    )
    parser.add_argument("--top", type=int, default=12, help="statements listed (0: none)")
    inprocess.addStoreArguments(parser)
    args = parser.parse_args(argv)
    if not args.database:
        args.postgres = True
    inprocess.runOnce(args, "bench_regcost", _run)


if __name__ == "__main__":
    main()
