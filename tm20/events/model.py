"""
The values of the event log: events, queries over them, delivery streams and their attempts,
webhook subscriptions.  Plain immutable values shared by the stores, the readers and the API;
nothing here touches a database.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

#: Every event type, in documentation order.  A type filter (C{log.*}) is expanded against these.
EVENT_TYPES: tuple[str, ...] = (
    "log.created",
    "door.event",
    "log.quarantined",
    "terminal.registered",
    "terminal.pending",
    "terminal.connected",
    "terminal.disconnected",
    "terminal.flagged",
    "terminal.updated",
    "terminal.deleted",
    "terminal.silent",
    "terminal.recovered",
    "terminal.logs_missing",
    "terminal.logs_recovered",
    "terminal.clock_drift",
    "user.enrolled",
    "user.changed",
    "user.deleted",
    "command.finished",
    "person.synced",
    "person.sync_failed",
    "access.granted",
    "access.denied",
)

#: Delivery stream states.
STREAM_ACTIVE = "active"
STREAM_FAILING = "failing"
STREAM_DISABLED = "disabled"
STREAM_STATES = (STREAM_ACTIVE, STREAM_FAILING, STREAM_DISABLED)


def expandTypes(patterns: Iterable[str]) -> tuple[str, ...]:
    """
    The event types matched by C{patterns} (exact names or shell-style wildcards: C{log.*},
    C{*}), in L{EVENT_TYPES} order.

    @raise ValueError: a pattern matches no event type (naming it).
    """
    matched: set[str] = set()
    for pattern in patterns:
        found = [t for t in EVENT_TYPES if fnmatch.fnmatchcase(t, pattern)]
        if not found:
            raise ValueError(f"{pattern!r} matches no event type")
        matched.update(found)
    return tuple(t for t in EVENT_TYPES if t in matched)


@attrs.frozen
class Event:
    """One fact, as written in the event log."""

    id: int
    type: str
    sn: str | None
    payload: Mapping[str, Any]
    createdAt: datetime

    def asJSON(self) -> dict[str, Any]:
        """The event as the API, the SSE feed and the webhooks show it."""
        return {
            "id": self.id,
            "type": self.type,
            "sn": self.sn,
            "at": self.createdAt.isoformat(timespec="microseconds"),
            "data": dict(self.payload),
        }


@attrs.frozen
class NewEvent:
    """An event to append: its id and time are given by the store."""

    type: str
    sn: str | None
    payload: Mapping[str, Any]


@attrs.frozen
class EventQuery:
    """
    A page of events in id order: those with C{id > after}, of the given C{types} (C{None}: all;
    concrete names, see L{expandTypes}), of terminal C{sn} (C{None}: all).
    """

    after: int = 0
    types: tuple[str, ...] | None = None
    sn: str | None = None
    limit: int = 100


@attrs.frozen
class SinkStream:
    """
    Where one delivery stream (a webhook subscription, a sink plugin) stands.

    @ivar cursor: the id of the last event delivered (acknowledged); the next batch starts after.
    @ivar failures: failed attempts of the batch after C{cursor} (0 when the last one worked).
    @ivar retryAt: when the next attempt is due (C{None}: now).
    @ivar failingSince: the first failed attempt of the current run of failures.
    """

    key: str
    cursor: int = 0
    state: str = STREAM_ACTIVE
    failures: int = 0
    retryAt: datetime | None = None
    failingSince: datetime | None = None
    lastError: str | None = None
    updatedAt: datetime | None = None


@attrs.frozen
class SinkAttempt:
    """One delivery attempt of events C{firstEvent}..C{lastEvent} (C{events} of them)."""

    stream: str
    at: datetime
    firstEvent: int
    lastEvent: int
    events: int
    ok: bool
    latencyMs: float
    status: int | None = None
    error: str | None = None
    response: str | None = None
    id: int = 0


@attrs.frozen
class Webhook:
    """A webhook subscription (its delivery state is the stream L{Webhook.streamKey})."""

    id: int
    url: str
    types: tuple[str, ...]
    sn: str | None
    secret: str
    description: str | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None

    @property
    def streamKey(self) -> str:
        return webhookStreamKey(self.id)


def webhookStreamKey(webhookId: int) -> str:
    """The L{SinkStream} key of webhook C{webhookId}."""
    return f"webhook:{webhookId}"


#: Fields of a webhook an operator may change.
WEBHOOK_EDITABLE_FIELDS = frozenset({"url", "types", "sn", "description"})


__all__ = [
    "EVENT_TYPES",
    "STREAM_ACTIVE",
    "STREAM_DISABLED",
    "STREAM_FAILING",
    "STREAM_STATES",
    "WEBHOOK_EDITABLE_FIELDS",
    "Event",
    "EventQuery",
    "NewEvent",
    "SinkAttempt",
    "SinkStream",
    "Webhook",
    "expandTypes",
    "webhookStreamKey",
]
