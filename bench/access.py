"""
Decision latency at the door: C{python -m bench.access [--terminals 2000] [--postgres]}.

One process: a tm20 server (C{buildServer}, real store) and N lean WebSocket terminals
(L{bench.wsclient}) on loopback, sharing the reactor (the figures include the clients' own
work).  Every terminal registers; a rule lets persons 1..P through every one of them (a
terminal group).  Then, on random connected terminals:

  - the B{ceiling}: a heartbeat C{reg} round trip (answered without the database);
  - the B{decision}: a real-time C{sendlog} of one punch round trip (decided from the rules in
    memory, then the log, its decision and its two events committed before the reply), checked
    to carry C{access: 1};

each one at a time (a door), then C{--concurrency} at once (a rush hour).  Prints one JSON
object (also appended to C{--out}): p50/p99 in ms and the ratio decision / ceiling.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory
from twisted.internet.task import deferLater

from bench import inprocess
from bench.loadgen import regFrame
from bench.procinfo import openFilesLimit
from bench.stats import percentile
from bench.wsclient import LeanWebSocket
from tm20.access.model import AccessRule
from tm20.config import ServerConfig
from tm20.model import Person, TerminalGroup
from tm20.service import TM20Service, buildServer, collectorFor

#: Files of this process besides the terminals' sockets (database, listener, reactor, logs).
_SPARE_FILES = 200


class _Door:
    """One terminal: a lean socket, and the reply awaited (one request in flight)."""

    def __init__(self, sn: str) -> None:
        self.sn = sn
        self.ws: LeanWebSocket | None = None
        self.opened: Deferred[None] = Deferred()
        self.waiting: tuple[str, Deferred[dict[str, Any]]] | None = None
        #: Why the connection ended, once it has.
        self.closed: str | None = None

    def lost(self, why: str) -> None:
        self.closed = why
        if not self.opened.called:
            self.opened.errback(ConnectionError(why))
        if self.waiting is not None:
            _, d = self.waiting
            self.waiting = None
            d.errback(ConnectionError(why))

    def received(self, payload: bytes) -> None:
        message = json.loads(payload)
        if self.waiting is not None and message.get("ret") == self.waiting[0]:
            _, d = self.waiting
            self.waiting = None
            d.callback(message)

    def ask(self, ret: str, frame: bytes) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        if self.ws is None or not self.ws.send(frame):
            d.errback(ConnectionError(f"{self.sn} not connected ({self.closed})"))
            return d
        self.waiting = (ret, d)
        return d


class _Factory(ClientFactory):
    def __init__(self, door: _Door, host: str) -> None:
        self.door = door
        self.host = host

    def buildProtocol(self, addr: Any) -> LeanWebSocket:
        door = self.door

        def opened() -> None:
            door.opened.callback(None)

        ws = LeanWebSocket(self.host, "/pub/chat", opened, door.received, door.lost)
        door.ws = ws
        return ws


def _punch(sn: str, enrollid: int, serial: int) -> bytes:
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    record = {"enrollid": enrollid, "time": now, "mode": serial, "inout": 0, "event": 0}
    return json.dumps({"cmd": "sendlog", "sn": sn, "count": 1, "record": [record]}).encode()


async def _roundTrips(
    reactor: Any, doors: list[_Door], kind: str, samples: int, concurrency: int, persons: int
) -> tuple[list[float], int]:
    """C{samples} round trips (ms) of C{kind} on random doors, C{concurrency} at a time."""
    rng = random.Random(20261130)
    latencies: list[float] = []
    denied = [0]
    serial = [0]

    doors = [d for d in doors if d.ws is not None and d.ws.open]

    async def one(door: _Door) -> None:
        serial[0] += 1
        if kind == "reg":
            frame, ret = regFrame(door.sn), "reg"
        else:
            frame, ret = _punch(door.sn, rng.randint(1, persons), serial[0]), "sendlog"
        t0 = time.perf_counter()
        reply = await door.ask(ret, frame)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        if kind == "sendlog" and reply.get("access") != 1:
            denied[0] += 1

    remaining = samples
    while remaining > 0:
        batch = rng.sample(doors, min(concurrency, remaining, len(doors)))
        remaining -= len(batch)
        await Deferred.fromCoroutine(_gather([one(d) for d in batch]))
    return latencies, denied[0]


async def _gather(coroutines: list[Any]) -> None:
    from twisted.internet.defer import gatherResults

    await gatherResults([Deferred.fromCoroutine(c) for c in coroutines])


async def _run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    store = inprocess.store(args.database, reactor)
    config = ServerConfig(
        ports=("tcp:0:interface=127.0.0.1",),
        reconcileInterval=0,
        # the lean terminals answer no gettime probe: never drop them while the rest connect
        heartbeatInterval=86400.0,
        connectionTimeout=0,
        maxConnectionsPerIP=0,
        silentAfter=0,
        clockDriftThreshold=0,
        fetchMissingLogs=False,
        accessRefreshInterval=0,
        logLevel="warn",
    )
    server = buildServer(config, reactor, store)
    # the collector as a server process settles it (tm20.collector)
    service = TM20Service(server, collector=collectorFor(server))
    service.startService()
    ports = await service.ready
    context = service.server.context
    port = ports[0].getHost().port  # type: ignore[attr-defined]
    # each terminal is two sockets of this process (its client's and the server's): past the
    # open-files limit, the listener accepts and closes at once (Twisted's EMFILE reserve)
    terminals = min(args.terminals, (openFilesLimit() - _SPARE_FILES) // 2)
    doors = [_Door(f"ACC{i:07d}") for i in range(terminals)]
    try:
        t0 = time.monotonic()
        failed: dict[_Door, str] = {}

        async def connect(door: _Door) -> None:
            # as a terminal does: its reg goes out as soon as the socket is open
            stage = "upgrade"
            try:
                await door.opened.addTimeout(30, reactor)
                stage = "reg"
                await _register(door, reactor)
            except Exception as e:  # refused, too slow, or closed: left out, with its reason
                failed[door] = f"{stage}: {str(e) or type(e).__name__}"
                print(f"{time.monotonic() - t0:.1f}s {door.sn} {failed[door]}", file=sys.stderr)
                if door.ws is not None and door.ws.open:
                    door.ws.abort()

        for i in range(0, len(doors), 200):  # connect in waves: no SYN flood on loopback
            wave = doors[i : i + 200]
            for door in wave:
                reactor.connectTCP("127.0.0.1", port, _Factory(door, f"127.0.0.1:{port}"))
            await _gather([connect(d) for d in wave])
        connectSeconds = time.monotonic() - t0
        doors = [d for d in doors if d not in failed]
        await store.putGroup(TerminalGroup("doors", terminals=tuple(d.sn for d in doors)), True)
        for enrollid in range(1, args.persons + 1):
            await store.putPerson(Person(enrollid=enrollid, name=f"P{enrollid}"), True)
        await store.putAccessRule(
            AccessRule(id=0, persons=tuple(range(1, args.persons + 1)), terminalGroups=("doors",)),
            True,
        )
        await context.access.changed()
        await deferLater(reactor, 1.0, lambda: None)
        out: dict[str, Any] = {
            "store": "postgresql" if (args.database or "").startswith("postgres") else "sqlite",
            "terminals": len(context.registry),
            "terminalsAsked": args.terminals,
            "persons": args.persons,
            "connectSeconds": round(connectSeconds, 1),
            "connectFailed": len(failed),
            "connectFailures": sorted(set(failed.values()))[:5],
        }
        for label, concurrency in (("seq", 1), ("con", args.concurrency)):
            ceiling, _ = await _roundTrips(
                reactor, doors, "reg", args.samples, concurrency, args.persons
            )
            decided, denied = await _roundTrips(
                reactor, doors, "sendlog", args.samples, concurrency, args.persons
            )
            c99, d99 = percentile(ceiling, 99), percentile(decided, 99)
            out.update(
                {
                    f"{label}Concurrency": concurrency,
                    f"{label}CeilingP50": round(percentile(ceiling, 50), 2),
                    f"{label}CeilingP99": round(c99, 2),
                    f"{label}DecisionP50": round(percentile(decided, 50), 2),
                    f"{label}DecisionP99": round(d99, 2),
                    f"{label}RatioP99": round(d99 / c99, 2),
                    f"{label}Denied": denied,
                }
            )
        out["samples"] = args.samples
        out["maxRssMiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        return out
    finally:
        await service.stopService()  # closes every terminal (4001): they answer and go
        for door in doors:
            if door.ws is not None and door.ws.open:
                door.ws.abort()


async def _register(door: _Door, reactor: Any) -> None:
    reply = await door.ask("reg", regFrame(door.sn)).addTimeout(60, reactor)
    if reply.get("result") is not True:
        raise RuntimeError(f"{door.sn} not registered: {reply}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terminals", type=int, default=2000)
    parser.add_argument("--persons", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    inprocess.addStoreArguments(parser)
    args = parser.parse_args(argv)
    inprocess.runOnce(args, "bench_access", _run)


if __name__ == "__main__":
    main(sys.argv[1:])
