"""
What differs between SQLite and PostgreSQL for the operations written once (L{tm20.store._ops}),
in this one place.

Both databases take the same SQL otherwise: C{ON CONFLICT ... DO UPDATE/NOTHING} and
C{RETURNING} (SQLite 3.35+), C{true}/C{false}, C{COALESCE}, row values.  Booleans are passed as
Python C{bool}s (sqlite3 stores 1/0).  JSON is passed as text (a PostgreSQL C{json} column takes
an untyped literal).  The parameter markers differ, and the drivers: see L{tm20.store._ops}.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from tm20.events.payloads import (
    ARRAY,
    DOOR_EVENT,
    JSON,
    LOG_CREATED,
    LOG_EVENT_FIELDS,
    PRESENT,
    VALUE,
    PayloadField,
)
from tm20.store._rows import RowReader, formatTimestamp, loadJSONObject, parseTimestamp

__all__ = ["EVENTS_LOCK_KEY", "Dialect", "POSTGRES", "SQLITE", "logEventJSON", "logEventTypeSQL"]

#: PostgreSQL's advisory lock held (shared) from an event insert to its commit, and (exclusive)
#: by readers of the log's order ("tm2e" in ASCII): see L{tm20.store._postgres_events}.
EVENTS_LOCK_KEY = 0x746D3265


@attrs.frozen
class Dialect:
    """
    @ivar name: C{"sqlite"} or C{"postgres"}.
    @ivar time: a timestamp column as the driver gives it, to an aware UTC C{datetime}.
    @ivar timestamp: an aware C{datetime} as a parameter for a timestamp column.
    @ivar read: rows to L{tm20.model} values (with L{time} and the JSON reader).
    @ivar forUpdate: what ends a C{SELECT} whose rows the transaction will change, to lock them
        (PostgreSQL: C{" FOR UPDATE"}; SQLite: nothing, a write transaction holds the database).
    @ivar forShare: the same for rows that must not change or vanish until the commit.
    @ivar waitForEventWriters: the statement a reader of the event log's order runs first (see
        L{tm20.store._postgres_events}: PostgreSQL waits for the writers holding an event id not
        yet committed; SQLite, one writer at a time, has none to wait for: C{""}).
    @ivar lastEventInserted: the SQL expression of the id of the event this transaction
        inserted last.
    @ivar jsonObject: the function building a JSON object from names and values.
    @ivar jsonArray: the function building a JSON array from values.
    @ivar jsonPresent: a JSON C{true}/C{false}: is the expression C{{}} not null.
    @ivar jsonText: the JSON text of the expression C{{}}, as JSON (not as a string).
    @ivar writableWith: whether a statement's C{WITH} may hold an C{INSERT} run with it
        (PostgreSQL's data-modifying common table expressions; SQLite has none): two inserts
        then go as one statement, atomic without a transaction around it.
    """

    name: str
    time: Callable[[Any], datetime | None]
    timestamp: Callable[[datetime], Any]
    read: RowReader
    forUpdate: str
    forShare: str
    waitForEventWriters: str
    lastEventInserted: str
    jsonObject: str
    jsonArray: str
    jsonPresent: str
    jsonText: str
    writableWith: bool


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _decodedJSONObject(value: Any) -> dict[str, Any]:
    """A C{json} column (psycopg2 decodes it) as a dict; C{None} or a non-object gives C{{}}."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


#: Timestamps are fixed-width ISO-8601 text (L{formatTimestamp}), JSON is text.
SQLITE = Dialect(
    name="sqlite",
    time=parseTimestamp,
    timestamp=formatTimestamp,
    read=RowReader(time=parseTimestamp, jsonObject=loadJSONObject),
    forUpdate="",
    forShare="",
    waitForEventWriters="",
    lastEventInserted="last_insert_rowid()",
    jsonObject="json_object",
    jsonArray="json_array",
    jsonPresent="json(CASE WHEN {} IS NULL THEN 'false' ELSE 'true' END)",
    jsonText="json({})",
    writableWith=False,
)

#: Timestamps are C{timestamptz} (psycopg2 gives aware C{datetime}s), JSON is C{json}.
POSTGRES = Dialect(
    name="postgres",
    time=_utc,
    timestamp=_utc,
    read=RowReader(time=_utc, jsonObject=_decodedJSONObject),
    forUpdate=" FOR UPDATE",
    forShare=" FOR SHARE",
    waitForEventWriters=f"SELECT pg_advisory_xact_lock({EVENTS_LOCK_KEY})",
    lastEventInserted="currval('events_id_seq')",
    jsonObject="json_build_object",
    jsonArray="json_build_array",
    jsonPresent="{} IS NOT NULL",
    jsonText="{}::json",
    writableWith=True,
)


def _fieldSQL(dialect: Dialect, field: PayloadField, column: Callable[[str], str]) -> str:
    if field.encoding == VALUE:
        return column(field.source[0])
    if field.encoding == PRESENT:
        return dialect.jsonPresent.format(column(field.source[0]))
    if field.encoding == JSON:
        return dialect.jsonText.format(column(field.source[0]))
    if field.encoding == ARRAY:
        return f"{dialect.jsonArray}({', '.join(column(c) for c in field.source)})"
    raise ValueError(f"unknown payload encoding {field.encoding!r}")


def logEventTypeSQL(enrollid: str = "enrollid") -> str:
    """The SQL expression of a stored log's event type (L{tm20.events.payloads.logEventType})."""
    return f"CASE WHEN {enrollid} = 0 THEN '{DOOR_EVENT}' ELSE '{LOG_CREATED}' END"


def logEventJSON(dialect: Dialect, column: Callable[[str], str] = str) -> str:
    """
    The SQL expression of a stored log's event payload in C{dialect}, from
    L{tm20.events.payloads.LOG_EVENT_FIELDS} (the one declaration of its fields).

    @param column: the SQL expression of each source column, by its name (as it is: the
        default).
    """
    fields = ", ".join(
        f"'{field.name}', {_fieldSQL(dialect, field, column)}" for field in LOG_EVENT_FIELDS
    )
    return f"{dialect.jsonObject}({fields})"
