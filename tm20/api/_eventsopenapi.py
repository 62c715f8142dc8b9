"""
The routes and schemas of events and webhooks, joined to L{tm20.api._openapi.OPERATIONS} and
L{tm20.api._openapi.SCHEMAS}: the event types and their payloads are documented here too
(C{EventPayloads}).
"""

from __future__ import annotations

from typing import Any

from tm20.api._accessopenapi import ACCESS_EVENT_SCHEMA
from tm20.events.model import EVENT_TYPES, STREAM_STATES

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_TIMESTAMP = {"type": "string", "nullable": True, "description": "ISO 8601, UTC."}
_INT64 = 2**63 - 1


def _object(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties}


_TERMINAL_DATA = {
    "sn": _STRING,
    "name": _NULLABLE_STRING,
    "approved": {"type": "boolean"},
    "active": {"type": "boolean"},
    "timezone": _NULLABLE_STRING,
    "cpusn": _NULLABLE_STRING,
    "mac": _NULLABLE_STRING,
    "modelname": _NULLABLE_STRING,
    "firmware": _NULLABLE_STRING,
    "firstSeen": _TIMESTAMP,
    "lastSeen": _TIMESTAMP,
}

#: The payload (C{data}) schema of each event type.
_PAYLOAD_SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "log.created": (
        "LogEventData",
        _object(
            "log.created (a punch) and door.event (enrollid 0): a log row just stored. key is"
            " the dedup key: a terminal resending the record creates no second event.",
            {
                "sn": _STRING,
                "logId": {"type": "integer", "description": "The row's id in the logs API."},
                "enrollid": {"type": "integer"},
                "time": {"type": "string", "description": "Terminal-local YYYY-MM-DD HH:MM:SS."},
                "timeUTC": {
                    "type": "string",
                    "nullable": True,
                    "description": "time in UTC (the terminal's time zone, else the server's).",
                },
                "mode": {"type": "integer"},
                "inout": {"type": "integer"},
                "event": {"type": "integer"},
                "temp": {"type": "number", "nullable": True},
                "verifymode": _NULLABLE_INT,
                "hasImage": {"type": "boolean", "description": "A photo is stored (not sent)."},
                "extra": {"type": "object"},
                "key": {"type": "array", "description": "[sn, enrollid, time, mode, inout, event]"},
                "receivedAt": _TIMESTAMP,
            },
        ),
    ),
    "log.quarantined": (
        "QuarantineEventData",
        _object(
            "log.quarantined: a record a terminal sent that can never be stored was held in the"
            " quarantine (source: sendlog or senduser). Not the record itself.",
            {
                "sn": _STRING,
                "quarantineId": {"type": "integer"},
                "source": _STRING,
                "problem": _STRING,
                "field": _NULLABLE_STRING,
                "receivedAt": _TIMESTAMP,
            },
        ),
    ),
    "terminal.registered": (
        "TerminalEventData",
        _object(
            "terminal.registered (first registration, approved), terminal.pending (first,"
            " awaiting approval), terminal.updated (changed: the fields an operator changed,"
            " or secret / identity), terminal.flagged (mismatch: the refused claim),"
            " terminal.deleted. Never the secret.",
            {
                **_TERMINAL_DATA,
                "changed": {"type": "array", "items": _STRING},
                "mismatch": {"type": "object"},
            },
        ),
    ),
    "terminal.connected": (
        "ConnectionEventData",
        _object(
            "terminal.connected (its registration was accepted on a new connection) and"
            " terminal.disconnected (that connection closed: the WebSocket close code and"
            " reason, null when it was just lost).",
            {
                "sn": _STRING,
                "peer": _NULLABLE_STRING,
                "code": _NULLABLE_INT,
                "reason": _NULLABLE_STRING,
            },
        ),
    ),
    "user.enrolled": (
        "UserEventData",
        _object(
            "user.enrolled (a terminal sent senduser: backupnum is the slot, never the record),"
            " user.changed (through the API: name, admin, enabled, or removedBackupnum),"
            " user.deleted.",
            {
                "sn": _STRING,
                "enrollid": {"type": "integer"},
                "name": _NULLABLE_STRING,
                "backupnum": _NULLABLE_INT,
                "admin": _NULLABLE_INT,
                "enabled": {"type": "boolean"},
                "removedBackupnum": {"type": "integer"},
            },
        ),
    ),
    "terminal.silent": (
        "WatchEventData",
        _object(
            "What the server watches on a terminal by itself (README, Terminals that watch"
            " themselves): terminal.silent (lastHeard, silentAfter, since), terminal.recovered,"
            " terminal.logs_missing (missing, source: usedlog, usednewlog or logindex, from"
            " and to: the days of the window, null for the whole log memory; fetching),"
            " terminal.logs_recovered (received, recovered: newly stored, remaining),"
            " terminal.clock_drift (drift: terminal minus server, seconds; source: reg or"
            " gettime; threshold; correcting: a settime is queued).",
            {
                "sn": _STRING,
                "lastHeard": _TIMESTAMP,
                "silentAfter": {"type": "number"},
                "since": _TIMESTAMP,
                "missing": {"type": "integer"},
                "source": _STRING,
                "from": _NULLABLE_STRING,
                "to": _NULLABLE_STRING,
                "fetching": {"type": "boolean"},
                "received": {"type": "integer"},
                "recovered": {"type": "integer"},
                "remaining": {"type": "integer"},
                "drift": {"type": "number"},
                "threshold": {"type": "number"},
                "correcting": {"type": "boolean"},
            },
        ),
    ),
    "command.finished": (
        "CommandEventData",
        _object(
            "command.finished: a command reached its final status (reply: result and reason only).",
            {
                "sn": _STRING,
                "commandId": {"type": "integer"},
                "command": _STRING,
                "status": _STRING,
                "attempts": {"type": "integer"},
                "actor": _NULLABLE_STRING,
                "reply": {"type": "object", "nullable": True},
                "createdAt": _TIMESTAMP,
                "finishedAt": _TIMESTAMP,
            },
        ),
    ),
}

_PAYLOAD_SCHEMAS["person.synced"] = (
    "PersonSyncEventData",
    _object(
        "person.synced (the person is on the terminal as desired) and person.sync_failed (a"
        " command failed: detail.command, detail.reply with result and reason; or detail.reason"
        " capacity / not converging).",
        {
            "sn": _STRING,
            "enrollid": {"type": "integer"},
            "state": _STRING,
            "previous": _NULLABLE_STRING,
            "detail": {"type": "object"},
        },
    ),
)

_PAYLOAD_SCHEMAS["access.granted"] = ("AccessEventData", ACCESS_EVENT_SCHEMA)

_PAYLOAD_OF_TYPE = {
    "log.created": "LogEventData",
    "door.event": "LogEventData",
    "log.quarantined": "QuarantineEventData",
    "terminal.registered": "TerminalEventData",
    "terminal.pending": "TerminalEventData",
    "terminal.updated": "TerminalEventData",
    "terminal.flagged": "TerminalEventData",
    "terminal.deleted": "TerminalEventData",
    "terminal.connected": "ConnectionEventData",
    "terminal.disconnected": "ConnectionEventData",
    "terminal.silent": "WatchEventData",
    "terminal.recovered": "WatchEventData",
    "terminal.logs_missing": "WatchEventData",
    "terminal.logs_recovered": "WatchEventData",
    "terminal.clock_drift": "WatchEventData",
    "user.enrolled": "UserEventData",
    "user.changed": "UserEventData",
    "user.deleted": "UserEventData",
    "command.finished": "CommandEventData",
    "person.synced": "PersonSyncEventData",
    "person.sync_failed": "PersonSyncEventData",
    "access.granted": "AccessEventData",
    "access.denied": "AccessEventData",
}
assert set(_PAYLOAD_OF_TYPE) == set(EVENT_TYPES)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


EVENT_SCHEMAS: dict[str, dict[str, Any]] = {
    **{name: schema for name, schema in _PAYLOAD_SCHEMAS.values()},
    "EventPayloads": {
        "type": "object",
        "description": "Documentation only: the data of each event type, by type.",
        "properties": {t: _ref(_PAYLOAD_OF_TYPE[t]) for t in EVENT_TYPES},
    },
    "Event": {
        "type": "object",
        "required": ["id", "type", "sn", "at", "data"],
        "properties": {
            "id": {"type": "integer", "description": "Store-wide, strictly increasing."},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "sn": _NULLABLE_STRING,
            "at": {"type": "string", "description": "When it was written (ISO 8601, UTC)."},
            "data": {"type": "object", "description": "The payload: see EventPayloads."},
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["items", "next", "more"],
        "properties": {
            "items": {"type": "array", "items": _ref("Event")},
            "next": {
                "type": "integer",
                "description": "Pass as after= to read on (the last id seen; kept if none).",
            },
            "more": {"type": "boolean", "description": "The page was full: read on at once."},
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["id", "url", "types", "state", "cursor"],
        "properties": {
            "id": {"type": "integer"},
            "url": _STRING,
            "types": {"type": "array", "items": _STRING},
            "sn": _NULLABLE_STRING,
            "description": _NULLABLE_STRING,
            "secret": {
                "type": "string",
                "description": "The signing secret (whsec_...): only in the answer to POST.",
            },
            "state": {"type": "string", "enum": list(STREAM_STATES)},
            "cursor": {"type": "integer", "description": "The last event id delivered."},
            "failures": {"type": "integer", "description": "Failed attempts of the next batch."},
            "retryAt": _TIMESTAMP,
            "failingSince": _TIMESTAMP,
            "lastError": _NULLABLE_STRING,
            "createdAt": _TIMESTAMP,
            "updatedAt": _TIMESTAMP,
        },
    },
    "WebhookList": {
        "type": "object",
        "required": ["items", "count"],
        "properties": {
            "items": {"type": "array", "items": _ref("Webhook")},
            "count": {"type": "integer"},
        },
    },
    "WebhookCreate": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "minLength": 1, "maxLength": 2000},
            "types": {
                "type": "array",
                "maxItems": 50,
                "items": {"type": "string", "minLength": 1, "maxLength": 64},
                "description": "Event types or wildcards (log.*, *); all by default.",
            },
            "sn": {"type": "string", "minLength": 1, "maxLength": 64, "nullable": True},
            "secret": {
                "type": "string",
                "maxLength": 200,
                "description": "whsec_ + Base64 of 24-64 bytes; generated when absent.",
            },
            "description": {"type": "string", "maxLength": 200, "nullable": True},
        },
    },
    "WebhookPatch": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "minLength": 1, "maxLength": 2000},
            "types": {
                "type": "array",
                "maxItems": 50,
                "items": {"type": "string", "minLength": 1, "maxLength": 64},
            },
            "sn": {"type": "string", "minLength": 1, "maxLength": 64, "nullable": True},
            "description": {"type": "string", "maxLength": 200, "nullable": True},
            "enabled": {
                "type": "boolean",
                "description": "true: active again (failing or disabled), from its cursor;"
                " false: disabled.",
            },
        },
    },
    "WebhookReplay": {
        "type": "object",
        "required": ["from"],
        "additionalProperties": False,
        "properties": {
            "from": {
                "type": "integer",
                "minimum": 1,
                "maximum": _INT64,
                "description": "The first event id to deliver again.",
            }
        },
    },
    "DeliveryAttempt": {
        "type": "object",
        "required": ["id", "at", "firstEvent", "lastEvent", "events", "ok", "latencyMs"],
        "properties": {
            "id": {"type": "integer"},
            "at": _STRING,
            "firstEvent": {"type": "integer"},
            "lastEvent": {"type": "integer"},
            "events": {"type": "integer"},
            "ok": {"type": "boolean"},
            "status": {"type": "integer", "nullable": True, "description": "HTTP status."},
            "latencyMs": {"type": "number"},
            "error": _NULLABLE_STRING,
            "response": {
                "type": "string",
                "nullable": True,
                "description": "The first 512 bytes of the answer.",
            },
        },
    },
    "DeliveryAttemptPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("DeliveryAttempt")},
            "next": {"type": "string", "nullable": True},
        },
    },
}


def eventQueryParameters(query: Any, sn: Any) -> tuple[dict[str, Any], ...]:
    """C{after}, C{type}, C{sn} (built with L{tm20.api._openapi}'s helpers)."""
    return (
        query(
            "after",
            {"type": "integer", "minimum": 0, "maximum": _INT64},
            "Events with a greater id (the next of the previous page; 0 by default).",
        ),
        query(
            "type",
            {"type": "string", "maxLength": 500},
            "Comma-separated event types or wildcards (log.*,terminal.connected).",
        ),
        query("sn", sn, "Only this terminal's events."),
    )


__all__ = ["EVENT_SCHEMAS", "eventQueryParameters"]
