"""
Command round trip across nodes: C{python -m bench.crossnode [--callers 20] [--seconds 15]}.

Two real C{twistd tm20} nodes (A, B) on one private PostgreSQL cluster; 20 simulated terminals
(C{python -m tm20.simulator}, a separate process) connected to node A.  C{--callers} threads,
each with a kept-alive HTTP connection, post C{opendoor} (waited for: the terminal's reply) for
the terminals in turn, for C{--seconds}:

  - B{same node}: posted to A, which holds the terminals (the reference: the ceiling of the
    same run);
  - B{cross node}: posted to B, which stores the command, wakes A (C{NOTIFY}), and answers once A
    has delivered it and woken B back.

Each phase also takes the CPU it cost, per command, by process: the two nodes, PostgreSQL, the
simulated terminals, the callers (this process) and the rest of the machine; and what those costs
allow on this machine's cores: at most C{cores / CPU per command} commands per second, so with
C{callers} always waiting (a closed loop) a mean round trip of at least C{callers} divided by that
rate (Little's law) — the floor any p50 or p99 of the same run sits on.

Prints one JSON object with p50/p99 of both and their ratio (appended to C{--out} when given).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import subprocess
import sys
import threading
import time
from typing import Any

from bench.procinfo import machineCPU, sample, selfCPU
from bench.server import Databases, ServerProcess, apiCall
from bench.stats import mostAtCost, percentile

TERMINALS = 20


def _callers(port: int, token: str, sns: list[str], callers: int, seconds: float) -> Any:
    """Round trips (seconds) and failures of C{callers} threads posting for C{seconds}."""
    latencies: list[float] = []
    failures: list[Any] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        i = index
        try:
            while time.monotonic() < deadline:
                sn = sns[i % len(sns)]
                i += callers
                started = time.perf_counter()
                status, body = apiCall(
                    conn,
                    "POST",
                    f"/api/terminals/{sn}/command/",
                    token,
                    {"command": "opendoor", "params": {"doornum": 1}},
                )
                elapsed = time.perf_counter() - started
                if status != 200 or body.get("status") != "succeeded":
                    with lock:
                        failures.append((status, body))
                    continue
                mine.append(elapsed)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures


def _summary(latencies: list[float], seconds: float) -> dict[str, Any]:
    return {
        "commands": len(latencies),
        "perSecond": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


def _cpu(nodes: list[ServerProcess], simulator: Any, databases: Databases) -> dict[str, float]:
    """CPU seconds so far of the nodes, the terminals, PostgreSQL, this process, the machine."""
    return {
        "nodes": sum(node.sample().cpu for node in nodes),
        "terminals": sample(simulator.pid).cpu,
        "database": databases.cpu() or 0.0,
        "callers": selfCPU(),
        "machine": machineCPU(),
    }


def cpuBudget(
    before: dict[str, float], after: dict[str, float], commands: int, callers: int
) -> dict[str, Any]:
    """
    What one command cost each process between the two L{_cpu} samples (ms), and what that
    allows on this machine's cores: C{ceilingPerSecond} (every core busy with nothing else) and
    C{roundTripFloorMs}, the mean round trip of C{callers} in a closed loop at that rate.
    """
    spent = {key: after[key] - before[key] for key in before}
    ours = spent["nodes"] + spent["terminals"] + spent["database"] + spent["callers"]
    perCommand = {
        key: round(spent[key] / commands * 1000, 3) if commands else math.nan
        for key in ("nodes", "database", "terminals", "callers")
    }
    perCommand["other"] = (
        round(max(0.0, spent["machine"] - ours) / commands * 1000, 3) if commands else math.nan
    )
    ceiling = mostAtCost(commands, ours)
    return {
        "cpuPerCommandMs": perCommand,
        "cores": os.cpu_count() or 1,
        "ceilingPerSecond": round(ceiling, 1),
        "roundTripFloorMs": round(callers / ceiling * 1000, 2) if ceiling > 0 else math.nan,
    }


def measure(
    databases: Databases, callers: int, seconds: float, warmup: float = 2.0
) -> dict[str, Any]:
    """
    One measurement on C{databases} (a new database, two nodes, the simulated terminals, all
    stopped after): the same-node and cross-node round trips of C{callers} for C{seconds} each.
    """
    nodes: list[ServerProcess] = []
    simulator = None
    url = databases.create("tm20_crossnode")
    try:
        for name in ("A", "B"):
            node = ServerProcess(url, extraArgs=["--node-id", name])
            node.start()
            nodes.append(node)
        a, b = nodes
        simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tm20.simulator",
                "--url",
                f"ws://127.0.0.1:{a.port}/pub/chat",
                "--count",
                str(TERMINALS),
                "--logs",
                "0",
                "--users",
                "0",
                "--sn",
                "XN0000001",
                "--log-level",
                "warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sns: list[str] = []
        for _ in range(600):
            status, body = b.request("GET", "/api/connected/")
            if status == 200 and body["count"] == TERMINALS:
                sns = [t["sn"] for t in body["items"]]
                assert {t["node"] for t in body["items"]} == {"A"}
                break
            time.sleep(0.1)
        if len(sns) != TERMINALS:
            raise RuntimeError("the simulated terminals did not all register")
        _callers(a.port, a.token, sns, callers, warmup)
        load = os.getloadavg()
        c0 = _cpu(nodes, simulator, databases)
        same, sameFailed = _callers(a.port, a.token, sns, callers, seconds)
        c1 = _cpu(nodes, simulator, databases)
        cross, crossFailed = _callers(b.port, b.token, sns, callers, seconds)
        c2 = _cpu(nodes, simulator, databases)
        result = {
            "benchmark": "crossnode",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "callers": callers,
            "terminals": TERMINALS,
            "seconds": seconds,
            "loadAverageAtStart": [round(x, 2) for x in load],
            "sameNode": {
                **_summary(same, seconds),
                "failures": len(sameFailed),
                **cpuBudget(c0, c1, len(same) + len(sameFailed), callers),
            },
            "crossNode": {
                **_summary(cross, seconds),
                "failures": len(crossFailed),
                **cpuBudget(c1, c2, len(cross) + len(crossFailed), callers),
            },
        }
        result["crossOverSame_p50"] = round(
            result["crossNode"]["p50_ms"] / result["sameNode"]["p50_ms"], 2
        )
        result["crossOverSame_p99"] = round(
            result["crossNode"]["p99_ms"] / result["sameNode"]["p99_ms"], 2
        )
        return result
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(10)
        for node in nodes:
            node.stop()
        databases.drop(url)


def run(args: argparse.Namespace) -> dict[str, Any]:
    databases = Databases(args.database_url)
    try:
        return measure(databases, args.callers, args.seconds)
    finally:
        databases.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.crossnode", description=__doc__)
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--database-url", default=None, help="an existing server (admin URL)")
    parser.add_argument("--out", default=None, help="append the JSON result to this file")
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
