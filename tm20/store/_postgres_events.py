"""
The event log, delivery streams and webhooks of L{tm20.store.postgres.PostgresStore}
(L{tm20.interfaces.IEventStore}), as a mixin of that store.

B{Ids become visible in order.}  A C{bigserial} alone does not give that: two transactions take
ids 10 and 11, the one with 11 commits first, and a reader whose cursor moves to 11 never sees
10.  So the transaction-level advisory lock L{EVENTS_LOCK_KEY} separates writers from readers:

  - every transaction that appends events takes it in I{shared} mode just before its
    C{INSERT INTO events} (its last statement) and holds it to its commit, so a transaction
    holding an event id not yet committed always holds the shared lock.  Writers never wait
    for each other: concurrent group commits (of this process or another) commit side by
    side, their fsyncs shared, instead of one at a time;
  - every read of the log's order (L{listEvents}, L{lastEventId}, opening a stream at the
    head) first takes it in I{exclusive} mode: it waits until every writer holding an id has
    committed (or rolled back), and writers arriving meanwhile wait behind it.  Its C{SELECT}
    then (a new snapshot, C{READ COMMITTED}) sees every id taken so far that will ever be
    committed, and any id taken later is larger.  A reader that sees id N therefore already
    sees every smaller id still in the log.

The lock is released at the commit, after the transaction became visible.  Readers are short
(one C{SELECT}); the cost of a read is to wait for the writers in flight.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.defer import Deferred

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
from tm20.store._pgpool import Cursor
from tm20.store._rows import dumpJSON

if TYPE_CHECKING:
    from tm20.store._pgpool import Pool

#: The advisory lock held (shared) from an event insert to its commit, and (exclusive) by
#: readers of the log's order ("tm2e" in ASCII).
EVENTS_LOCK_KEY = 0x746D3265


def _utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    return None if value is None else value.astimezone(UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


_rows = EventRowReader(time=_utc, jsonValue=_json)


def _dicts(cur: Cursor) -> list[dict[str, Any]]:
    names = [column[0] for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _textArray(values: Sequence[str | None]) -> str:
    return (
        "{"
        + ",".join(
            "NULL"
            if value is None
            else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for value in values
        )
        + "}"
    )


async def appendEvents(cur: Cursor, events: Iterable[NewEvent], now: datetime) -> int:
    """
    Insert C{events} in order, in the caller's transaction, under L{EVENTS_LOCK_KEY} (shared):
    call it as the transaction's last statement.  @return: how many.
    """
    return await appendEventRows(cur, [(e.type, e.sn, dumpJSON(e.payload)) for e in events], now)


async def appendEventRows(
    cur: Cursor, rows: Sequence[tuple[str, str | None, str]], now: datetime
) -> int:
    """
    L{appendEvents} for events given as C{(type, sn, payload JSON text)}.  @return: how many.
    """
    if not rows:
        return 0
    await cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (EVENTS_LOCK_KEY,))
    await cur.execute(
        "INSERT INTO events (type, sn, payload, created_at)"
        " SELECT u.type, u.sn, u.payload::json, %s"
        " FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS u(type, sn, payload, n)"
        " ORDER BY u.n",
        (
            now,
            _textArray([row[0] for row in rows]),
            _textArray([row[1] for row in rows]),
            _textArray([row[2] for row in rows]),
        ),
    )
    return len(rows)


async def terminalTimezones(cur: Cursor, sns: Iterable[str]) -> dict[str, str | None]:
    """The time zone of each terminal of C{sns} that exists."""
    await cur.execute(
        "SELECT sn, timezone FROM terminals WHERE sn = ANY(%s::text[])", (_textArray(list(sns)),)
    )
    return {row[0]: row[1] for row in cur.fetchall()}


async def _selectStream(cur: Cursor, key: str) -> SinkStream | None:
    await cur.execute("SELECT * FROM sink_streams WHERE key = %s", (key,))
    rows = _dicts(cur)
    return _rows.stream(rows[0]) if rows else None


async def waitForEventWriters(cur: Cursor) -> None:
    """
    Wait until no transaction holds an event id it has not committed (see the module
    docstring): call it first in a transaction that reads the log in id order.
    """
    await cur.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK_KEY,))


async def _lastEventId(cur: Cursor) -> int:
    await waitForEventWriters(cur)
    await cur.execute("SELECT COALESCE(MAX(id), 0) FROM events")
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


async def _openStream(cur: Cursor, key: str, startAfter: int | None, now: datetime) -> SinkStream:
    cursor = await _lastEventId(cur) if startAfter is None else startAfter
    await cur.execute(
        "INSERT INTO sink_streams (key, cursor, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (key) DO NOTHING",
        (key, cursor, now),
    )
    stream = await _selectStream(cur, key)
    assert stream is not None
    return stream


async def _updateStream(
    cur: Cursor, key: str, columns: Mapping[str, Any], now: datetime
) -> SinkStream | None:
    values = {**columns, "updated_at": now}
    # column names come from STREAM_FIELDS only
    assignments = ", ".join(f"{column} = %({column})s" for column in sorted(values))
    await cur.execute(
        f"UPDATE sink_streams SET {assignments} WHERE key = %(key)s RETURNING *",
        {**values, "key": key},
    )
    rows = _dicts(cur)
    return _rows.stream(rows[0]) if rows else None


async def _selectWebhook(cur: Cursor, webhookId: int) -> Webhook | None:
    await cur.execute("SELECT * FROM webhooks WHERE id = %s", (webhookId,))
    rows = _dicts(cur)
    return _rows.webhook(rows[0]) if rows else None


class PostgresEventsMixin:
    """L{tm20.interfaces.IEventStore} for L{tm20.store.postgres.PostgresStore}."""

    _eventObservers: list[Callable[[], object]]

    if TYPE_CHECKING:  # provided by the store
        _now: Callable[[], datetime]
        _run: Callable[..., Deferred[Any]]
        _pool: Pool

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

    def _runWithEvents(self, interaction: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return self._run(interaction, *args).addCallback(self._eventsCommitted)

    # -- events ------------------------------------------------------------------------------------

    def appendEvent(self, type: str, sn: str | None, payload: Mapping[str, Any]) -> Deferred[Event]:
        """See L{tm20.interfaces.IEventStore.appendEvent}."""
        now = self._now()
        try:
            event = NewEvent(type, sn, dict(payload))
            dumpJSON(event.payload)
        except (TypeError, ValueError) as e:
            return defer.fail(e)

        async def append(cur: Cursor) -> Event:
            await appendEvents(cur, [event], now)
            await cur.execute("SELECT * FROM events WHERE id = currval('events_id_seq')")
            return _rows.event(_dicts(cur)[0])

        return self._runWithEvents(append)

    def appendEvents(self, events: Sequence[NewEvent]) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.appendEvents}."""
        now = self._now()
        events = list(events)
        try:
            for event in events:
                dumpJSON(event.payload)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        return self._runWithEvents(appendEvents, events, now)

    def listEvents(self, query: EventQuery) -> Deferred[list[Event]]:
        """See L{tm20.interfaces.IEventStore.listEvents}."""
        where, params = eventWhere(query, "%s")
        params.append(max(query.limit, 0))

        async def select(cur: Cursor) -> list[Event]:
            await waitForEventWriters(cur)
            await cur.execute(f"SELECT * FROM events {where} ORDER BY id LIMIT %s", params)
            return [_rows.event(row) for row in _dicts(cur)]

        return self._run(select)

    def lastEventId(self) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.lastEventId}."""
        return self._run(_lastEventId)

    def pruneEvents(self, before: datetime) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.pruneEvents}."""

        async def prune(cur: Cursor) -> int:
            await cur.execute("DELETE FROM sink_attempts WHERE at < %s", (before,))
            await cur.execute("DELETE FROM events WHERE created_at < %s", (before,))
            return int(cur.rowcount)

        return self._run(prune)

    # -- delivery streams --------------------------------------------------------------------------

    def getSinkStream(self, key: str) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.getSinkStream}."""
        return self._run(_selectStream, key)

    def openSinkStream(self, key: str, startAfter: int | None) -> Deferred[SinkStream]:
        """See L{tm20.interfaces.IEventStore.openSinkStream}."""
        return self._run(_openStream, key, startAfter, self._now())

    def updateSinkStream(self, key: str, changes: Mapping[str, Any]) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.updateSinkStream}."""
        try:
            columns = streamColumns(changes)
        except ValueError as e:
            return defer.fail(e)
        return self._run(_updateStream, key, columns, self._now())

    def recordSinkAttempt(
        self, attempt: SinkAttempt, changes: Mapping[str, Any]
    ) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.recordSinkAttempt}."""
        try:
            columns = streamColumns(changes)
        except ValueError as e:
            return defer.fail(e)
        now = self._now()

        async def record(cur: Cursor) -> SinkStream | None:
            await cur.execute(
                "INSERT INTO sink_attempts (stream, at, first_event, last_event, events, ok,"
                " status, latency_ms, error, response)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    attempt.stream,
                    attempt.at,
                    attempt.firstEvent,
                    attempt.lastEvent,
                    attempt.events,
                    attempt.ok,
                    attempt.status,
                    attempt.latencyMs,
                    clip(attempt.error),
                    clip(attempt.response),
                ),
            )
            return await _updateStream(cur, attempt.stream, columns, now)

        return self._run(record)

    def listSinkAttempts(
        self, key: str, limit: int, beforeId: int | None
    ) -> Deferred[list[SinkAttempt]]:
        """See L{tm20.interfaces.IEventStore.listSinkAttempts}."""

        async def select(cur: Cursor) -> list[SinkAttempt]:
            await cur.execute(
                "SELECT * FROM sink_attempts WHERE stream = %s"
                " AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
                (key, beforeId, beforeId, max(limit, 0)),
            )
            return [_rows.attempt(row) for row in _dicts(cur)]

        return self._run(select)

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

        async def create(cur: Cursor) -> Webhook:
            await cur.execute(
                "INSERT INTO webhooks (url, types, sn, secret, description, created_at,"
                " updated_at) VALUES (%s, %s::json, %s, %s, %s, %s, %s) RETURNING *",
                (url, typesJSON, sn, secret, description, now, now),
            )
            webhook = _rows.webhook(_dicts(cur)[0])
            # a new subscription starts at the head of the log
            await cur.execute("DELETE FROM sink_streams WHERE key = %s", (webhook.streamKey,))
            await _openStream(cur, webhook.streamKey, None, now)
            return webhook

        return self._run(create)

    def getWebhook(self, webhookId: int) -> Deferred[Webhook | None]:
        """See L{tm20.interfaces.IEventStore.getWebhook}."""
        return self._run(_selectWebhook, webhookId)

    def listWebhooks(self) -> Deferred[list[Webhook]]:
        """See L{tm20.interfaces.IEventStore.listWebhooks}."""

        async def select(cur: Cursor) -> list[Webhook]:
            await cur.execute("SELECT * FROM webhooks ORDER BY id")
            return [_rows.webhook(row) for row in _dicts(cur)]

        return self._run(select)

    def updateWebhook(self, webhookId: int, changes: Mapping[str, Any]) -> Deferred[Webhook | None]:
        """See L{tm20.interfaces.IEventStore.updateWebhook}."""
        try:
            columns = webhookColumns(changes)
        except ValueError as e:
            return defer.fail(e)
        now = self._now()

        async def update(cur: Cursor) -> Webhook | None:
            values = {**columns, "updated_at": now}
            assignments = ", ".join(
                f"{column} = %({column})s::json"
                if column == "types"
                else f"{column} = %({column})s"
                for column in sorted(values)
            )
            await cur.execute(
                f"UPDATE webhooks SET {assignments} WHERE id = %(id)s RETURNING *",
                {**values, "id": webhookId},
            )
            rows = _dicts(cur)
            return _rows.webhook(rows[0]) if rows else None

        return self._run(update)

    def deleteWebhook(self, webhookId: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IEventStore.deleteWebhook}: its stream and attempts too."""
        key = webhookStreamKey(webhookId)

        async def delete(cur: Cursor) -> bool:
            await cur.execute("DELETE FROM sink_attempts WHERE stream = %s", (key,))
            await cur.execute("DELETE FROM sink_streams WHERE key = %s", (key,))
            await cur.execute("DELETE FROM webhooks WHERE id = %s", (webhookId,))
            return bool(cur.rowcount > 0)

        return self._run(delete)


__all__ = [
    "EVENTS_LOCK_KEY",
    "PostgresEventsMixin",
    "appendEventRows",
    "appendEvents",
    "terminalTimezones",
    "waitForEventWriters",
]
