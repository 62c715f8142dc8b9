"""
The server's CPU per REST command, in process: no sockets, no HTTP client competing for the
cores, so the figure is steady on a shared machine.

    .venv/bin/python -m bench.commandcpu sqlite|postgresql [--terminals 20] [--callers 1]
        [--commands 1000] [--warmup 100] [--profile out.prof]

C{terminals} in-memory WebSocket connections (C{tests/memoryws.py}) register on a server built
by C{tm20.service.buildServer} over a real store; each answers every command it is sent at the
next reactor turn (C{result: true}).  C{callers} in-memory HTTP connections to the server's site
(kept alive, the request bytes built before the measure, as C{bench.run}'s command workload sends
them: C{opendoor}, bearer token, JSON body) post C{POST /api/terminals/{sn}/command/} for the
terminals in turn, each the next one as soon as its response is complete.  Printed as one JSON
line: the process's CPU (every thread) per command, and the in-process latency p50/p99 (the
server's own time per command plus the queueing behind the other callers: no network).
C{--profile}: cProfile of every thread, written as pstats and summarised.

PostgreSQL: C{TM20_TEST_DATABASE_URL} or a private cluster (C{tests/pgharness.py}).
"""

from __future__ import annotations

import argparse
import json
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

TIMER = time.perf_counter if "--wall" in sys.argv else time.thread_time
TOKEN = "bench:" + "b" * 40
BODY = json.dumps({"command": "opendoor", "params": {"doornum": 1}}).encode()


def request(sn: str) -> bytes:
    """The bytes of one request, as C{bench.server.apiCall} (C{http.client}) sends them."""
    return (
        f"POST /api/terminals/{sn}/command/ HTTP/1.1\r\n"
        "Host: 127.0.0.1:8080\r\n"
        "Accept-Encoding: identity\r\n"
        f"Content-Length: {len(BODY)}\r\n"
        f"Authorization: Bearer {TOKEN.split(':', 1)[1]}\r\n"
        "Accept: application/json\r\n"
        "Content-Type: application/json\r\n\r\n"
    ).encode() + BODY


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


class Caller:
    """One kept-alive HTTP connection posting its commands one after the other."""

    def __init__(self, site: Any, requests: list[bytes], state: dict[str, Any]) -> None:
        from tests.memoryws import LenientTransport

        self.requests = requests
        self.state = state
        self.buffer = b""
        self.started = 0.0
        self.transport = LenientTransport()
        self.transport.write = self.write  # type: ignore[method-assign]
        self.transport.writeSequence = lambda seq: self.write(b"".join(seq))  # type: ignore[method-assign]
        self.protocol = site.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)

    def next(self) -> None:
        if not self.requests:
            self.state["open"] -= 1
            if self.state["open"] == 0:
                self.state["done"].callback(None)
            return
        self.started = time.perf_counter()
        self.protocol.dataReceived(self.requests.pop())

    def write(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = b""
            while True:
                size, crlf, after = rest.partition(b"\r\n")
                if not crlf or len(after) < int(size, 16) + 2:
                    return
                n = int(size, 16)
                body, rest = body + after[:n], after[n + 2 :]
                if n == 0:
                    break
            self.buffer = rest
        else:
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
        self.state["latencies"].append(time.perf_counter() - self.started)
        if not head.startswith(b"HTTP/1.1 200") or b'"succeeded"' not in body:
            self.state["failed"].append(head.split(b"\r\n", 1)[0] + b" " + body[:200])
        reactor.callLater(0, self.next)  # type: ignore[attr-defined]


def answering(term: Any, sn: str) -> None:
    """The terminal answers every command it is sent, at the next reactor turn."""
    from tests.memoryws import clientFrame, serverFrames

    buffer = [b""]

    def write(data: bytes) -> None:
        buffer[0] += data
        frames, buffer[0] = serverFrames(buffer[0])
        for opcode, payload in frames:
            if opcode != 1:
                continue
            message = json.loads(payload)
            if "cmd" in message:
                reply = clientFrame({"ret": message["cmd"], "sn": sn, "result": True})
                reactor.callLater(0, term.protocol.dataReceived, reply)  # type: ignore[attr-defined]

    term.transport.write = write
    term.transport.writeSequence = lambda seq: write(b"".join(seq))


@inlineCallbacks
def run(args: argparse.Namespace) -> Any:
    sys.path.insert(0, str(Path.cwd()))
    from tm20.config import ServerConfig
    from tm20.service import buildServer, collectorFor
    from tm20.store import storeFromURL

    url = storeURL(args.store, "commandcpu")
    store = storeFromURL(url, reactor)
    threadProfilers: list[Any] = profileThreads(TIMER) if args.profile else []
    yield store.start()
    try:
        server = buildServer(ServerConfig(apiTokens=(TOKEN,)), reactor, store)
        collectorFor(server).settle()  # as a server process does
        terms = yield registerTerminals(reactor, server.factory, "CMD", args.terminals)
        for sn, t in terms:
            answering(t, sn)
        sns = [sn for sn, _ in terms]

        def phase(total: int) -> Deferred[dict[str, Any]]:
            state: dict[str, Any] = {
                "open": args.callers,
                "done": Deferred(),
                "latencies": [],
                "failed": [],
            }
            perCaller = total // args.callers
            callers = [
                Caller(
                    server.site,
                    [request(sns[(c + k * args.callers) % len(sns)]) for k in range(perCaller)][
                        ::-1
                    ],
                    state,
                )
                for c in range(args.callers)
            ]
            for caller in callers:
                caller.next()
            return state["done"].addCallback(lambda _: state)

        yield phase(args.warmup)
        statements: list[str] = []
        if args.statements and args.store == "postgresql":
            from tm20.store import _pgpool

            execute = _pgpool.Cursor.execute

            def counted(self: Any, sql: str, params: Any = None, **kwargs: Any) -> Any:
                statements.append(sql)
                return execute(self, sql, params, **kwargs)

            _pgpool.Cursor.execute = counted  # type: ignore[method-assign]
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(TIMER)

        t0, c0, d0 = time.monotonic(), time.process_time(), databaseCPU(args.store)
        if profiler is not None:
            profiler.enable()
        state = yield phase(args.commands)
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.monotonic() - t0, time.process_time() - c0
        dbCPU = databaseCPU(args.store) - d0
        done = len(state["latencies"])
        lat = [x * 1000 for x in state["latencies"]]
        print(
            json.dumps(
                {
                    "store": args.store,
                    "callers": args.callers,
                    "commands": done,
                    "failed": len(state["failed"]),
                    "failedSample": [f.decode(errors="replace") for f in state["failed"][:2]],
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    "cpu_ms_per_command": round(cpu / max(1, done) * 1e3, 3),
                    "db_cpu_ms_per_command": round(dbCPU / max(1, done) * 1e3, 3),
                    "p50_ms": round(percentile(lat, 50), 2),
                    "p99_ms": round(percentile(lat, 99), 2),
                    **(
                        {"statements_per_command": round(len(statements) / max(1, done), 2)}
                        if statements
                        else {}
                    ),
                }
            ),
            flush=True,
        )
        if args.statements:
            import collections

            counts = collections.Counter(" ".join(sql.split())[:160] for sql in statements)
            for sql, n in counts.most_common():
                print(f"{n / max(1, done):6.2f}  {sql}")
        if profiler is not None:
            if args.quiet:
                profiler.dump_stats(args.profile)
            else:
                printProfile(profiler, threadProfilers, args.profile, 40, 60)
        for _, term in terms:
            term.protocol.dropConnection(abort=True)
    finally:
        yield store.stop()
        dropStore(args.store, url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", choices=["sqlite", "postgresql"])
    parser.add_argument("--terminals", type=int, default=20)
    parser.add_argument("--callers", type=int, default=1)
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--profile", default=None)
    parser.add_argument(
        "--statements", action="store_true", help="PostgreSQL: count and list the statements"
    )
    parser.add_argument("--wall", action="store_true", help="profile wall time, not CPU time")
    parser.add_argument("--quiet", action="store_true", help="no printed profile summary")
    args = parser.parse_args()
    task.react(lambda _: run(args))


if __name__ == "__main__":
    main()
