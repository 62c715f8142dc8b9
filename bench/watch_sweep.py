"""
What watching the fleet costs: one silence sweep (with the metrics' census), one C{/metrics}
rendering, and what every terminal command pays for being watched and counted.

For N terminals (default 1 000, 10 000 and 50 000) stored in a real SQLite file and in a
private PostgreSQL cluster, each with a watch row for one in ten of them, it times:

  - a sweep (C{SilenceWatch.sweep}: the terminals and their watch fields read by pages of 1 000,
    compared with the thresholds, and the census, with its count of waiting commands), wall
    time, and the part of it spent on the reactor thread (CPU time of this process's main
    thread, which the terminals share), in all and for the longest page (the longest the
    reactor is held at once);
  - C{Metrics.render()} with every sampled gauge;
  - per command: C{Watch.heard} plus the dispatcher's counting (counter, ack counter, latency
    histogram), in microseconds.

    python -m bench.watch_sweep                      # 1 000, 10 000, 50 000 terminals
    python -m bench.watch_sweep --terminals 2000     # one size
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock

from tm20.metrics import Metrics
from tm20.services.watch import Watch


class _Registry:
    def __init__(self, sns: list[str]) -> None:
        self._sns = sns

    def connected(self) -> list[str]:
        return self._sns

    def get(self, sn: str) -> Any:
        return None


@defer.inlineCallbacks
def _fill(store: Any, n: int) -> Any:
    """N terminals, a watch row for every tenth, 100 waiting commands."""
    batch = []
    for i in range(n):
        batch.append(store.recordTerminalSeen(f"SN{i:07d}", None, {"modelname": "tfs30"}, True))
        if len(batch) >= 200:
            yield defer.gatherResults(batch)
            batch = []
    yield defer.gatherResults(batch)
    for i in range(0, n, 10):
        yield store.updateWatch(f"SN{i:07d}", {"clockDrift": 1.5, "logGap": i % 3})
    for i in range(100):
        yield store.enqueueCommand(f"SN{i:07d}", "gettime", {"cmd": "gettime"}, "bench", 3)


def _mainThreadCPU() -> float:
    return time.thread_time()


@defer.inlineCallbacks
def _measure(store: Any, n: int, runs: int) -> Any:
    clock = Clock()
    clock.advance(time.time())
    metrics = Metrics()
    watch = Watch(
        store,
        clock,
        _Registry([f"SN{i:07d}" for i in range(0, n, 2)]),
        pulls=None,
        settime=None,
        silentAfter=3600.0,
        driftThreshold=60.0,
        autoSettime=0.0,
        defaultTimezone=None,
        metrics=metrics,
        fetchMissingLogs=False,
    )
    walls, cpus, pageCPUs = [], [], []
    countPage = watch.countPage
    marks: list[float] = []

    def onPage(page: Any) -> None:
        countPage(page)
        marks.append(_mainThreadCPU())

    watch.silence.onPage = onPage
    for _ in range(runs):
        began, cpu = time.perf_counter(), _mainThreadCPU()
        marks[:] = [cpu]
        yield watch.silence.sweep()
        walls.append(time.perf_counter() - began)
        cpus.append(_mainThreadCPU() - cpu)
        pageCPUs.append(max(b - a for a, b in zip(marks, marks[1:], strict=False)))
    renders = []
    for _ in range(runs):
        began = time.perf_counter()
        text = metrics.render()
        renders.append(time.perf_counter() - began)
    assert b"tm20_terminals" in text and watch.pendingCommands == 100
    # per command: heard + the dispatcher's three instruments
    commands = 200_000
    began = time.perf_counter()
    messages, acks, latency = metrics.messages, metrics.acks, metrics.ackLatency
    for _ in range(commands):
        watch.heard("SN0000001")
        messages.labels("sendlog").inc()
        acks.labels("sendlog", "true").inc()
        latency.labels("sendlog").observe(0.004)
    perCommand = (time.perf_counter() - began) / commands
    return {
        "sweep": statistics.median(walls),
        "sweepCPU": statistics.median(cpus),
        "pageCPU": statistics.median(pageCPUs),
        "render": statistics.median(renders),
        "perCommand": perCommand,
    }


@defer.inlineCallbacks
def _run(sizes: list[int], runs: int) -> Any:
    from tests import pgharness
    from tm20.store.postgres import PostgresStore
    from tm20.store.sqlite import SQLiteStore

    cluster = pgharness.Cluster()
    cluster.start()
    folder = tempfile.mkdtemp(prefix="tm20-bench-watch-")
    rows = []
    try:
        for n in sizes:
            for kind in ("sqlite", "postgresql"):
                url = None
                if kind == "sqlite":
                    store: Any = SQLiteStore(os.path.join(folder, f"w{n}.sqlite3"), reactor=reactor)
                else:
                    url = pgharness.createDatabase("tm20_bench_watch", serverURL=cluster.url())
                    store = PostgresStore.fromURL(url, reactor)
                yield store.start()
                try:
                    yield _fill(store, n)
                    result = yield _measure(store, n, runs)
                finally:
                    yield store.stop()
                    if url is not None:
                        pgharness.dropDatabase(url)
                rows.append((n, kind, result))
                print(
                    f"{n:>6} terminals {kind:<10}  sweep {result['sweep'] * 1000:7.1f} ms"
                    f" (reactor thread CPU {result['sweepCPU'] * 1000:6.1f} ms,"
                    f" longest page {result['pageCPU'] * 1000:5.1f} ms)"
                    f"  /metrics {result['render'] * 1000:5.2f} ms"
                    f"  per command {result['perCommand'] * 1e6:4.1f} µs",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        cluster.destroy()
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terminals", type=int, action="append", help="terminal count")
    parser.add_argument("--runs", type=int, default=5, help="runs per size (median)")
    options = parser.parse_args(argv)
    sizes = options.terminals or [1_000, 10_000, 50_000]
    failure: list[Any] = []

    def done(result: Any) -> None:
        if isinstance(result, Exception) or hasattr(result, "getTraceback"):
            failure.append(result)
        reactor.stop()

    task.deferLater(reactor, 0, lambda: None).addCallback(
        lambda _: _run(sizes, options.runs)
    ).addBoth(done)
    reactor.run()
    if failure:
        print(failure[0].getTraceback(), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
