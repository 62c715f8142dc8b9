"""
The server's CPU per acknowledged log record, in process: no sockets, no load generator
competing for the cores, so the figure is steady on a shared machine.

    .venv/bin/python -m bench.ingestcpu sqlite|postgresql [--terminals 100] [--batches 40]
        [--batch 10] [--profile out.prof]

C{terminals} in-memory WebSocket connections (C{tests/memoryws.py}) register on a server built
by C{tm20.service.buildServer} over a real store; each then sends C{batches} C{sendlog} batches
of C{batch} records, the next one as soon as the previous one is acknowledged (as
C{bench.run}'s ingest workload does).  The frames are built before the measure starts; the
process's CPU (every thread: the reactor, the store's writer threads) over the acknowledged
records is printed as one JSON line, with the private cluster's CPU (PostgreSQL: every process
of the cluster C{tests/pgharness.py} started; 0 on SQLite or an outside database).  C{--profile}: cProfile of the reactor thread, written as
pstats and summarised (top functions by own and inclusive time).

It runs unchanged on the published revision (the same harness, copied there), which is how the
before/after figures of bench/NOTES.md were taken.  PostgreSQL: C{TM20_TEST_DATABASE_URL} or a
private cluster (C{tests/pgharness.py}).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks

from bench.memoryserver import (
    databaseCPU,
    dropStore,
    printProfile,
    profileThreads,
    registerTerminals,
    storeURL,
)


def frame(message: Any) -> bytes:
    """A client frame with a zero mask (the payload is sent as it is)."""
    data = json.dumps(message).encode()
    n = len(data)
    if n < 126:
        header = bytes([0x81, 0x80 | n])
    elif n < 65536:
        header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", n)
    else:
        header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", n)
    return header + b"\0\0\0\0" + data


def batches(sn: str, index: int, count: int, size: int) -> list[bytes]:
    out = []
    for b in range(count):
        records = []
        for r in range(size):
            k = b * size + r
            day, rest = divmod(k, 86400)
            h, rest = divmod(rest, 3600)
            m, s = divmod(rest, 60)
            records.append(
                {
                    "enrollid": 1000 + index,
                    "time": f"2026-{1 + day // 28:02d}-{1 + day % 28:02d} {h:02d}:{m:02d}:{s:02d}",
                    "mode": 1,
                    "inout": 0,
                    "event": 0,
                }
            )
        out.append(
            frame(
                {
                    "cmd": "sendlog",
                    "sn": sn,
                    "count": size,
                    "logindex": b * size,
                    "record": records,
                }
            )
        )
    return out


@inlineCallbacks
def run(args: argparse.Namespace) -> Any:
    sys.path.insert(0, str(Path.cwd()))
    from tm20.config import ServerConfig
    from tm20.service import buildServer, collectorFor
    from tm20.store import storeFromURL

    url = storeURL(args.store, "ingestcpu")
    store = storeFromURL(url, reactor)
    threadProfilers: list[Any] = profileThreads(time.thread_time) if args.profile else []
    yield store.start()
    try:
        server = buildServer(ServerConfig(), reactor, store)
        collectorFor(server).settle()  # as a server process does
        terms = yield registerTerminals(reactor, server.factory, "CPU", args.terminals)
        frames = {sn: batches(sn, i, args.batches, args.batch) for i, (sn, _) in enumerate(terms)}
        state = {"acked": 0, "failed": 0, "open": len(terms)}
        done: Deferred[None] = Deferred()

        def connect(sn: str, term: Any) -> None:
            pending = list(reversed(frames[sn]))
            transport = term.transport

            def write(data: bytes) -> None:
                # an ack (or a failure) of our batch: the next one, at the next turn
                if b'"sendlog"' not in data:
                    return
                if b'"result":true' in data or b'"result": true' in data:
                    state["acked"] += args.batch
                else:
                    state["failed"] += 1
                if pending:
                    reactor.callLater(0, term.protocol.dataReceived, pending.pop())
                else:
                    state["open"] -= 1
                    if state["open"] == 0:
                        done.callback(None)

            transport.write = write
            transport.writeSequence = lambda seq: write(b"".join(seq))
            term.protocol.dataReceived(pending.pop())

        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(time.thread_time)

        t0, c0, d0 = time.monotonic(), time.process_time(), databaseCPU(args.store)
        if profiler is not None:
            profiler.enable()
        for sn, term in terms:
            connect(sn, term)
        yield done
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        dbCPU = databaseCPU(args.store) - d0
        print(
            json.dumps(
                {
                    "store": args.store,
                    "acked": state["acked"],
                    "failedBatches": state["failed"],
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    "cpu_us_per_record": round(cpu / max(1, state["acked"]) * 1e6, 1),
                    "db_cpu_us_per_record": round(dbCPU / max(1, state["acked"]) * 1e6, 1),
                    "records_per_s": round(state["acked"] / wall),
                }
            ),
            flush=True,
        )
        if profiler is not None:
            printProfile(profiler, threadProfilers, args.profile, 30, 45)
        for _, term in terms:
            term.protocol.dropConnection(abort=True)
    finally:
        yield store.stop()
        dropStore(args.store, url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", choices=["sqlite", "postgresql"])
    parser.add_argument("--terminals", type=int, default=100)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    task.react(lambda _: run(args))


if __name__ == "__main__":
    main()
