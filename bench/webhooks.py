"""
The webhooks workload: the ingest workload with one webhook subscribed to every C{log.created},
pointing to a receiver that answers at once (L{bench.receiver}, its own process).  It measures
whether delivery keeps up with a punch storm: events delivered per second, how long after the
last acknowledged punch the last event arrives (catch-up), and the lag from each event's commit
to its arrival (p50, p99).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

from bench.server import ServerProcess
from bench.stats import percentile, rate
from bench.workers import WorkerPool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=30) as response:
        stats: dict[str, Any] = json.loads(response.read())
    return stats


def runWebhooks(ctx: Any, store: str, index: int) -> dict[str, Any]:
    from bench.workloads import _connectOps, _countLogs, _registration, _split

    s = ctx.settings
    workdir = tempfile.mkdtemp(prefix="tm20-bench-")
    url = ctx.database(store, "bench_webhooks", workdir)
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver"], cwd=REPO, stdout=subprocess.PIPE
    )
    server = ServerProcess(url, workdir=workdir)
    out: dict[str, Any] = {"store": store}
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        server.start()
        status, hook = server.request(
            "POST",
            "/api/webhooks/",
            {"url": f"http://127.0.0.1:{port}/hook", "types": ["log.created"]},
        )
        if status != 201:
            raise RuntimeError(f"webhooks: creating the subscription answered {status}: {hook}")
        counts = _split(s.ingestTerminals, s.ingestWorkers)
        with WorkerPool(s.ingestWorkers, REPO) as pool:
            reg = _registration(pool.run(_connectOps(server, "WHK", counts, 60.0), 90.0))
            if reg["registered"] != s.ingestTerminals:
                raise RuntimeError(f"webhooks: only {reg['registered']} terminals registered")
            replies = pool.broadcast(
                {"op": "ingest", "seconds": s.ingestSeconds, "batch": s.ingestBatch},
                s.ingestSeconds + 30.0,
            )
            ingestEnd = time.time()  # the load generators' clocks are monotonic, not wall
        acked = sum(r["acked"] for r in replies)
        committed = _countLogs(url)
        deadline = time.monotonic() + s.webhookCatchUpSeconds
        stats = _stats(port)
        while stats["events"] < committed and time.monotonic() < deadline:
            time.sleep(0.2)
            stats = _stats(port)
        elapsed = max(r["last"] for r in replies) - min(r["start"] for r in replies)
        lags = [lag * 1000.0 for lag in stats["lags"]]
        span = (stats["last"] or 0) - (stats["first"] or 0)
        out.update(
            ingestRate=rate(acked, elapsed),
            acked=acked,
            committed=committed,
            delivered=stats["events"],
            requests=stats["requests"],
            perRequest=stats["events"] / stats["requests"] if stats["requests"] else 0.0,
            deliveredRate=rate(stats["events"], span),
            catchUp=max(0.0, (stats["last"] or 0) - ingestEnd),
            lagP50=percentile(lags, 50),
            lagP99=percentile(lags, 99),
            serverRss=server.sample().rss,
        )
        out["keepUp"] = out["deliveredRate"] / out["ingestRate"] if out["ingestRate"] else 0.0
        if stats["events"] < committed:
            raise RuntimeError(
                f"webhooks: {stats['events']} of {committed} events delivered within "
                f"{s.webhookCatchUpSeconds:.0f} s of the end of ingest"
            )
    except BaseException:
        print(f"bench: server log kept in {server.logPath}", flush=True)
        raise
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        server.stop()
        receiver.kill()
        receiver.wait()
        ctx.dropDatabase(url)
    return out


__all__ = ["runWebhooks"]
