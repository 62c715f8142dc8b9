"""
Rows of the event tables to L{tm20.events.model} values, and checks shared by both stores.
Nothing here touches a database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from tm20.events.model import (
    STREAM_STATES,
    WEBHOOK_EDITABLE_FIELDS,
    Event,
    EventQuery,
    SinkAttempt,
    SinkStream,
    Webhook,
)

#: Columns of C{sink_streams} a caller may change, and their model names.
STREAM_FIELDS = {
    "cursor": "cursor",
    "state": "state",
    "failures": "failures",
    "retryAt": "retry_at",
    "failingSince": "failing_since",
    "lastError": "last_error",
}

#: The longest response excerpt and error text kept with an attempt.
EXCERPT_CHARS = 512


def streamColumns(changes: Mapping[str, Any]) -> dict[str, Any]:
    """
    C{changes} (model field names) as C{sink_streams} columns.

    @raise ValueError: an unknown field or state.
    """
    unknown = sorted(set(changes) - set(STREAM_FIELDS))
    if unknown:
        raise ValueError(f"sink stream fields {unknown} cannot be changed")
    if "state" in changes and changes["state"] not in STREAM_STATES:
        raise ValueError(f"unknown sink stream state {changes['state']!r}")
    return {STREAM_FIELDS[name]: value for name, value in changes.items()}


def webhookColumns(changes: Mapping[str, Any]) -> dict[str, Any]:
    """
    C{changes} (model field names) as C{webhooks} columns (C{types} as JSON text).

    @raise ValueError: an unknown field.
    """
    unknown = sorted(set(changes) - WEBHOOK_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"webhook fields {unknown} cannot be changed")
    out = dict(changes)
    if "types" in out:
        out["types"] = json.dumps(list(out["types"]))
    return out


def clip(text: str | None) -> str | None:
    """C{text} cut to L{EXCERPT_CHARS} characters (NULs removed: PostgreSQL refuses them)."""
    if text is None:
        return None
    return text.replace("\x00", "")[:EXCERPT_CHARS]


def eventWhere(query: EventQuery, placeholder: str) -> tuple[str, list[Any]]:
    """The C{WHERE} clause and parameters of an L{EventQuery} (C{id > after} at least)."""
    conditions = [f"id > {placeholder}"]
    params: list[Any] = [query.after]
    if query.types is not None:
        if not query.types:
            conditions.append("1 = 0")
        else:
            conditions.append(f"type IN ({', '.join([placeholder] * len(query.types))})")
            params.extend(query.types)
    if query.sn is not None:
        conditions.append(f"sn = {placeholder}")
        params.append(query.sn)
    return "WHERE " + " AND ".join(conditions), params


class EventRowReader:
    """Rows to values; as L{tm20.store._rows.RowReader}, only time and JSON decoding differ."""

    def __init__(
        self,
        time: Callable[[Any], datetime | None],
        jsonValue: Callable[[Any], Any],
    ) -> None:
        self._time = time
        self._json = jsonValue

    def event(self, row: Mapping[str, Any]) -> Event:
        createdAt = self._time(row["created_at"])
        assert createdAt is not None
        payload = self._json(row["payload"])
        return Event(
            id=row["id"],
            type=row["type"],
            sn=row["sn"],
            payload=payload if isinstance(payload, dict) else {},
            createdAt=createdAt,
        )

    def stream(self, row: Mapping[str, Any]) -> SinkStream:
        return SinkStream(
            key=row["key"],
            cursor=row["cursor"],
            state=row["state"],
            failures=row["failures"],
            retryAt=self._time(row["retry_at"]),
            failingSince=self._time(row["failing_since"]),
            lastError=row["last_error"],
            updatedAt=self._time(row["updated_at"]),
        )

    def attempt(self, row: Mapping[str, Any]) -> SinkAttempt:
        at = self._time(row["at"])
        assert at is not None
        return SinkAttempt(
            id=row["id"],
            stream=row["stream"],
            at=at,
            firstEvent=row["first_event"],
            lastEvent=row["last_event"],
            events=row["events"],
            ok=bool(row["ok"]),
            latencyMs=row["latency_ms"],
            status=row["status"],
            error=row["error"],
            response=row["response"],
        )

    def webhook(self, row: Mapping[str, Any]) -> Webhook:
        types = self._json(row["types"])
        return Webhook(
            id=row["id"],
            url=row["url"],
            types=tuple(types if isinstance(types, list) else ()),
            sn=row["sn"],
            secret=row["secret"],
            description=row["description"],
            createdAt=self._time(row["created_at"]),
            updatedAt=self._time(row["updated_at"]),
        )


__all__ = [
    "EXCERPT_CHARS",
    "EventRowReader",
    "clip",
    "eventWhere",
    "streamColumns",
    "webhookColumns",
]
