"""
The reconciler on a big terminal: C{python -m bench.reconcile [--persons 3000] [--database URL]}.

One process: a tm20 server (C{buildServer}, real store) and one simulated terminal connected
over loopback WebSocket, sharing the reactor (so the figures include the simulator's own work).
N persons, each with a face (slot 20, C{--face-bytes} of Base64-like text), are in a group
without terminals; then the terminal joins the group and the time until every person is
C{synced} on it is measured (every credential written with C{setuserinfo} through the durable
queue, paced by C{--max-outstanding}).  Then, with everything in place:

  - a registration-style full pass (nothing to push): diff of N persons against N users;
  - the periodic check: C{getuserlist} of every slot, then the same pass.

Prints one JSON object (also appended to C{--out} when given).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any

from twisted.internet.task import deferLater

from bench import inprocess
from tm20.config import ServerConfig
from tm20.model import SYNC_SYNCED, Credential, Person, TerminalGroup
from tm20.service import TM20Service, buildServer, collectorFor
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal

SN = "BENCH00001"


async def _run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    store = inprocess.store(args.database, reactor)
    config = ServerConfig(
        ports=("tcp:0:interface=127.0.0.1",),
        reconcileInterval=0,
        reconcileMaxOutstanding=args.max_outstanding,
        commandTimeout=60.0,
        logLevel="warn",
    )
    server = buildServer(config, reactor, store)
    # the collector as a server process settles it (tm20.collector)
    service = TM20Service(server, collector=collectorFor(server))
    service.startService()
    ports = await service.ready
    context = service.server.context
    try:
        terminal = SimulatedTerminal(SN, usersize=args.persons + 10)
        port = ports[0].getHost().port  # type: ignore[attr-defined]
        url = f"ws://127.0.0.1:{port}/pub/chat"
        connection = TerminalConnection(terminal, url, reactor=reactor)
        connection.start()
        await connection.whenRegistered()
        await store.putGroup(TerminalGroup("bench"), True)
        face = ("QUJD" * (args.face_bytes // 4 + 1))[: args.face_bytes]
        t0 = time.monotonic()
        for enrollid in range(1, args.persons + 1):
            await store.putPerson(
                Person(
                    enrollid=enrollid,
                    name=f"Person {enrollid}",
                    credentials=(Credential(20, f"{enrollid}:{face}"),),
                    groups=("bench",),
                ),
                True,
            )
        setup = time.monotonic() - t0
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        await context.persons.updateGroup("bench", {"terminals": [SN]})
        while True:
            syncs = await store.listPersonSync(SN, None)
            synced = sum(1 for s in syncs if s.state == SYNC_SYNCED)
            if synced == args.persons:
                break
            if time.monotonic() - t0 > args.timeout:
                raise RuntimeError(f"only {synced}/{args.persons} synced in {args.timeout} s")
            await deferLater(reactor, 0.2, lambda: None)
        push = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        assert len(terminal.users) == args.persons
        t0 = time.monotonic()
        await context.reconciler.reconcileTerminal(SN)
        fullPass = time.monotonic() - t0
        checked: list[Any] = []
        refresh = context.pulls.refreshUsers

        def counted(sn: str) -> Any:
            def keep(result: Any) -> Any:
                checked.append(result)
                return result

            return refresh(sn).addCallback(keep)

        context.pulls.refreshUsers = counted
        t0 = time.monotonic()
        await context.reconciler.checkTerminal(SN)
        check = time.monotonic() - t0
        if len(checked) != 1 or checked[0].listed != args.persons:
            raise RuntimeError(f"the periodic check did not list every slot: {checked}")
        backlog = context.reconciler.backlog()
        await connection.disconnect()
    finally:
        await service.stopService()
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {
        "store": "postgresql" if (args.database or "").startswith("postgres") else "sqlite",
        "persons": args.persons,
        "faceBytes": args.face_bytes,
        "maxOutstanding": args.max_outstanding,
        "setupSeconds": round(setup, 2),
        "pushSeconds": round(push, 2),
        "personsPerSecond": round(args.persons / push, 1),
        "pushCpuSeconds": round(cpu, 2),
        "fullPassSeconds": round(fullPass, 2),
        "periodicCheckSeconds": round(check, 2),
        "backlogAfter": backlog,
        "maxRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--face-bytes", type=int, default=2048)
    parser.add_argument("--max-outstanding", type=int, default=20)
    inprocess.addStoreArguments(parser)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    inprocess.runOnce(args, "bench_reconcile", _run)


if __name__ == "__main__":
    main(sys.argv[1:])
