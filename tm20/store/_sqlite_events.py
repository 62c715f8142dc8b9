"""
The event log, delivery streams and webhooks of L{tm20.store.sqlite.SQLiteStore}
(L{tm20.interfaces.IEventStore}), as a mixin of that store: what is SQLite's own (appending
events, reading the log on a connection of its own); the operations are written once in
L{tm20.store._eventsql}.

Event ids are C{AUTOINCREMENT} and SQLite has a single writer, so ids become visible in
increasing order: a reader's cursor never skips an event committed later with a smaller id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from tm20.events.model import NewEvent
from tm20.store._eventstore import EventStoreMixin
from tm20.store._ops import Op, runSync
from tm20.store._rows import dumpJSON

_T = TypeVar("_T")


def connectionPool(
    path: str, reactor: Any, configure: Callable[[sqlite3.Connection], None]
) -> ConnectionPool:
    """One connection to the file C{path}, in a thread of its own (autocommit: the store runs
    its own transactions); C{configure} runs on it once opened."""
    return ConnectionPool(
        "sqlite3",
        path,
        check_same_thread=False,
        isolation_level=None,
        cp_min=1,
        cp_max=1,
        cp_noisy=False,
        cp_reactor=reactor,
        cp_openfun=configure,
    )


def appendEvents(conn: sqlite3.Connection, events: Iterable[NewEvent], now: str) -> int:
    """Insert C{events} in order, in the caller's transaction.  @return: how many."""
    return appendEventRows(conn, [(e.type, e.sn, dumpJSON(e.payload)) for e in events], now)


def appendEventRows(
    conn: sqlite3.Connection, rows: Sequence[tuple[str, str | None, str]], now: str
) -> int:
    """L{appendEvents} for events given as C{(type, sn, payload JSON text)}."""
    if rows:
        conn.executemany(
            "INSERT INTO events (type, sn, payload, created_at) VALUES (?, ?, ?, ?)",
            [(kind, sn, payload, now) for kind, sn, payload in rows],
        )
    return len(rows)


def terminalTimezone(conn: sqlite3.Connection, sn: str) -> str | None:
    row = conn.execute("SELECT timezone FROM terminals WHERE sn = ?", (sn,)).fetchone()
    return None if row is None else row[0]


class SQLiteEventsMixin(EventStoreMixin):
    """
    L{tm20.interfaces.IEventStore} for L{tm20.store.sqlite.SQLiteStore}: the operations of
    L{tm20.store._eventstore}, the event log read on a connection of its own.
    """

    if TYPE_CHECKING:  # provided by the store
        path: str
        _reactor: Any
        _busyTimeoutMs: int
        _inTransaction: Callable[..., Any]
        _translateFailure: Callable[[Failure], Failure]

    #: A second connection, read-only, in its own thread, for event readers (API pages, SSE,
    #: sinks): with WAL they read committed events without queueing behind the writes of the
    #: store's one writer thread.
    _eventReader: ConnectionPool | None = None

    def _openEventReader(self) -> None:
        def configure(conn: sqlite3.Connection) -> None:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self._busyTimeoutMs}")
            conn.execute("PRAGMA query_only = ON")

        self._eventReader = connectionPool(self.path, self._reactor, configure)
        self._eventReader.start()

    def _closeEventReader(self) -> None:
        reader, self._eventReader = self._eventReader, None
        if reader is not None:
            reader.close()

    def _runEventsRead(self, op: Op[_T]) -> Deferred[_T]:
        reader = self._eventReader
        if reader is None:
            return self._runOp(False, op)
        d: Deferred[_T] = reader.runWithConnection(
            self._inTransaction, False, runSync, op, appendEvents
        )
        d.addErrback(self._translateFailure)
        return d


__all__ = [
    "SQLiteEventsMixin",
    "appendEventRows",
    "appendEvents",
    "connectionPool",
    "terminalTimezone",
]
