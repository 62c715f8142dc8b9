"""
Store operations written once for both databases, and the two drivers that run them.

An operation is a generator: it yields statements, C{(sql, params)} with C{%s} markers (or
C{%(name)s} ones with a mapping), and is sent back a L{Result} for each; it may yield
L{AppendEvents} (last: the events of the facts it wrote, in the same transaction); its return
value is the operation's.  It never touches a connection, so the same code serves
L{runSync} (a C{sqlite3} connection, in the store's thread) and L{runAsync} (a txpostgres
cursor), each inside the store's one transaction per call.  What else differs between the
databases is in L{tm20.store._dialect}.

A broken constraint (a foreign key, a unique key) is thrown into the operation as
L{BrokenConstraint} (a C{ValueError}) at the statement that broke it, so the operation can say
what it means (C{"unknown terminal"}); it must not run another statement after it (PostgreSQL
has aborted the transaction), only raise.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from tm20.store._dialect import Dialect

__all__ = [
    "AppendEvents",
    "BrokenConstraint",
    "CONSTRAINT_CODES",
    "OpStore",
    "Op",
    "Result",
    "Statement",
    "inList",
    "whereAll",
    "runAsync",
    "runSync",
]

_T = TypeVar("_T")

#: SQLSTATEs of broken constraints (PostgreSQL): foreign key, unique.
CONSTRAINT_CODES = {"23503": "foreign key", "23505": "unique"}


@attrs.frozen
class AppendEvents:
    """Yielded by an operation: append these events (last, in the same transaction)."""

    events: tuple[Any, ...]
    now: Any


@attrs.frozen
class Result:
    """What a statement gave: its rows (as mappings) and its row count."""

    rows: list[Mapping[str, Any]]
    rowcount: int

    @property
    def first(self) -> Mapping[str, Any] | None:
        """The first row, or C{None} when there is none."""
        return self.rows[0] if self.rows else None


Statement = tuple[str, Sequence[Any] | Mapping[str, Any]]
Op = Generator[Statement | AppendEvents, Result, _T]


class BrokenConstraint(ValueError):
    """
    A statement broke a constraint of the schema: C{kind} is C{"foreign key"}, C{"unique"} or
    C{"other"} (SQLite's C{NOT NULL}, C{CHECK}).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_NAMED = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=512)
def _sqliteMarkers(sql: str) -> str:
    """C{%s} as C{?} and C{%(name)s} as C{:name}: sqlite3's markers."""
    return _NAMED.sub(r":\1", sql.replace("%s", "?"))


def _sqliteKind(error: sqlite3.IntegrityError) -> str:
    text = str(error)
    if text.startswith("FOREIGN KEY"):
        return "foreign key"
    if text.startswith("UNIQUE"):
        return "unique"
    return "other"


def runSync(
    conn: sqlite3.Connection,
    op: Op[_T],
    appendEvents: Callable[[sqlite3.Connection, Iterable[Any], Any], int],
) -> _T:
    """
    Run C{op} on a C{sqlite3} connection (inside the caller's transaction); its events are
    appended with C{appendEvents(conn, events, now)} (L{tm20.store._sqlite_events}).
    """
    try:
        statement = next(op)
        while True:
            if isinstance(statement, AppendEvents):
                count = appendEvents(conn, statement.events, statement.now)
                statement = op.send(Result([], count))
                continue
            sql, params = statement
            try:
                cursor = conn.execute(
                    _sqliteMarkers(sql), params if isinstance(params, Mapping) else tuple(params)
                )
            except sqlite3.IntegrityError as e:
                broken = BrokenConstraint(_sqliteKind(e), str(e))
                broken.__cause__ = e
                statement = op.throw(broken)
                continue
            rows = cursor.fetchall() if cursor.description is not None else []
            statement = op.send(Result(list(rows), cursor.rowcount))
    except StopIteration as stop:
        result: _T = stop.value
        return result


async def runAsync(cur: Any, op: Op[_T], appendEvents: Callable[..., Any]) -> _T:
    """
    Run C{op} on a txpostgres cursor (L{tm20.store._pgpool.Cursor}); its events are appended
    with C{await appendEvents(cur, events, now, commit=last)} (L{tm20.store._postgres_events},
    which appends them all: their count is known before they are written).  C{op} is told the
    count first, so that it is known whether the events are its last statement: they then
    carry the transaction's C{COMMIT} (one round trip less).
    """
    try:
        statement = next(op)
        while True:
            if isinstance(statement, AppendEvents):
                events = list(statement.events)
                try:
                    after = op.send(Result([], len(events)))
                except StopIteration as stop:
                    await appendEvents(cur, events, statement.now, commit=True)
                    result: _T = stop.value
                    return result
                await appendEvents(cur, events, statement.now)
                statement = after
                continue
            sql, params = statement
            try:
                await cur.execute(sql, params if isinstance(params, Mapping) else tuple(params))
            except Exception as e:
                kind = CONSTRAINT_CODES.get(getattr(e, "pgcode", None) or "")
                if kind is None:
                    raise
                broken = BrokenConstraint(kind, str(e).strip())
                broken.__cause__ = e
                statement = op.throw(broken)
                continue
            rows: list[Mapping[str, Any]] = []
            if cur.description is not None:
                names = [column[0] for column in cur.description]
                rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            statement = op.send(Result(rows, cur.rowcount))
    except StopIteration as stop:
        last: _T = stop.value
        return last


def whereAll(conditions: Iterable[tuple[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """
    C{" WHERE a AND b"} (or C{""}) and its parameters, of each C{(condition, value)} whose value
    is not C{None} (a condition has one C{%s} marker, for its value).
    """
    kept = [(condition, value) for condition, value in conditions if value is not None]
    if not kept:
        return "", ()
    where = " WHERE " + " AND ".join(condition for condition, _ in kept)
    return where, tuple(value for _, value in kept)


def inList(values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """C{"(%s, %s, ...)"} and the values, for an C{IN} list of C{values} (at least one)."""
    if not values:
        raise ValueError("an IN list needs at least one value")
    return "(" + ", ".join(["%s"] * len(values)) + ")", tuple(values)


class OpStore:
    """
    What a store gives the role mixins that hold the operations (L{tm20.store._tokens} ...):
    mixed in after the store's own plumbing, which overrides these.
    """

    #: The store's L{tm20.store._dialect.Dialect}.
    dialect: Dialect

    def _runOp(self, write: bool, op: Op[_T], single: bool = False) -> Deferred[_T]:
        """
        Run C{op} in one transaction (a write one when C{write}); fires after the commit.
        C{single}: C{op} needs no transaction around it — one statement (a read, or a write
        atomic on its own), or reads around one such write whose outcome they only report — (a
        store may then spare the C{BEGIN}/C{COMMIT} round trips).
        """
        raise NotImplementedError

    def _now(self) -> Any:
        """Now, as this store writes a timestamp."""
        raise NotImplementedError

    def _eventsCommitted(self, result: Any = None) -> Any:
        """Wake the event log's readers (after a commit that may have appended events)."""
        raise NotImplementedError

    def _runOpWithEvents(self, op: Op[_T]) -> Deferred[_T]:
        """Run C{op}, which may append events, as a write; then wake the event log's readers."""
        d = self._runOp(True, op)
        d.addCallback(self._eventsCommitted)
        return d
