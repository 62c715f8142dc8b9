"""
The database's CPU per record of one COPY flush (PostgreSQL), and where it goes.

    .venv/bin/python -m bench.ingestflush [--rounds 40] [--size 500] [--compare FILE]
        [--explain]

A database of its own on the private cluster (C{tests/pgharness.py}) or
C{TM20_TEST_DATABASE_URL}, migrated by the store; one synchronous connection (as a thread of
the COPY pool has) runs L{tm20.store.postgres._copyLogs} on flushes of C{size} new records from
100 terminals (their time zones set), each committed; the backend's CPU (C{/proc}, its own
process only, from C{/proc/PID/schedstat}) over the records is printed.  C{--compare FILE}: the flush statement of the file
(C{_INSERT_STAGED}'s parameters) takes turns with the store's, flush by flush, on the same
backend, so both see the same table sizes and machine load.  C{--explain}: one more flush
under C{EXPLAIN (ANALYZE, BUFFERS)}, printed (the plan's nodes: the logs' insert, the events'
insert, the join to the staging table).

The per-record figure includes the flush's other round trips (the lock and time zones, the
C{COPY}); the commit's WAL flush is the cluster's (C{fsync} off in the harness).
"""

from __future__ import annotations

import argparse
import datetime
import io
import sys
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import ensureDeferred

TERMINALS = 100


def backendCPU(pid: int) -> float:
    """
    CPU seconds of the process C{pid}: C{/proc/PID/schedstat}'s time on a CPU, in nanoseconds
    (C{stat}'s ticks of 10 ms are too coarse for one flush of a few ms).
    """
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


class Flushes:
    """New records, flush after flush, written by C{_copyLogs} on one connection."""

    def __init__(self, conn: Any, size: int) -> None:
        from tm20.store import postgres

        self.store = postgres
        self.conn = conn
        self.size = size
        self.next = 0
        self.now = datetime.datetime.now(datetime.UTC)
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        self.pid = cur.fetchone()[0]

    def rows(self) -> tuple[list[Any], dict[Any, int]]:
        rows: list[Any] = []
        owners: dict[Any, int] = {}
        for r in range(self.size):
            k = self.next
            self.next += 1
            day, second = divmod(k // TERMINALS, 86400)
            time = (
                f"2026-{1 + day // 28 % 12:02d}-{1 + day % 28:02d} "
                f"{second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}"
            )
            item = (1000 + k % TERMINALS, time, 1, 0, 0, None, None, None, "{}", False)
            key = (f"T{k % TERMINALS:04d}", item[0], item[1], item[2], item[3], item[4])
            owners[key] = r // 10  # batches of 10, as terminals send them
            rows.append((key, item))
        return rows, owners

    def flush(self, statement: str) -> float:
        """One flush with C{statement} as the flush statement; the backend's CPU it took."""
        rows, owners = self.rows()
        saved = self.store._FLUSH_STAGED
        self.store._FLUSH_STAGED = statement
        try:
            before = backendCPU(self.pid)
            counts = self.store._copyLogs(self.conn, rows, owners, self.now, None)
            self.conn.cursor().execute("COMMIT")
            spent = backendCPU(self.pid) - before
        finally:
            self.store._FLUSH_STAGED = saved
        assert statement.lstrip().startswith("EXPLAIN") or sum(counts.values()) == self.size
        return spent


async def run(reactor: Any, args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path.cwd()))
    import psycopg2

    from tests import pgharness
    from tm20.store import postgres, storeFromURL

    url = pgharness.createDatabase("tm20_ingestflush")
    try:
        store = storeFromURL(url, reactor)
        await store.start()  # migrated
        await store.stop()
        conn = psycopg2.connect(url)
        postgres._prepareCopy(conn)
        cur = conn.cursor()
        for n in range(TERMINALS):
            cur.execute(
                "INSERT INTO terminals (sn, timezone) VALUES (%s, 'Europe/Paris')",
                (f"T{n:04d}",),
            )
        conn.commit()
        conn.autocommit = True
        flushes = Flushes(conn, args.size)
        statements = {"store": postgres._FLUSH_STAGED}
        if args.compare:
            statements["compared"] = Path(args.compare).read_text()
        for statement in statements.values():
            flushes.flush(statement)  # warm: plans, caches
        spent = dict.fromkeys(statements, 0.0)
        names = list(statements)
        for r in range(args.rounds):
            for name in names if r % 2 else reversed(names):
                spent[name] += flushes.flush(statements[name])
        for name, seconds in spent.items():
            print(
                f"{name}: {seconds / (args.rounds * args.size) * 1e6:.1f} µs of backend CPU"
                f" per record ({args.rounds} flushes of {args.size})"
            )
        if args.explain:
            rows, owners = flushes.rows()
            text = "".join(
                postgres._stageRow(n, owners[key], key[0], item, None)
                for n, (key, item) in enumerate(rows)
            )
            cur.execute(
                "BEGIN; SELECT pg_advisory_xact_lock_shared(%s)", (postgres.EVENTS_LOCK_KEY,)
            )
            cur.copy_expert(
                f"COPY {postgres._STAGE} ({postgres._STAGE_COLUMNS}) FROM STDIN",
                io.StringIO(text),
            )
            cur.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + postgres._INSERT_STAGED,
                {"now": flushes.now, "receivedAt": postgres.formatTimestamp(flushes.now)},
            )
            print("\n".join(row[0] for row in cur.fetchall()))
            cur.execute("ROLLBACK")
        conn.close()
    finally:
        pgharness.dropDatabase(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--compare", default=None)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    task.react(lambda reactor: ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
