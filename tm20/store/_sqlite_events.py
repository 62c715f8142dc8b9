"""
The event log, delivery streams and webhooks of L{tm20.store.sqlite.SQLiteStore}
(L{tm20.interfaces.IEventStore}), as a mixin of that store.

Event ids are C{AUTOINCREMENT} and SQLite has a single writer, so ids become visible in
increasing order: a reader's cursor never skips an event committed later with a smaller id.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from tm20.events.model import (
    Event,
    EventQuery,
    NewEvent,
    SinkAttempt,
    SinkStream,
    Webhook,
    webhookStreamKey,
)
from tm20.store._eventrows import EventRowReader, clip, eventWhere, streamColumns, webhookColumns
from tm20.store._rows import dumpJSON, formatTimestamp, parseTimestamp

_rows = EventRowReader(time=parseTimestamp, jsonValue=lambda text: json.loads(text))


def _ts(value: datetime | None) -> str | None:
    return None if value is None else formatTimestamp(value)


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


def _selectStream(conn: sqlite3.Connection, key: str) -> SinkStream | None:
    row = conn.execute("SELECT * FROM sink_streams WHERE key = ?", (key,)).fetchone()
    return None if row is None else _rows.stream(row)


def _lastEventId(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(id) FROM events").fetchone()
    return int(row[0] or 0)


def _openStream(conn: sqlite3.Connection, key: str, startAfter: int | None, now: str) -> SinkStream:
    cursor = _lastEventId(conn) if startAfter is None else startAfter
    conn.execute(
        "INSERT INTO sink_streams (key, cursor, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
        (key, cursor, now),
    )
    stream = _selectStream(conn, key)
    assert stream is not None
    return stream


def _updateStream(
    conn: sqlite3.Connection, key: str, columns: Mapping[str, Any], now: str
) -> SinkStream | None:
    values = {
        column: _ts(value) if isinstance(value, datetime) else value
        for column, value in columns.items()
    }
    values["updated_at"] = now
    # column names come from STREAM_FIELDS only
    assignments = ", ".join(f"{column} = :{column}" for column in sorted(values))
    conn.execute(f"UPDATE sink_streams SET {assignments} WHERE key = :key", {**values, "key": key})
    return _selectStream(conn, key)


def _selectWebhook(conn: sqlite3.Connection, webhookId: int) -> Webhook | None:
    row = conn.execute("SELECT * FROM webhooks WHERE id = ?", (webhookId,)).fetchone()
    return None if row is None else _rows.webhook(row)


class SQLiteEventsMixin:
    """L{tm20.interfaces.IEventStore} for L{tm20.store.sqlite.SQLiteStore}."""

    _eventObservers: list[Callable[[], object]]

    if TYPE_CHECKING:  # provided by the store
        path: str
        _now: Callable[[], str]
        _write: Callable[..., Deferred[Any]]
        _read: Callable[..., Deferred[Any]]
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

        self._eventReader = ConnectionPool(
            "sqlite3",
            self.path,
            check_same_thread=False,
            isolation_level=None,
            cp_min=1,
            cp_max=1,
            cp_noisy=False,
            cp_reactor=self._reactor,
            cp_openfun=configure,
        )
        self._eventReader.start()

    def _closeEventReader(self) -> None:
        reader, self._eventReader = self._eventReader, None
        if reader is not None:
            reader.close()

    def _readEvents(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        reader = self._eventReader
        if reader is None:
            return self._read(function, *args)
        d: Deferred[Any] = reader.runWithConnection(self._inTransaction, False, function, *args)
        d.addErrback(self._translateFailure)
        return d

    # -- wake-ups ----------------------------------------------------------------------------------

    def addEventObserver(self, observer: Callable[[], object]) -> Callable[[], None]:
        """See L{tm20.interfaces.IEventStore.addEventObserver}."""
        self._eventObservers.append(observer)

        def remove() -> None:
            if observer in self._eventObservers:
                self._eventObservers.remove(observer)

        return remove

    def _eventsCommitted(self, result: Any = None) -> Any:
        for observer in list(self._eventObservers):
            try:
                observer()
            except Exception:  # an observer's bug must not fail the write
                pass
        return result

    def _writeWithEvents(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Deferred[Any]:
        return self._write(function, *args, **kwargs).addCallback(self._eventsCommitted)

    # -- events ------------------------------------------------------------------------------------

    def appendEvent(self, type: str, sn: str | None, payload: Mapping[str, Any]) -> Deferred[Event]:
        """See L{tm20.interfaces.IEventStore.appendEvent}."""
        now = self._now()
        try:
            event = NewEvent(type, sn, dict(payload))
            dumpJSON(event.payload)
        except (TypeError, ValueError) as e:
            return fail(e)

        def append(conn: sqlite3.Connection) -> Event:
            appendEvents(conn, [event], now)
            row = conn.execute("SELECT * FROM events WHERE id = last_insert_rowid()").fetchone()
            return _rows.event(row)

        return self._writeWithEvents(append)

    def appendEvents(self, events: Sequence[NewEvent]) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.appendEvents}."""
        now = self._now()
        events = list(events)
        try:
            for event in events:
                dumpJSON(event.payload)
        except (TypeError, ValueError) as e:
            return fail(e)
        return self._writeWithEvents(appendEvents, events, now)

    def listEvents(self, query: EventQuery) -> Deferred[list[Event]]:
        """See L{tm20.interfaces.IEventStore.listEvents}."""
        where, params = eventWhere(query, "?")
        params.append(max(query.limit, 0))

        def select(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                f"SELECT * FROM events {where} ORDER BY id LIMIT ?", params
            ).fetchall()
            return [_rows.event(row) for row in rows]

        return self._readEvents(select)

    def lastEventId(self) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.lastEventId}."""
        return self._read(_lastEventId)

    def pruneEvents(self, before: datetime) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.pruneEvents}."""
        cutoff = formatTimestamp(before)

        def prune(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM sink_attempts WHERE at < ?", (cutoff,))
            return int(conn.execute("DELETE FROM events WHERE created_at < ?", (cutoff,)).rowcount)

        return self._write(prune)

    # -- delivery streams --------------------------------------------------------------------------

    def getSinkStream(self, key: str) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.getSinkStream}."""
        return self._read(_selectStream, key)

    def openSinkStream(self, key: str, startAfter: int | None) -> Deferred[SinkStream]:
        """See L{tm20.interfaces.IEventStore.openSinkStream}."""
        return self._write(_openStream, key, startAfter, self._now())

    def updateSinkStream(self, key: str, changes: Mapping[str, Any]) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.updateSinkStream}."""
        try:
            columns = streamColumns(changes)
        except ValueError as e:
            return fail(e)
        return self._write(_updateStream, key, columns, self._now())

    def recordSinkAttempt(
        self, attempt: SinkAttempt, changes: Mapping[str, Any]
    ) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.recordSinkAttempt}."""
        try:
            columns = streamColumns(changes)
        except ValueError as e:
            return fail(e)
        now = self._now()

        def record(conn: sqlite3.Connection) -> SinkStream | None:
            conn.execute(
                "INSERT INTO sink_attempts (stream, at, first_event, last_event, events, ok,"
                " status, latency_ms, error, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.stream,
                    formatTimestamp(attempt.at),
                    attempt.firstEvent,
                    attempt.lastEvent,
                    attempt.events,
                    int(attempt.ok),
                    attempt.status,
                    attempt.latencyMs,
                    clip(attempt.error),
                    clip(attempt.response),
                ),
            )
            return _updateStream(conn, attempt.stream, columns, now)

        return self._write(record)

    def listSinkAttempts(
        self, key: str, limit: int, beforeId: int | None
    ) -> Deferred[list[SinkAttempt]]:
        """See L{tm20.interfaces.IEventStore.listSinkAttempts}."""

        def select(conn: sqlite3.Connection) -> list[SinkAttempt]:
            rows = conn.execute(
                "SELECT * FROM sink_attempts WHERE stream = ? AND (? IS NULL OR id < ?)"
                " ORDER BY id DESC LIMIT ?",
                (key, beforeId, beforeId, max(limit, 0)),
            ).fetchall()
            return [_rows.attempt(row) for row in rows]

        return self._read(select)

    # -- webhooks ----------------------------------------------------------------------------------

    def createWebhook(
        self,
        url: str,
        types: Sequence[str],
        sn: str | None,
        secret: str,
        description: str | None,
    ) -> Deferred[Webhook]:
        """See L{tm20.interfaces.IEventStore.createWebhook}."""
        now = self._now()
        typesJSON = json.dumps(list(types))

        def create(conn: sqlite3.Connection) -> Webhook:
            cursor = conn.execute(
                "INSERT INTO webhooks (url, types, sn, secret, description, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (url, typesJSON, sn, secret, description, now, now),
            )
            assert cursor.lastrowid is not None
            webhook = _selectWebhook(conn, cursor.lastrowid)
            assert webhook is not None
            # a new subscription starts at the head of the log
            conn.execute("DELETE FROM sink_streams WHERE key = ?", (webhook.streamKey,))
            _openStream(conn, webhook.streamKey, None, now)
            return webhook

        return self._write(create)

    def getWebhook(self, webhookId: int) -> Deferred[Webhook | None]:
        """See L{tm20.interfaces.IEventStore.getWebhook}."""
        return self._read(_selectWebhook, webhookId)

    def listWebhooks(self) -> Deferred[list[Webhook]]:
        """See L{tm20.interfaces.IEventStore.listWebhooks}."""

        def select(conn: sqlite3.Connection) -> list[Webhook]:
            return [
                _rows.webhook(row) for row in conn.execute("SELECT * FROM webhooks ORDER BY id")
            ]

        return self._read(select)

    def updateWebhook(self, webhookId: int, changes: Mapping[str, Any]) -> Deferred[Webhook | None]:
        """See L{tm20.interfaces.IEventStore.updateWebhook}."""
        try:
            columns = webhookColumns(changes)
        except ValueError as e:
            return fail(e)
        now = self._now()

        def update(conn: sqlite3.Connection) -> Webhook | None:
            values = {**columns, "updated_at": now}
            assignments = ", ".join(f"{column} = :{column}" for column in sorted(values))
            conn.execute(
                f"UPDATE webhooks SET {assignments} WHERE id = :id", {**values, "id": webhookId}
            )
            return _selectWebhook(conn, webhookId)

        return self._write(update)

    def deleteWebhook(self, webhookId: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IEventStore.deleteWebhook}: its stream and attempts too."""
        key = webhookStreamKey(webhookId)

        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM sink_attempts WHERE stream = ?", (key,))
            conn.execute("DELETE FROM sink_streams WHERE key = ?", (key,))
            return conn.execute("DELETE FROM webhooks WHERE id = ?", (webhookId,)).rowcount > 0

        return self._write(delete)


__all__ = ["SQLiteEventsMixin", "appendEventRows", "appendEvents", "terminalTimezone"]
