"""
The event log, delivery streams and webhooks, written once for both stores as operations of
L{tm20.store._ops} (generators of C{(sql, params)} run by C{runSync}/C{runAsync}).

What differs is the dialect's (L{tm20.store._dialect}): how a timestamp is passed and read, the
id of the event just inserted, and the wait for the writers in flight that a reader of the log's
order does first on PostgreSQL (L{tm20.store._postgres_events} explains why).  Appending events
is each store's own (L{tm20.store._ops.AppendEvents}: PostgreSQL's takes a shared lock and
inserts them with one statement).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from tm20.events.model import (
    Event,
    EventQuery,
    NewEvent,
    SinkAttempt,
    SinkStream,
    Webhook,
    webhookStreamKey,
)
from tm20.store._dialect import Dialect
from tm20.store._eventrows import EventRowReader, clip, eventWhere
from tm20.store._ops import AppendEvents, Op

__all__ = [
    "appendEvent",
    "appendEvents",
    "createWebhook",
    "deleteWebhook",
    "getSinkStream",
    "getWebhook",
    "lastEventId",
    "listEvents",
    "listSinkAttempts",
    "listWebhooks",
    "openSinkStream",
    "pruneEvents",
    "recordSinkAttempt",
    "updateSinkStream",
    "updateWebhook",
]


def _jsonValue(value: Any) -> Any:
    """A JSON column: text (SQLite), or already decoded (psycopg2's C{json})."""
    return json.loads(value) if isinstance(value, str) else value


@lru_cache(maxsize=4)
def _rows(d: Dialect) -> EventRowReader:
    return EventRowReader(time=d.time, jsonValue=_jsonValue)


def _setColumns(
    table: str, keyColumn: str, key: Any, values: Mapping[str, Any]
) -> Op[Mapping[str, Any] | None]:
    """C{UPDATE table SET ...} of the row C{key}; @return: the row after, or C{None}."""
    assignments = ", ".join(f"{column} = %({column})s" for column in sorted(values))
    result = yield (
        f"UPDATE {table} SET {assignments} WHERE {keyColumn} = %(_key)s RETURNING *",
        {**values, "_key": key},
    )
    return result.first


def _waitForWriters(d: Dialect) -> Op[None]:
    """First in a transaction that reads the log in id order (nothing to do on SQLite)."""
    if d.waitForEventWriters:
        yield (d.waitForEventWriters, ())


# -- events ----------------------------------------------------------------------------------------


def appendEvents(events: Sequence[NewEvent], now: Any) -> Op[int]:
    """Append C{events} in order; @return: how many."""
    return (yield AppendEvents(tuple(events), now)).rowcount


def appendEvent(d: Dialect, event: NewEvent, now: Any) -> Op[Event]:
    """Append one event; @return: it, as stored."""
    yield AppendEvents((event,), now)
    result = yield (f"SELECT * FROM events WHERE id = {d.lastEventInserted}", ())
    assert result.first is not None
    return _rows(d).event(result.first)


#: The ids after the cursor looked at by a read that does not wait for the writers
#: (L{_CONTIGUOUS_READ}): this many times the page asked for, within these bounds.
CONTIGUOUS_WINDOW = (4, 1000, 10_000)

#: A read of the log's order that waits for nobody: the events of the query among the ids
#: after the cursor that follow it without a gap (C{after + 1}, C{after + 2}, …, as far as they
#: go among the first C{window} visible ids).  Every id of that run is committed, so no event
#: can ever appear inside it: the page is the query's whole answer up to its last id.  The
#: first row also says how many ids were looked at (C{window_seen}) and how many of them form
#: the run (C{window_run}); it is the only row, its event columns null, when none matches.
_CONTIGUOUS_READ = """
WITH w AS (
    SELECT id, row_number() OVER (ORDER BY id) AS k
    FROM (SELECT id FROM events WHERE id > %s ORDER BY id LIMIT %s) ids
), c AS (
    SELECT count(*) AS seen, count(*) FILTER (WHERE id - k = %s) AS run,
           max(id) FILTER (WHERE id - k = %s) AS upto
    FROM w
)
SELECT c.seen AS window_seen, c.run AS window_run, e.*
FROM c LEFT JOIN LATERAL (
    SELECT * FROM events {where} AND id <= c.upto ORDER BY id LIMIT %s
) e ON true
"""


def listEvents(d: Dialect, query: EventQuery) -> Op[list[Event]]:
    """
    The events of C{query}, in id order.  On PostgreSQL (a dialect that waits for the event
    writers) the read first takes what it can without waiting (L{_CONTIGUOUS_READ}): a full
    page, or any events of the run of ids after the cursor, or nothing when every visible id
    after the cursor is in that run (no writer holds a smaller one); only when a gap comes
    before any event of the query (a writer in flight holds an id there, or a rolled-back one
    left it) does it wait for the writers and read again, as before.
    """
    where, params = eventWhere(query, "%s")
    limit = max(query.limit, 0)
    if d.waitForEventWriters:
        factor, least, most = CONTIGUOUS_WINDOW
        window = min(max(factor * limit, least), most)
        rows = (
            yield (
                _CONTIGUOUS_READ.format(where=where),
                [query.after, window, query.after, query.after, *params, limit],
            )
        ).rows
        events = [_rows(d).event(row) for row in rows if row["id"] is not None]
        # (one row at least: C{c} is an aggregate)
        settled = rows[0]["window_run"] == rows[0]["window_seen"] < window
        if events or settled or limit == 0:
            return events
    yield from _waitForWriters(d)
    rows = (yield (f"SELECT * FROM events {where} ORDER BY id LIMIT %s", [*params, limit])).rows
    return [_rows(d).event(row) for row in rows]


def lastEventId(d: Dialect) -> Op[int]:
    yield from _waitForWriters(d)
    row = (yield ("SELECT COALESCE(MAX(id), 0) AS head FROM events", ())).first
    assert row is not None
    return int(row["head"])


#: The events before the first one created at or after the cutoff: found by walking the primary
#: key from its start (no index on C{created_at}), which reads as many rows as it deletes.
_PRUNE_EVENTS = """
DELETE FROM events WHERE id < COALESCE(
    (SELECT id FROM events WHERE created_at >= %s ORDER BY id LIMIT 1),
    (SELECT MAX(id) + 1 FROM events)
)
"""


def pruneEvents(d: Dialect, before: datetime) -> Op[int]:
    """
    Delete the attempts older than C{before}, and the events before the first one created at or
    after C{before}.  Events are appended in increasing id with the clock's time, so these are
    the events older than C{before}; an event written after the clock stepped back (or by a
    node whose clock is behind) is kept until every event before it is old: pruning never
    deletes a young event.  @return: how many events.
    """
    cutoff = d.timestamp(before)
    yield ("DELETE FROM sink_attempts WHERE at < %s", (cutoff,))
    return (yield (_PRUNE_EVENTS, (cutoff,))).rowcount


# -- delivery streams ------------------------------------------------------------------------------


def getSinkStream(d: Dialect, key: str) -> Op[SinkStream | None]:
    row = (yield ("SELECT * FROM sink_streams WHERE key = %s", (key,))).first
    return None if row is None else _rows(d).stream(row)


def openSinkStream(d: Dialect, key: str, startAfter: int | None, now: Any) -> Op[SinkStream]:
    """The stream C{key}, made (at C{startAfter}, or the head of the log) if it is not there."""
    cursor = (yield from lastEventId(d)) if startAfter is None else startAfter
    yield (
        "INSERT INTO sink_streams (key, cursor, updated_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (key) DO NOTHING",
        (key, cursor, now),
    )
    stream = yield from getSinkStream(d, key)
    assert stream is not None
    return stream


def updateSinkStream(
    d: Dialect, key: str, columns: Mapping[str, Any], now: Any
) -> Op[SinkStream | None]:
    """Set C{columns} (checked by L{tm20.store._eventrows.streamColumns}) of the stream."""
    values = {
        column: d.timestamp(value) if isinstance(value, datetime) else value
        for column, value in columns.items()
    }
    # column names come from STREAM_FIELDS only
    row = yield from _setColumns("sink_streams", "key", key, {**values, "updated_at": now})
    return None if row is None else _rows(d).stream(row)


def recordSinkAttempt(
    d: Dialect, attempt: SinkAttempt, columns: Mapping[str, Any], now: Any
) -> Op[SinkStream | None]:
    """Record a delivery attempt and change its stream in the same transaction."""
    yield (
        "INSERT INTO sink_attempts (stream, at, first_event, last_event, events, ok,"
        " status, latency_ms, error, response)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            attempt.stream,
            d.timestamp(attempt.at),
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
    return (yield from updateSinkStream(d, attempt.stream, columns, now))


def listSinkAttempts(
    d: Dialect, key: str, limit: int, beforeId: int | None
) -> Op[list[SinkAttempt]]:
    """A stream's attempts, newest first, before C{beforeId} (a page)."""
    before, params = ("", ()) if beforeId is None else (" AND id < %s", (beforeId,))
    rows = (
        yield (
            f"SELECT * FROM sink_attempts WHERE stream = %s{before} ORDER BY id DESC LIMIT %s",
            (key, *params, max(limit, 0)),
        )
    ).rows
    return [_rows(d).attempt(row) for row in rows]


# -- webhooks --------------------------------------------------------------------------------------


def createWebhook(
    d: Dialect,
    url: str,
    types: Sequence[str],
    sn: str | None,
    secret: str,
    description: str | None,
    now: Any,
) -> Op[Webhook]:
    """A new subscription, its stream at the head of the log."""
    row = (
        yield (
            "INSERT INTO webhooks (url, types, sn, secret, description, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (url, json.dumps(list(types)), sn, secret, description, now, now),
        )
    ).first
    assert row is not None
    webhook = _rows(d).webhook(row)
    yield ("DELETE FROM sink_streams WHERE key = %s", (webhook.streamKey,))
    yield from openSinkStream(d, webhook.streamKey, None, now)
    return webhook


def getWebhook(d: Dialect, webhookId: int) -> Op[Webhook | None]:
    row = (yield ("SELECT * FROM webhooks WHERE id = %s", (webhookId,))).first
    return None if row is None else _rows(d).webhook(row)


def listWebhooks(d: Dialect) -> Op[list[Webhook]]:
    rows = (yield ("SELECT * FROM webhooks ORDER BY id", ())).rows
    return [_rows(d).webhook(row) for row in rows]


def updateWebhook(
    d: Dialect, webhookId: int, columns: Mapping[str, Any], now: Any
) -> Op[Webhook | None]:
    """Set C{columns} (checked by L{tm20.store._eventrows.webhookColumns}) of the webhook."""
    # column names come from WEBHOOK_EDITABLE_FIELDS only
    row = yield from _setColumns("webhooks", "id", webhookId, {**columns, "updated_at": now})
    return None if row is None else _rows(d).webhook(row)


def deleteWebhook(webhookId: int) -> Op[bool]:
    """Delete a webhook with its stream and attempts; C{True} if there was one."""
    key = webhookStreamKey(webhookId)
    yield ("DELETE FROM sink_attempts WHERE stream = %s", (key,))
    yield ("DELETE FROM sink_streams WHERE key = %s", (key,))
    return (yield ("DELETE FROM webhooks WHERE id = %s", (webhookId,))).rowcount > 0
