"""
What the in-process benchmarks (L{bench.reconcile}, L{bench.access}) share: the server built in
this process on a store named by C{--database} (a temporary SQLite file by default) or on a
private PostgreSQL cluster (C{--postgres}), and one JSON line of figures printed (and appended to
C{--out}).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from bench.procinfo import raiseOpenFilesLimit


def store(url: str | None, reactor: Any) -> Any:
    """
    The store named by C{url}: PostgreSQL for C{postgres...://}, SQLite for C{sqlite:PATH}, a
    SQLite file in a new temporary directory for None.
    """
    if url and url.startswith("postgres"):
        from tm20.store.postgres import PostgresStore

        return PostgresStore.fromURL(url, reactor)
    from tm20.store.sqlite import SQLiteStore

    path = url[len("sqlite:") :] if url else os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    return SQLiteStore(path, reactor=reactor)


def addStoreArguments(parser: argparse.ArgumentParser) -> None:
    """C{--database}, C{--postgres} and C{--out}."""
    parser.add_argument("--database", help="sqlite:PATH or postgresql://... (a temp SQLite)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="on a private PostgreSQL cluster started for the run (tests/pgharness.py)",
    )
    parser.add_argument("--out", help="append the JSON line to this file")


def runOnce(
    args: argparse.Namespace,
    name: str,
    measure: Callable[[Any, argparse.Namespace], Awaitable[dict[str, Any]]],
) -> None:
    """
    Run C{measure(reactor, args)} under L{react} (on a database named C{name} in a private
    cluster with C{--postgres}), print its figures as one JSON line and append it to C{--out}.
    """
    # the server's sockets and the clients' share this process: twice the terminals' fds
    raiseOpenFilesLimit()
    databases = None
    if args.postgres and not args.database:
        from bench.server import Databases

        databases = Databases()
        args.database = databases.create(name)

    async def run(reactor: Any) -> None:
        figures = await measure(reactor, args)
        line = json.dumps(figures)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")

    try:
        react(lambda reactor: ensureDeferred(run(reactor)))
    finally:
        if databases is not None:
            databases.drop(args.database)
            databases.close()


__all__ = ["addStoreArguments", "runOnce", "store"]
