"""
Blocking start-up checks for a daemonizing twistd.

C{twistd tm20} without C{-n} forks; its parent exits with the child's start-up status, which
the child reports as soon as the services' C{privilegedStartService}/C{startService} have
returned, before the reactor runs.  tm20's real start-up (store, migrations, ports) is
asynchronous and ends later, so for the parent to exit non-zero when it would fail, the ways it
usually fails are checked here first, synchronously, before the reactor runs (nothing else is
running yet, so blocking freezes nothing): the ports can be bound, the SQLite file can be opened
for writing, PostgreSQL accepts a connection (retried for C{--wait-for-database}).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

from twisted.internet.error import CannotListenError

from tm20.config import ServerConfig
from tm20.errors import StoreUnavailable
from tm20.startup import sqlitePath

#: Endpoint types checked by binding a socket (others are left to the real start-up).
_TCP_TYPES = {"tcp": socket.AF_INET, "ssl": socket.AF_INET, "tcp6": socket.AF_INET6}


def check(
    config: ServerConfig, specs: list[str], sleep: Callable[[float], None] = time.sleep
) -> None:
    """
    Raise what the real start-up would fail with: L{CannotListenError} for a port that cannot
    be bound, L{StoreUnavailable} for a database that cannot be used.

    @param specs: the endpoint strings to listen on (see L{tm20.service.listenSpec}).
    """
    for spec in specs:
        checkPort(spec)
    checkDatabase(config.database, config.waitForDatabase, sleep)


def checkPort(spec: str) -> None:
    """Bind (and release) the address of a C{tcp}/C{tcp6}/C{ssl} endpoint string."""
    fields = [f.replace("\\:", ":") for f in re.split(r"(?<!\\):", spec)]
    family = _TCP_TYPES.get(fields[0])
    if family is None:
        return
    positional = [f for f in fields[1:] if "=" not in f]
    keywords = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
    try:
        port = int(keywords.get("port") or positional[0])
    except (IndexError, ValueError):
        return  # the real start-up reports a malformed endpoint
    interface = keywords.get("interface", "::" if family == socket.AF_INET6 else "")
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted does
        try:
            probe.bind((interface, port))
        except OSError as e:
            raise CannotListenError(interface, port, e) from None


def checkDatabase(
    database: str, waitSeconds: float = 0, sleep: Callable[[float], None] = time.sleep
) -> None:
    """The SQLite file opens for writing, or PostgreSQL accepts a connection."""
    if database.startswith("sqlite:"):
        _checkSQLite(sqlitePath(database))
    elif database.startswith(("postgresql://", "postgres://")):
        _checkPostgres(database, waitSeconds, sleep)


def _checkSQLite(path: str) -> None:
    import sqlite3

    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as e:
        if "locked" in str(e):
            return  # another process writes now: the real start-up waits for it
        raise StoreUnavailable(f"SQLite {path}: {e}") from e


def _checkPostgres(url: str, waitSeconds: float, sleep: Callable[[float], None]) -> None:
    import psycopg2

    deadline = time.monotonic() + waitSeconds
    while True:
        try:
            psycopg2.connect(url, connect_timeout=5, application_name="tm20").close()
            return
        except psycopg2.Error as e:
            if time.monotonic() >= deadline:
                raise StoreUnavailable(f"cannot connect to PostgreSQL: {e}") from e
        sleep(min(1.0, max(0.0, deadline - time.monotonic())))


__all__ = ["check", "checkDatabase", "checkPort"]
