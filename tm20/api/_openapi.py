"""
The API's routes and their OpenAPI 3 description, in one table.

L{OPERATIONS} lists every route (method, path, scope, parameters, body, responses); the Klein app
(L{tm20.api._app}) registers exactly these, and L{buildDocument} turns the same table into
C{/api/openapi.json}, so the document cannot drift from the routes.  Request bodies are checked
against the same schemas by L{validate}.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tm20.access.model import REASONS
from tm20.api._accessopenapi import ACCESS_SCHEMAS
from tm20.api._eventsopenapi import EVENT_SCHEMAS, eventQueryParameters
from tm20.model import COMMAND_STATUSES
from tm20.protocol.commands import COMMANDS, MAX_ENROLLID
from tm20.protocol.serial import MAX_SN_LENGTH
from tm20.services.expiry import MAX_EXPIRY
from tm20.views.model import TERMINAL_STATES

__all__ = [
    "OPERATIONS",
    "SCHEMAS",
    "Operation",
    "buildDocument",
    "kleinPath",
    "validate",
]

_NULLABLE_STRING = {"type": "string", "nullable": True}
_TIMESTAMP = {"type": "string", "nullable": True, "description": "ISO 8601, UTC."}
_INT64 = 2**63 - 1


def _paramsDescription() -> str:
    """The C{params} of a command request, with the aliases and unsent parameters of each."""
    aliases = [
        f"{spec.name}: {alias} = {name}"
        for spec in COMMANDS.values()
        for alias, name in spec.aliases.items()
    ]
    ignored = [f"{spec.name}: {name}" for spec in COMMANDS.values() for name in spec.ignored]
    return (
        "The command's parameters (protocol section 6).  Other names accepted (such as the"
        f" original README's door): {'; '.join(aliases)}.  Accepted, validated, but not sent because the"
        f" firmware cannot honour them (the command's warnings say so): {'; '.join(ignored)}."
    )


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "A short code, e.g. not_found."},
            "detail": {"type": "string"},
            "field": {"type": "string", "description": "The offending field (400)."},
            "commandId": {"type": "integer"},
            "command": {"$ref": "#/components/schemas/Command"},
            "line": {"type": "integer", "description": "The CSV line of the first problem."},
            "errors": {
                "type": "array",
                "description": "Every problem of a CSV import.",
                "items": {
                    "type": "object",
                    "required": ["line", "field", "detail"],
                    "properties": {
                        "line": {"type": "integer"},
                        "field": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
            },
        },
    },
    "Terminal": {
        "type": "object",
        "required": ["sn", "status", "approved", "active", "connected", "devinfo"],
        "properties": {
            "sn": {"type": "string"},
            "name": _NULLABLE_STRING,
            "status": {"type": "string", "enum": ["approved", "pending"]},
            "approved": {"type": "boolean"},
            "active": {"type": "boolean"},
            "timezone": _NULLABLE_STRING,
            "connected": {"type": "boolean"},
            "node": {
                "type": ["string", "null"],
                "description": "The node (server process) holding its connection now; null when"
                " it is not connected (see README, Scaling out).",
            },
            "cpusn": _NULLABLE_STRING,
            "mac": _NULLABLE_STRING,
            "modelname": _NULLABLE_STRING,
            "firmware": _NULLABLE_STRING,
            "devinfo": {"type": "object", "description": "Every devinfo field of the last reg."},
            "firstSeen": _TIMESTAMP,
            "lastSeen": _TIMESTAMP,
            "boundCpusn": {
                "type": "string",
                "nullable": True,
                "description": "The cpusn the sn is bound to (first accepted registration).",
            },
            "boundMac": {
                "type": "string",
                "nullable": True,
                "description": "The mac it is bound to (firmwares that send no cpusn).",
            },
            "boundAt": _TIMESTAMP,
            "flagged": {
                "type": "boolean",
                "description": "A connection claiming this sn was refused for its identity.",
            },
            "identityMismatch": {"$ref": "#/components/schemas/IdentityMismatch"},
            "hasSecret": {
                "type": "boolean",
                "description": "Connections must dial /t/<secret> (the secret is never shown).",
            },
            "states": {
                "type": "array",
                "items": {"type": "string", "enum": list(TERMINAL_STATES)},
                "description": "Every state the terminal is in now (see README, REST API).",
            },
            "watch": {"$ref": "#/components/schemas/TerminalWatch"},
        },
    },
    "TerminalWatch": {
        "type": "object",
        "description": "What the server watches on the terminal by itself.",
        "properties": {
            "silent": {"type": "boolean"},
            "silentSince": _TIMESTAMP,
            "silentAfter": {
                "type": "number",
                "description": "The threshold in force, seconds (0: not watched).",
            },
            "silentAfterOverride": {
                "type": "number",
                "nullable": True,
                "description": "The terminal's own threshold; null: --silent-after.",
            },
            "lastHeard": _TIMESTAMP,
            "logGap": {
                "type": "object",
                "properties": {
                    "missing": {
                        "type": "integer",
                        "description": "Logs known missing from the server, not recovered.",
                    },
                    "source": {
                        "type": "string",
                        "nullable": True,
                        "enum": ["usedlog", "usednewlog", "logindex", None],
                    },
                    "since": _TIMESTAMP,
                    "from": {**_NULLABLE_STRING, "description": "First day of the window."},
                    "to": {**_NULLABLE_STRING, "description": "Last day of the window."},
                    "fetching": {"type": "boolean"},
                    "recovered": {
                        "type": "integer",
                        "description": "Logs the server fetched by itself (running total).",
                    },
                    "lastRecoveryAt": _TIMESTAMP,
                },
            },
            "clock": {
                "type": "object",
                "properties": {
                    "drift": {
                        "type": "number",
                        "nullable": True,
                        "description": "Terminal clock minus server clock, seconds.",
                    },
                    "flagged": {"type": "boolean"},
                    "checkedAt": _TIMESTAMP,
                    "correctedAt": _TIMESTAMP,
                },
            },
        },
    },
    "IdentityMismatch": {
        "type": "object",
        "nullable": True,
        "description": "The latest refused claim on this sn; null when none.",
        "properties": {
            "problem": {
                "type": "string",
                "enum": [
                    "cpusn differs",
                    "cpusn missing",
                    "mac differs",
                    "mac missing",
                    "secret missing",
                    "secret wrong",
                ],
            },
            "claimedCpusn": _NULLABLE_STRING,
            "claimedMac": _NULLABLE_STRING,
            "peer": {"type": "string", "description": "Where the claim came from."},
            "secretGiven": {"type": "boolean"},
            "at": _TIMESTAMP,
        },
    },
    "TerminalList": {
        "type": "object",
        "required": ["items", "count"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Terminal"}},
            "count": {"type": "integer"},
        },
    },
    "TerminalCreate": {
        "type": "object",
        "required": ["sn"],
        "additionalProperties": False,
        "properties": {
            "sn": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_SN_LENGTH,
                "pattern": r"^\S+$",
                "description": "Visible characters only (no spaces, control or invisible"
                " characters), not . or ..; the rule of a terminal's reg.",
            },
            "name": {"type": "string", "maxLength": 200, "nullable": True},
            "approved": {"type": "boolean"},
            "active": {"type": "boolean"},
            "timezone": {"type": "string", "maxLength": 64, "nullable": True},
        },
    },
    "TerminalPatch": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 200, "nullable": True},
            "approved": {"type": "boolean"},
            "whitelisted": {"type": "boolean", "description": "Same as approved."},
            "is_whitelisted": {
                "type": "boolean",
                "description": "Same as approved (the original README's name).",
            },
            "active": {"type": "boolean"},
            "is_active": {
                "type": "boolean",
                "description": "Same as active (the original README's name).",
            },
            "timezone": {
                "type": "string",
                "maxLength": 64,
                "nullable": True,
                "description": "IANA time zone, e.g. Europe/Paris; null for the server default.",
            },
            "silentAfter": {
                "type": "number",
                "minimum": 0,
                "maximum": 31_536_000,
                "nullable": True,
                "description": (
                    "Mark the terminal silent after this many seconds without a command from"
                    " it (0: never); null: the server's --silent-after."
                ),
            },
            "secret": {
                "type": "string",
                "minLength": 16,
                "maxLength": 128,
                "pattern": r"^[A-Za-z0-9._~-]+$",
                "nullable": True,
                "writeOnly": True,
                "description": (
                    "The terminal's path secret (it must then dial /t/<secret>): 16 to 128"
                    " letters, digits or - . _ ~; null removes it.  Only its sha256 is stored."
                ),
            },
        },
    },
    "CommandRequest": {
        "type": "object",
        "required": ["command"],
        "additionalProperties": False,
        "properties": {
            "command": {"type": "string", "enum": sorted(COMMANDS)},
            "params": {
                "type": "object",
                "description": _paramsDescription(),
            },
            "wait": {
                "type": "boolean",
                "description": "Wait for the terminal's reply (default true).",
            },
            "confirm": {
                "type": "boolean",
                "description": "Required (true) for destructive commands.",
            },
            "expiresIn": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_EXPIRY,
                "description": (
                    "Seconds the command stays deliverable; past it, it is never sent (status"
                    " expired).  Default by kind: 60 for opendoor, reboot, settime, gettime,"
                    " adduser, disabledevice, enabledevice; 3600 for the commands that erase"
                    " data; 604800 (7 days) for the others."
                ),
            },
        },
    },
    "Warning": {
        "type": "object",
        "required": ["field", "detail"],
        "properties": {
            "field": {"type": "string", "description": "The parameter, e.g. params.delay."},
            "detail": {"type": "string", "description": "Why it is not honoured."},
        },
    },
    "Command": {
        "type": "object",
        "required": ["id", "sn", "command", "payload", "status", "attempts", "maxAttempts"],
        "properties": {
            "id": {"type": "integer"},
            "sn": {"type": "string"},
            "command": {"type": "string"},
            "payload": {"type": "object"},
            "status": {
                "type": "string",
                "enum": list(COMMAND_STATUSES),
            },
            "reply": {
                "type": "object",
                "nullable": True,
                "description": (
                    "The terminal's reply.  For a paged command (getuserlist, getnewlog,"
                    " getalllog, getallusers): every record of every page in record, with"
                    " count, pages, stop (why the paging ended) and, for logs, stored."
                ),
            },
            "attempts": {"type": "integer"},
            "maxAttempts": {"type": "integer"},
            "actor": _NULLABLE_STRING,
            "createdAt": _TIMESTAMP,
            "sentAt": _TIMESTAMP,
            "finishedAt": _TIMESTAMP,
            "expiresAt": {
                "type": "string",
                "nullable": True,
                "description": "ISO 8601, UTC: it is never delivered after this.",
            },
            "warnings": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Warning"},
                "description": "Parameters accepted but not honoured by the firmware.",
            },
        },
    },
    "CommandList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Command"}},
        },
    },
    "Credential": {
        "type": "object",
        "required": ["backupnum"],
        "properties": {
            "backupnum": {"type": "integer"},
            "record": {
                "nullable": True,
                "oneOf": [{"type": "string"}, {"type": "integer"}],
                "description": "Only in a user's detail.",
            },
            "updatedAt": _TIMESTAMP,
        },
    },
    "User": {
        "type": "object",
        "required": ["sn", "enrollid", "admin", "enabled", "credentials"],
        "properties": {
            "sn": {"type": "string"},
            "enrollid": {"type": "integer"},
            "name": _NULLABLE_STRING,
            "admin": {"type": "integer"},
            "enabled": {"type": "boolean"},
            "credentials": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Credential"},
            },
            "updatedAt": _TIMESTAMP,
        },
    },
    "UserPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/User"}},
            "next": {"type": "string", "nullable": True, "description": "Cursor of the next page."},
        },
    },
    "CredentialInput": {
        "type": "object",
        "required": ["backupnum", "record"],
        "additionalProperties": False,
        "properties": {
            "backupnum": {"type": "integer", "minimum": 0, "maximum": 50},
            "record": {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]},
        },
    },
    "UserCreate": {
        "type": "object",
        "required": ["enrollid"],
        "additionalProperties": False,
        "properties": {
            "enrollid": {"type": "integer", "minimum": 1, "maximum": MAX_ENROLLID},
            "name": {"type": "string", "maxLength": 100},
            "admin": {"type": "integer", "minimum": 0, "maximum": 2},
            "enabled": {"type": "boolean"},
            "credentials": {
                "type": "array",
                "maxItems": 30,
                "items": {"$ref": "#/components/schemas/CredentialInput"},
            },
        },
    },
    "UserPatch": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 100},
            "admin": {"type": "integer", "minimum": 0, "maximum": 2},
            "enabled": {"type": "boolean"},
            "credentials": {
                "type": "array",
                "maxItems": 30,
                "items": {"$ref": "#/components/schemas/CredentialInput"},
            },
        },
    },
    "UserChange": {
        "type": "object",
        "required": ["user", "commands"],
        "properties": {
            "user": {"$ref": "#/components/schemas/User"},
            "commands": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Command"},
                "description": "The commands queued to apply the change on the terminal.",
            },
        },
    },
    "UserDeleted": {
        "type": "object",
        "required": ["deleted", "commands"],
        "properties": {
            "deleted": {"type": "integer", "description": "Credential slots (or users) deleted."},
            "commands": {"type": "array", "items": {"$ref": "#/components/schemas/Command"}},
        },
    },
    "UserPullResult": {
        "type": "object",
        "required": ["listed", "stored", "missing", "users"],
        "properties": {
            "listed": {"type": "integer"},
            "stored": {"type": "integer"},
            "missing": {"type": "integer"},
            "users": {"type": "integer"},
        },
    },
    "LogPullRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "source": {
                "type": "string",
                "enum": ["new", "all"],
                "description": "new: getnewlog (default); all: getalllog.",
            },
            "from": {"type": "string", "description": "YYYY-MM-DD (source all)."},
            "to": {"type": "string", "description": "YYYY-MM-DD (source all)."},
        },
    },
    "LogPullResult": {
        "type": "object",
        "required": ["received", "inserted", "duplicates", "invalid"],
        "properties": {
            "received": {"type": "integer"},
            "inserted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "invalid": {"type": "integer"},
        },
    },
    "Log": {
        "type": "object",
        "required": ["id", "sn", "enrollid", "time", "mode", "inout", "event"],
        "properties": {
            "id": {"type": "integer"},
            "sn": {"type": "string"},
            "enrollid": {"type": "integer"},
            "time": {"type": "string", "description": "Terminal-local YYYY-MM-DD HH:MM:SS."},
            "mode": {"type": "integer"},
            "inout": {"type": "integer"},
            "event": {"type": "integer"},
            "temp": {"type": "number", "nullable": True},
            "verifymode": {"type": "integer", "nullable": True},
            "image": _NULLABLE_STRING,
            "extra": {"type": "object"},
            "receivedAt": _TIMESTAMP,
            "accessGranted": {
                "type": "boolean",
                "nullable": True,
                "description": "The access decision taken in real time; null: none was asked"
                " (a backlog batch, a pull, a door event): the server opened nothing.",
            },
            "accessReason": {"type": "string", "nullable": True, "enum": [*REASONS, None]},
        },
    },
    "LogPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Log"}},
            "next": {"type": "string", "nullable": True},
        },
    },
    "Connected": {
        "type": "object",
        "required": ["items", "count"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Terminal"}},
            "count": {"type": "integer"},
        },
    },
    "QuarantinedRecord": {
        "type": "object",
        "required": ["id", "sn", "source", "raw", "record", "problem", "field", "reason"],
        "properties": {
            "id": {"type": "integer"},
            "sn": {"type": "string"},
            "source": {
                "type": "string",
                "enum": ["sendlog", "senduser"],
                "description": "The terminal command that carried the record.",
            },
            "raw": {
                "type": "string",
                "description": "The record's JSON text exactly as the terminal sent it"
                " (for senduser, the whole frame).",
            },
            "record": {
                "nullable": True,
                "description": "raw parsed; null when it is not plain JSON.",
            },
            "problem": {"type": "string", "description": "Why it can never be stored."},
            "field": {
                "type": "string",
                "nullable": True,
                "description": "The offending field, e.g. record[3].time.",
            },
            "reason": {"type": "string", "description": "field: problem."},
            "receivedAt": _TIMESTAMP,
        },
    },
    "QuarantinePage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/QuarantinedRecord"},
            },
            "next": {"type": "string", "nullable": True},
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "actor", "action"],
        "properties": {
            "id": {"type": "integer"},
            "actor": {"type": "string"},
            "action": {"type": "string"},
            "target": _NULLABLE_STRING,
            "detail": {"type": "object"},
            "at": _TIMESTAMP,
        },
    },
    "AuditPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
            "next": {"type": "string", "nullable": True},
        },
    },
}

_WINDOW = {
    "type": "string",
    "nullable": True,
    "maxLength": 19,
    "description": "Terminal-local YYYY-MM-DD HH:MM:SS; null: open.",
}
_GROUP_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
}
_ASSIGNMENT = {
    "groups": {
        "type": "array",
        "maxItems": 100,
        "items": _GROUP_NAME,
        "description": "Groups whose terminals the person is on.",
    },
    "terminals": {
        "type": "array",
        "maxItems": 1000,
        "items": {"type": "string", "minLength": 1, "maxLength": 64},
        "description": "Single terminals the person is on (besides its groups').",
    },
}
_PERSON_FIELDS = {
    "name": {"type": "string", "maxLength": 100, "nullable": True},
    "admin": {"type": "integer", "minimum": 0, "maximum": 2},
    "enabled": {"type": "boolean"},
    "validFrom": _WINDOW,
    "validUntil": _WINDOW,
    "credentials": {
        "type": "array",
        "maxItems": 30,
        "items": {"$ref": "#/components/schemas/CredentialInput"},
        "description": (
            "Slots 0-9 fingerprints, 10 password, 11 card, 20-27 faces, 50 photo; records are"
            " stored and pushed verbatim.  Given whole (replaces the person's credentials)."
        ),
    },
    **_ASSIGNMENT,
}

SCHEMAS.update(
    {
        "Person": {
            "type": "object",
            "required": ["enrollid", "admin", "enabled", "credentials", "groups", "terminals"],
            "properties": {
                "enrollid": {"type": "integer"},
                "name": _NULLABLE_STRING,
                "admin": {"type": "integer"},
                "enabled": {"type": "boolean"},
                "validFrom": _NULLABLE_STRING,
                "validUntil": _NULLABLE_STRING,
                "credentials": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Credential"},
                },
                "groups": {"type": "array", "items": {"type": "string"}},
                "terminals": {"type": "array", "items": {"type": "string"}},
                "createdAt": _TIMESTAMP,
                "updatedAt": _TIMESTAMP,
            },
        },
        "PersonPage": {
            "type": "object",
            "required": ["items", "next"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Person"}},
                "next": {"type": "string", "nullable": True},
            },
        },
        "PersonCreate": {
            "type": "object",
            "required": ["enrollid"],
            "additionalProperties": False,
            "properties": {
                "enrollid": {"type": "integer", "minimum": 1, "maximum": MAX_ENROLLID},
                **_PERSON_FIELDS,
            },
        },
        "PersonPatch": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": dict(_PERSON_FIELDS),
        },
        "PersonImport": {
            "type": "string",
            "description": (
                "CSV, header line first: enrollid (required), name, admin, enabled, validFrom,"
                " validUntil, groups and terminals (separated by ;), card, password."
            ),
        },
        "PersonImportResult": {
            "type": "object",
            "required": ["created", "updated"],
            "properties": {"created": {"type": "integer"}, "updated": {"type": "integer"}},
        },
        "PersonSyncEntry": {
            "type": "object",
            "required": ["sn", "state", "assigned", "owned", "detail", "commands"],
            "properties": {
                "sn": {"type": "string"},
                "state": {
                    "type": "string",
                    "enum": ["synced", "pending", "failed", "conflict", "not_assigned"],
                },
                "assigned": {"type": "boolean"},
                "owned": {
                    "type": "boolean",
                    "description": "The terminal's user with this enrollid is the fleet's.",
                },
                "detail": {
                    "type": "object",
                    "description": "Why: the failed command and the terminal's reply, the"
                    " conflicting user, a capacity limit, or that the terminal is offline.",
                },
                "commands": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Command"},
                    "description": "The queued commands, while pending.",
                },
                "updatedAt": _TIMESTAMP,
            },
        },
        "PersonSync": {
            "type": "object",
            "required": ["enrollid", "terminals"],
            "properties": {
                "enrollid": {"type": "integer"},
                "terminals": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/PersonSyncEntry"},
                },
            },
        },
        "TerminalPersonCounts": {
            "type": "object",
            "required": ["sn", "synced", "pending", "failed", "conflict"],
            "properties": {
                "sn": {"type": "string"},
                "synced": {"type": "integer"},
                "pending": {"type": "integer"},
                "failed": {"type": "integer"},
                "conflict": {"type": "integer"},
            },
        },
        "Group": {
            "type": "object",
            "required": ["name", "adoptKeypad", "terminals"],
            "properties": {
                "name": {"type": "string"},
                "description": _NULLABLE_STRING,
                "adoptKeypad": {"type": "boolean"},
                "terminals": {"type": "array", "items": {"type": "string"}},
                "createdAt": _TIMESTAMP,
                "updatedAt": _TIMESTAMP,
            },
        },
        "GroupList": {
            "type": "object",
            "required": ["items", "count"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Group"}},
                "count": {"type": "integer"},
            },
        },
        "GroupCreate": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": _GROUP_NAME,
                "description": {"type": "string", "maxLength": 200, "nullable": True},
                "adoptKeypad": {
                    "type": "boolean",
                    "description": "Users enrolled at its terminals' keypads become fleet"
                    " persons of this group (default false).",
                },
                "terminals": _ASSIGNMENT["terminals"],
            },
        },
        "GroupPatch": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "description": {"type": "string", "maxLength": 200, "nullable": True},
                "adoptKeypad": {"type": "boolean"},
                "terminals": _ASSIGNMENT["terminals"],
            },
        },
    }
)

# -- parameters ---------------------------------------------------------------------------------

_SN_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_SN_LENGTH}


def _path(name: str, schema: Mapping[str, Any], description: str, example: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": dict(schema),
        "description": description,
        "example": example,
    }


def _query(name: str, schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": dict(schema),
        "description": description,
    }


SN = _path(
    "sn",
    _SN_SCHEMA,
    "The terminal's serial number, percent-encoded (/ as %2F, % as %25).",
    "ZX0006827500",
)
ENROLLID = _path(
    "enrollid", {"type": "integer", "minimum": 1, "maximum": MAX_ENROLLID}, "The user's id.", 1
)
COMMAND_ID = _path("id", {"type": "integer", "minimum": 1, "maximum": _INT64}, "A command id.", 1)
LIMIT = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 1000},
    "Page size (50 by default; for a CSV export, the most rows, all by default).",
)
CURSOR = _query(
    "cursor", {"type": "string", "maxLength": 200}, "The next cursor of the previous page."
)
_TIME_PATTERN = r"^\d{4}-\d{1,2}-\d{1,2}( \d{1,2}:\d{1,2}(:\d{1,2})?)?$"
SINCE = _query(
    "since",
    {"type": "string", "pattern": _TIME_PATTERN},
    "Terminal-local time (YYYY-MM-DD[ HH:MM:SS]), inclusive.",
)
UNTIL = _query(
    "until",
    {"type": "string", "pattern": _TIME_PATTERN},
    "Terminal-local time, inclusive (a date alone means its end).",
)
ENROLLID_FILTER = _query(
    "enrollid", {"type": "integer", "minimum": 0, "maximum": MAX_ENROLLID}, "Only this user."
)
TERMINAL_FILTER = _query("terminal", _SN_SCHEMA, "Only this terminal's logs.")
FORMAT = _query(
    "format",
    {"type": "string", "enum": ["json", "csv"]},
    "csv streams a CSV export (as does Accept: text/csv).",
)
CONNECTED = _query("connected", {"type": "boolean"}, "Only (dis)connected terminals.")
STATUS = _query(
    "status", {"type": "string", "enum": ["approved", "pending"]}, "Only approved or pending ones."
)
ACTIVE = _query("active", {"type": "boolean"}, "Only (in)active terminals.")
STATE = _query(
    "state",
    {"type": "string", "enum": list(TERMINAL_STATES)},
    "Only terminals in this state (silent, log_gap, clock_drift, ...).",
)
PERSON_ID = _path(
    "enrollid",
    {"type": "integer", "minimum": 1, "maximum": MAX_ENROLLID},
    "The person's enrollid (the same on every terminal).",
    1,
)
GROUP_NAME = _path("name", _GROUP_NAME, "The group's name.", "hq")
BACKUPNUM = _query(
    "backupnum",
    {"type": "integer", "minimum": 0, "maximum": 50},
    "Delete only this credential slot (12: every fingerprint, 13: everything).",
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


@attrs.frozen
class Operation:
    """
    One route of the API.

    @ivar method: C{GET}, C{POST}, C{PATCH} or C{DELETE}.
    @ivar path: relative to C{/api}, OpenAPI style (C{/terminals/{sn}/}).
    @ivar operationId: also the name of the handler method of the app.
    @ivar scope: C{read} or C{write}.
    @ivar responses: status -> (description, schema name or C{None}).
    @ivar csv: the 200 answer may also be C{text/csv}.
    @ivar bodyMediaType: the request body's media type (C{text/csv} for an import).
    """

    method: str
    path: str
    operationId: str
    summary: str
    scope: str
    parameters: tuple[dict[str, Any], ...] = ()
    body: str | None = None
    bodyRequired: bool = True
    responses: Mapping[int, tuple[str, str | None]] = attrs.field(factory=dict)
    csv: bool = False
    bodyMediaType: str = "application/json"


_LOG_QUERY = (LIMIT, CURSOR, SINCE, UNTIL, ENROLLID_FILTER, FORMAT)
ACCESS_FILTER = _query(
    "access",
    {"type": "string", "enum": ["granted", "denied", "none"]},
    "Only punches whose door was opened (granted), kept shut (denied), or that asked no"
    " decision (none: backlog batches, pulls).",
)
ACCESS_REASON_FILTER = _query(
    "accessReason",
    {"type": "string", "enum": list(REASONS)},
    "Only punches decided for this reason.",
)
_PUNCH_QUERY = (*_LOG_QUERY, ACCESS_FILTER, ACCESS_REASON_FILTER)

SCHEMAS.update(ACCESS_SCHEMAS)
RULE_ID = _path("id", {"type": "integer", "minimum": 1, "maximum": _INT64}, "A rule id.", 1)
HOLIDAY_ID = _path("id", {"type": "integer", "minimum": 1, "maximum": _INT64}, "A holiday id.", 1)
CODE_ID = _path("id", {"type": "integer", "minimum": 1, "maximum": _INT64}, "A code id.", 1)

#: The routes of access control (see L{tm20.api._accessopenapi}).
ACCESS_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/access/rules/",
        "listAccessRules",
        "Access rules, by id.",
        "read",
        responses={200: ("The rules.", "AccessRuleList")},
    ),
    Operation(
        "POST",
        "/access/rules/",
        "createAccessRule",
        "Create a rule: who may pass which doors, when; in force at once.",
        "write",
        body="AccessRuleWrite",
        responses={201: ("Created.", "AccessRule"), 400: ("Invalid: names the field.", "Error")},
    ),
    Operation(
        "GET",
        "/access/rules/{id}",
        "getAccessRule",
        "A rule.",
        "read",
        parameters=(RULE_ID,),
        responses={200: ("The rule.", "AccessRule"), 404: ("Unknown rule.", "Error")},
    ),
    Operation(
        "PUT",
        "/access/rules/{id}",
        "replaceAccessRule",
        "Replace a rule whole.",
        "write",
        parameters=(RULE_ID,),
        body="AccessRuleWrite",
        responses={200: ("Replaced.", "AccessRule"), 404: ("Unknown rule.", "Error")},
    ),
    Operation(
        "DELETE",
        "/access/rules/{id}",
        "deleteAccessRule",
        "Delete a rule.",
        "write",
        parameters=(RULE_ID,),
        responses={204: ("Deleted.", None), 404: ("Unknown rule.", "Error")},
    ),
    Operation(
        "GET",
        "/access/holidays/",
        "listHolidays",
        "Holidays: rules without holidays true grant nothing on them.",
        "read",
        responses={200: ("The holidays, by first day.", "HolidayList")},
    ),
    Operation(
        "POST",
        "/access/holidays/",
        "createHoliday",
        "Add a holiday (one day or a range) for every door or some groups.",
        "write",
        body="HolidayWrite",
        responses={201: ("Created.", "Holiday"), 400: ("Invalid: names the field.", "Error")},
    ),
    Operation(
        "DELETE",
        "/access/holidays/{id}",
        "deleteHoliday",
        "Delete a holiday.",
        "write",
        parameters=(HOLIDAY_ID,),
        responses={204: ("Deleted.", None), 404: ("Unknown holiday.", "Error")},
    ),
    Operation(
        "GET",
        "/access/qrcodes/",
        "listQrCodes",
        "Visitor and person codes (never their text), by id.",
        "read",
        parameters=(LIMIT, CURSOR),
        responses={200: ("A page of codes.", "QrCodePage")},
    ),
    Operation(
        "POST",
        "/access/qrcodes/",
        "createQrCode",
        "Issue a code (sendqrcode, or typed: sendpin) for a person or a visitor, valid between"
        " two times at some doors, optionally single-use. The answer shows its text once.",
        "write",
        body="QrCodeCreate",
        responses={
            201: ("Created, with its text.", "QrCode"),
            400: ("Invalid: names the field.", "Error"),
            409: ("This code exists already.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/access/qrcodes/{id}",
        "getQrCode",
        "A code (used, revoked?).",
        "read",
        parameters=(CODE_ID,),
        responses={200: ("The code.", "QrCode"), 404: ("Unknown code.", "Error")},
    ),
    Operation(
        "DELETE",
        "/access/qrcodes/{id}",
        "revokeQrCode",
        "Revoke a code: it opens nothing from now on (kept, with its decisions).",
        "write",
        parameters=(CODE_ID,),
        responses={200: ("Revoked.", "QrCode"), 404: ("Unknown code.", "Error")},
    ),
    Operation(
        "GET",
        "/access/groups/{name}",
        "getGroupAccess",
        "What a group's doors do with unknown enrollids and codes.",
        "read",
        parameters=(GROUP_NAME,),
        responses={200: ("The settings.", "GroupAccess"), 404: ("Unknown group.", "Error")},
    ),
    Operation(
        "PATCH",
        "/access/groups/{name}",
        "updateGroupAccess",
        "Let a group's doors allow (or deny: the default) unknown enrollids or codes.",
        "write",
        parameters=(GROUP_NAME,),
        body="GroupAccessWrite",
        responses={200: ("The settings.", "GroupAccess"), 404: ("Unknown group.", "Error")},
    ),
    Operation(
        "GET",
        "/access/terminals/{sn}/device",
        "getDevicePlan",
        "What the terminal can enforce by itself (offline): the rules at it compiled to its"
        " lock settings (setdevlock day and week zones, setuserlock per person).",
        "read",
        parameters=(SN,),
        responses={
            200: ("The plan.", "DevicePlan"),
            404: ("Unknown terminal.", "Error"),
            409: ("The rules need more zones than the terminal holds.", "Error"),
        },
    ),
    Operation(
        "POST",
        "/access/terminals/{sn}/device",
        "pushDevicePlan",
        "Queue the commands installing that plan on the terminal (durable queue).",
        "write",
        parameters=(SN,),
        responses={
            202: ("Queued: the plan and the command ids.", "DevicePlan"),
            404: ("Unknown terminal.", "Error"),
            409: ("The rules need more zones than the terminal holds.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/access/decisions/",
        "listAccessDecisions",
        "Decisions on codes (sendqrcode, sendpin), newest first; punches carry theirs (logs).",
        "read",
        parameters=(LIMIT, CURSOR, TERMINAL_FILTER),
        responses={200: ("A page of decisions.", "AccessDecisionPage")},
    ),
)

SCHEMAS.update(EVENT_SCHEMAS)
_EVENT_QUERY = eventQueryParameters(_query, _SN_SCHEMA)
WEBHOOK_ID = _path("id", {"type": "integer", "minimum": 1, "maximum": _INT64}, "A webhook id.", 1)
EVENT_LIMIT = _query(
    "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (100 by default)."
)

#: The routes of events and webhooks (see L{tm20.api._eventsopenapi}).
EVENT_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/events/",
        "listEvents",
        "The event log in id order, after a cursor (see EventPayloads for each type's data).",
        "read",
        parameters=(*_EVENT_QUERY, EVENT_LIMIT),
        responses={200: ("A page of events.", "EventPage")},
    ),
    Operation(
        "GET",
        "/events/stream",
        "streamEvents",
        "Server-Sent Events: the same events live (id: event id, event: type, data: the"
        " event), resuming after Last-Event-ID (or after=); a comment line as heartbeat.",
        "read",
        parameters=_EVENT_QUERY,
        responses={200: ("A text/event-stream that stays open.", None)},
    ),
    Operation(
        "GET",
        "/webhooks/",
        "listWebhooks",
        "Webhook subscriptions with their delivery state (no secrets).",
        "read",
        responses={200: ("The subscriptions, by id.", "WebhookList")},
    ),
    Operation(
        "POST",
        "/webhooks/",
        "createWebhook",
        "Subscribe a URL to events (from now on); the answer shows the signing secret once.",
        "write",
        body="WebhookCreate",
        responses={201: ("Created, with its secret.", "Webhook")},
    ),
    Operation(
        "GET",
        "/webhooks/{id}",
        "getWebhook",
        "A subscription and its delivery state.",
        "read",
        parameters=(WEBHOOK_ID,),
        responses={200: ("The subscription.", "Webhook"), 404: ("Unknown webhook.", "Error")},
    ),
    Operation(
        "PATCH",
        "/webhooks/{id}",
        "updateWebhook",
        "Change a subscription; enabled true re-activates a failing or disabled one.",
        "write",
        parameters=(WEBHOOK_ID,),
        body="WebhookPatch",
        responses={200: ("The subscription.", "Webhook"), 404: ("Unknown webhook.", "Error")},
    ),
    Operation(
        "DELETE",
        "/webhooks/{id}",
        "deleteWebhook",
        "Delete a subscription with its delivery state and attempts.",
        "write",
        parameters=(WEBHOOK_ID,),
        responses={204: ("Deleted.", None), 404: ("Unknown webhook.", "Error")},
    ),
    Operation(
        "POST",
        "/webhooks/{id}/replay",
        "replayWebhook",
        "Deliver again from an event id on (also re-activates the subscription).",
        "write",
        parameters=(WEBHOOK_ID,),
        body="WebhookReplay",
        responses={200: ("The subscription.", "Webhook"), 404: ("Unknown webhook.", "Error")},
    ),
    Operation(
        "GET",
        "/webhooks/{id}/attempts",
        "listWebhookAttempts",
        "Delivery attempts (time, status, latency, error, response excerpt), newest first.",
        "read",
        parameters=(WEBHOOK_ID, LIMIT, CURSOR),
        responses={
            200: ("A page of attempts.", "DeliveryAttemptPage"),
            404: ("Unknown webhook.", "Error"),
        },
    ),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/openapi.json",
        "openapi",
        "This document.",
        "read",
        responses={200: ("The OpenAPI document.", None)},
    ),
    Operation(
        "GET",
        "/terminals/",
        "listTerminals",
        "List terminals.",
        "read",
        parameters=(CONNECTED, STATUS, ACTIVE, STATE),
        responses={200: ("The terminals, by sn.", "TerminalList")},
    ),
    Operation(
        "POST",
        "/terminals/",
        "createTerminal",
        "Pre-register a terminal (whitelist) before it connects.",
        "write",
        body="TerminalCreate",
        responses={201: ("Created.", "Terminal"), 409: ("The sn exists.", "Error")},
    ),
    Operation(
        "GET",
        "/terminals/{sn}/",
        "getTerminal",
        "A terminal's detail.",
        "read",
        parameters=(SN,),
        responses={200: ("The terminal.", "Terminal"), 404: ("Unknown terminal.", "Error")},
    ),
    Operation(
        "PATCH",
        "/terminals/{sn}/",
        "updateTerminal",
        "Rename, approve (whitelist), (de)activate a terminal, set its time zone or secret.",
        "write",
        parameters=(SN,),
        body="TerminalPatch",
        responses={200: ("The terminal.", "Terminal"), 404: ("Unknown terminal.", "Error")},
    ),
    Operation(
        "DELETE",
        "/terminals/{sn}/",
        "deleteTerminal",
        "Forget a terminal and everything stored for it.",
        "write",
        parameters=(SN,),
        responses={204: ("Deleted.", None), 404: ("Unknown terminal.", "Error")},
    ),
    Operation(
        "POST",
        "/terminals/{sn}/identity/reset/",
        "resetTerminalIdentity",
        "Forget the hardware binding and the flag (new board, false alarm); keeps the secret.",
        "write",
        parameters=(SN,),
        responses={
            200: ("The terminal, unbound.", "Terminal"),
            404: ("Unknown terminal.", "Error"),
        },
    ),
    Operation(
        "POST",
        "/terminals/{sn}/command/",
        "sendCommand",
        "Send a command (protocol section 6) through the durable queue.",
        "write",
        parameters=(SN,),
        body="CommandRequest",
        responses={
            200: ("The terminal answered (status succeeded or failed).", "Command"),
            202: ("Queued (wait false, or the terminal is offline).", "Command"),
            404: ("Unknown terminal.", "Error"),
            504: ("The terminal did not answer in time (see command).", "Error"),
        },
    ),
    Operation(
        "GET",
        "/terminals/{sn}/commands/",
        "listPendingCommands",
        "The terminal's commands still to deliver, oldest first.",
        "read",
        parameters=(SN,),
        responses={
            200: ("Queued or sent commands.", "CommandList"),
            404: ("Unknown terminal.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/commands/{id}",
        "getCommand",
        "A command's status, reply and timestamps.",
        "read",
        parameters=(COMMAND_ID,),
        responses={200: ("The command.", "Command"), 404: ("Unknown command.", "Error")},
    ),
    Operation(
        "DELETE",
        "/commands/{id}",
        "cancelCommand",
        "Cancel a queued command: it is never delivered (status cancelled).",
        "write",
        parameters=(COMMAND_ID,),
        responses={
            200: ("Cancelled.", "Command"),
            404: ("Unknown command.", "Error"),
            409: ("Already sent or finished (see command).", "Error"),
        },
    ),
    Operation(
        "GET",
        "/terminals/{sn}/users/",
        "listUsers",
        "The terminal's users, by enrollid (records only in a user's detail).",
        "read",
        parameters=(SN, LIMIT, CURSOR),
        responses={200: ("A page of users.", "UserPage"), 404: ("Unknown terminal.", "Error")},
    ),
    Operation(
        "POST",
        "/terminals/{sn}/users/",
        "createUser",
        "Create a user on the server and push it to the terminal (setuserinfo).",
        "write",
        parameters=(SN,),
        body="UserCreate",
        responses={
            201: ("Created; the commands are queued.", "UserChange"),
            404: ("Unknown terminal.", "Error"),
            409: ("The user exists.", "Error"),
        },
    ),
    Operation(
        "POST",
        "/terminals/{sn}/users/pull/",
        "pullUsers",
        "Read every user and credential from the terminal (getuserlist + getuserinfo).",
        "write",
        parameters=(SN,),
        responses={
            200: ("What was read and stored.", "UserPullResult"),
            404: ("Unknown terminal.", "Error"),
            409: ("The terminal is offline, or a pull is running.", "Error"),
            504: ("The terminal stopped answering.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/terminals/{sn}/users/{enrollid}/",
        "getUser",
        "A user with its credential records.",
        "read",
        parameters=(SN, ENROLLID),
        responses={200: ("The user.", "User"), 404: ("Unknown terminal or user.", "Error")},
    ),
    Operation(
        "PATCH",
        "/terminals/{sn}/users/{enrollid}/",
        "updateUser",
        "Change a user (name, admin, enabled, credentials) and push the change.",
        "write",
        parameters=(SN, ENROLLID),
        body="UserPatch",
        responses={200: ("Changed; commands queued.", "UserChange"), 404: ("Unknown.", "Error")},
    ),
    Operation(
        "DELETE",
        "/terminals/{sn}/users/{enrollid}/",
        "deleteUser",
        "Delete a user (or one credential slot) and push deleteuser.",
        "write",
        parameters=(SN, ENROLLID, BACKUPNUM),
        responses={200: ("Deleted; commands queued.", "UserDeleted"), 404: ("Unknown.", "Error")},
    ),
    Operation(
        "GET",
        "/terminals/{sn}/logs/",
        "listTerminalLogs",
        "The terminal's attendance logs, newest first (CSV with format=csv).",
        "read",
        parameters=(SN, *_PUNCH_QUERY),
        responses={200: ("A page of logs.", "LogPage"), 404: ("Unknown terminal.", "Error")},
        csv=True,
    ),
    Operation(
        "POST",
        "/terminals/{sn}/logs/pull/",
        "pullLogs",
        "Read logs from the terminal (getnewlog, or getalllog between dates) and store them.",
        "write",
        parameters=(SN,),
        body="LogPullRequest",
        bodyRequired=False,
        responses={
            200: ("What was read and stored.", "LogPullResult"),
            404: ("Unknown terminal.", "Error"),
            409: ("The terminal is offline, or a pull is running.", "Error"),
            504: ("The terminal stopped answering.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/terminals/{sn}/door-events/",
        "listDoorEvents",
        "The terminal's door events (enrollid 0), newest first.",
        "read",
        parameters=(SN, LIMIT, CURSOR, SINCE, UNTIL, FORMAT),
        responses={200: ("A page of door events.", "LogPage"), 404: ("Unknown terminal.", "Error")},
        csv=True,
    ),
    Operation(
        "GET",
        "/logs/",
        "listLogs",
        "Every terminal's logs, newest first.",
        "read",
        parameters=(*_PUNCH_QUERY, TERMINAL_FILTER),
        responses={200: ("A page of logs.", "LogPage")},
        csv=True,
    ),
    Operation(
        "GET",
        "/terminals/{sn}/quarantine/",
        "listTerminalQuarantine",
        "Records the terminal sent that can never be stored (held verbatim), newest first.",
        "read",
        parameters=(SN, LIMIT, CURSOR),
        responses={
            200: ("A page of quarantined records.", "QuarantinePage"),
            404: ("Unknown terminal.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/logs/quarantine/",
        "listQuarantine",
        "Every terminal's quarantined records (held verbatim), newest first.",
        "read",
        parameters=(LIMIT, CURSOR, _query("terminal", _SN_SCHEMA, "Only this terminal's.")),
        responses={200: ("A page of quarantined records.", "QuarantinePage")},
    ),
    Operation(
        "GET",
        "/connected/",
        "listConnected",
        "The terminals connected now.",
        "read",
        responses={200: ("Connected terminals.", "Connected")},
    ),
    Operation(
        "GET",
        "/persons/",
        "listPersons",
        "Fleet persons by enrollid (records only in a person's detail).",
        "read",
        parameters=(LIMIT, CURSOR),
        responses={200: ("A page of persons.", "PersonPage")},
    ),
    Operation(
        "POST",
        "/persons/",
        "createPerson",
        "Create a fleet person, assigned to groups and/or terminals; the reconciler pushes it.",
        "write",
        body="PersonCreate",
        responses={
            201: ("Created; reconciliation started.", "Person"),
            409: ("The enrollid is taken.", "Error"),
        },
    ),
    Operation(
        "POST",
        "/persons/import",
        "importPersons",
        "Create or update persons from CSV (no biometrics); all rows checked first.",
        "write",
        body="PersonImport",
        bodyMediaType="text/csv",
        responses={200: ("Imported; reconciliation started.", "PersonImportResult")},
    ),
    Operation(
        "GET",
        "/persons/{enrollid}/",
        "getPerson",
        "A fleet person with its credential records.",
        "read",
        parameters=(PERSON_ID,),
        responses={200: ("The person.", "Person"), 404: ("Unknown person.", "Error")},
    ),
    Operation(
        "PATCH",
        "/persons/{enrollid}/",
        "updatePerson",
        "Change a person (fields given replace the person's); the reconciler pushes the change.",
        "write",
        parameters=(PERSON_ID,),
        body="PersonPatch",
        responses={200: ("Changed.", "Person"), 404: ("Unknown person.", "Error")},
    ),
    Operation(
        "DELETE",
        "/persons/{enrollid}/",
        "deletePerson",
        "Delete a person; the reconciler deletes it from the terminals holding it.",
        "write",
        parameters=(PERSON_ID,),
        responses={204: ("Deleted.", None), 404: ("Unknown person.", "Error")},
    ),
    Operation(
        "GET",
        "/persons/{enrollid}/sync/",
        "getPersonSync",
        "Per terminal: synced, pending (queued commands), failed (reply), conflict, not assigned.",
        "read",
        parameters=(PERSON_ID,),
        responses={200: ("The person's sync matrix.", "PersonSync"), 404: ("Unknown.", "Error")},
    ),
    Operation(
        "POST",
        "/persons/{enrollid}/sync/{sn}/claim/",
        "claimPersonSync",
        "Resolve a conflict: the terminal's user with this enrollid is overwritten by the person.",
        "write",
        parameters=(PERSON_ID, SN),
        responses={
            200: ("Claimed; reconciliation started.", "PersonSyncEntry"),
            404: ("Unknown person or terminal.", "Error"),
            409: ("The person is not assigned to that terminal.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/terminals/{sn}/persons/",
        "getTerminalPersonCounts",
        "How many fleet persons are synced, pending, failed, in conflict on the terminal.",
        "read",
        parameters=(SN,),
        responses={
            200: ("Counts.", "TerminalPersonCounts"),
            404: ("Unknown terminal.", "Error"),
        },
    ),
    Operation(
        "GET",
        "/groups/",
        "listGroups",
        "Terminal groups, by name.",
        "read",
        responses={200: ("The groups.", "GroupList")},
    ),
    Operation(
        "POST",
        "/groups/",
        "createGroup",
        "Create a group of terminals; its terminals are reconciled.",
        "write",
        body="GroupCreate",
        responses={201: ("Created.", "Group"), 409: ("The name is taken.", "Error")},
    ),
    Operation(
        "GET",
        "/groups/{name}/",
        "getGroup",
        "A group.",
        "read",
        parameters=(GROUP_NAME,),
        responses={200: ("The group.", "Group"), 404: ("Unknown group.", "Error")},
    ),
    Operation(
        "PATCH",
        "/groups/{name}/",
        "updateGroup",
        "Change a group (terminals given replace its members); joined and left terminals are"
        " reconciled.",
        "write",
        parameters=(GROUP_NAME,),
        body="GroupPatch",
        responses={200: ("Changed.", "Group"), 404: ("Unknown group.", "Error")},
    ),
    Operation(
        "DELETE",
        "/groups/{name}/",
        "deleteGroup",
        "Delete a group; its persons leave its terminals (unless assigned otherwise).",
        "write",
        parameters=(GROUP_NAME,),
        responses={204: ("Deleted.", None), 404: ("Unknown group.", "Error")},
    ),
    Operation(
        "GET",
        "/audit/",
        "listAudit",
        "Operator actions, newest first.",
        "read",
        parameters=(LIMIT, CURSOR),
        responses={200: ("A page of the audit log.", "AuditPage")},
    ),
    *EVENT_OPERATIONS,
    *ACCESS_OPERATIONS,
)

_COMMON_RESPONSES: dict[int, str] = {
    400: "Invalid request (detail and field say why).",
    401: "Missing or unknown token.",
    403: "The token lacks the scope.",
    429: "Too many failed authentications from this address (see Retry-After).",
    503: "The database is unavailable.",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds before this address may try again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def kleinPath(path: str) -> str:
    """
    C{/terminals/{sn}/users/{enrollid}/} in werkzeug's syntax: integers typed, text through
    the C{segment} converter (L{tm20.api._paths}: any character, C{/} included).
    """

    def convert(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<int:{name}>" if name in ("enrollid", "id") else f"<segment:{name}>"

    return re.sub(r"\{(\w+)\}", convert, path)


def _response(description: str, schema: str | None, csv: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        content: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
        if csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        out["content"] = content
    return out


def buildDocument(serverURL: str = "/api") -> dict[str, Any]:
    """The OpenAPI 3.0 document of L{OPERATIONS}."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        responses: dict[str, Any] = {}
        for status, (description, schema) in sorted(op.responses.items()):
            if status == 200 and op.operationId == "openapi":
                responses["200"] = {
                    "description": description,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
                continue
            responses[str(status)] = _response(description, schema, op.csv and status == 200)
        for status, description in _COMMON_RESPONSES.items():
            responses.setdefault(str(status), _response(description, "Error"))
        responses["429"]["headers"] = dict(_RETRY_AFTER)
        operation: dict[str, Any] = {
            "operationId": op.operationId,
            "summary": op.summary,
            "security": [{"bearer": []}],
            "x-scope": op.scope,
            "responses": responses,
        }
        if op.parameters:
            operation["parameters"] = [dict(p) for p in op.parameters]
        if op.body is not None:
            operation["requestBody"] = {
                "required": op.bodyRequired,
                "content": {op.bodyMediaType: {"schema": _ref(op.body)}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tm20 REST API",
            "version": "1.0.0",
            "description": (
                "Drive TM20-WIFI / AiFace terminals: terminals, users, logs and commands. "
                "Every route needs Authorization: Bearer TOKEN (scope read for GET, write "
                'otherwise). Errors are {"error": CODE, "detail": "..."}. Too many failed '
                "authentications from one address are answered 429 with Retry-After."
            ),
        },
        "servers": [{"url": serverURL}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


# -- request validation against the same schemas ---------------------------------------------------


class ValidationError(ValueError):
    """A request body does not match its schema; C{field} names where."""

    def __init__(self, problem: str, field: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.problem = problem
        self.field = field


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return SCHEMAS[ref.rsplit("/", 1)[1]]
    return schema


def _typeOK(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def validate(value: Any, schema: Mapping[str, Any] | str, field: str = "") -> None:
    """
    Check C{value} against a schema of L{SCHEMAS} (by name) or an inline one: the subset of
    JSON Schema used here (type, nullable, enum, required, properties, additionalProperties,
    minProperties, items, maxItems, minimum, maximum, minLength, maxLength, pattern, oneOf).

    @raise ValidationError: naming the offending field.
    """
    schema = _resolve(SCHEMAS[schema] if isinstance(schema, str) else schema)
    if value is None:
        if schema.get("nullable"):
            return
        raise ValidationError("must not be null", field)
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                validate(value, option, field)
            except ValidationError:
                continue
            matches += 1
        if matches != 1:
            raise ValidationError("has the wrong type or value", field)
    kind = schema.get("type")
    if kind is not None and not _typeOK(value, kind):
        raise ValidationError(f"must be of type {kind}", field)
    if "enum" in schema and value not in schema["enum"]:
        raise ValidationError("must be one of " + ", ".join(map(str, schema["enum"])), field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ValidationError(f"must be at least {schema['minimum']}", field)
        if "maximum" in schema and value > schema["maximum"]:
            raise ValidationError(f"must be at most {schema['maximum']}", field)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise ValidationError(f"must have at least {schema['minLength']} characters", field)
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ValidationError(f"must have at most {schema['maxLength']} characters", field)
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            raise ValidationError("has the wrong format", field)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValidationError(f"must have at most {schema['maxItems']} items", field)
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                validate(item, items, f"{field}[{i}]")
    if isinstance(value, dict):
        if len(value) < schema.get("minProperties", 0):
            raise ValidationError("must not be empty", field or "body")
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise ValidationError("is required", _join(field, name))
        for name, item in value.items():
            if name in properties:
                validate(item, properties[name], _join(field, name))
            elif schema.get("additionalProperties") is False:
                raise ValidationError("unknown field", _join(field, name))


def _join(field: str, name: str) -> str:
    return f"{field}.{name}" if field else name


def checkJSONSafe(value: Any, field: str = "") -> None:
    """
    Refuse what no database stores: NUL characters, lone surrogates, non-finite numbers,
    integers beyond 64 bits, and nesting deeper than 32.

    @raise ValidationError: naming the offending field.
    """
    _checkSafe(value, field, 0)


def _checkSafe(value: Any, field: str, depth: int) -> None:
    if depth > 32:
        raise ValidationError("is nested too deeply", field or "body")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError("must not contain NUL characters", field or "body")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid Unicode", field or "body") from None
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not -(2**63) <= value <= _INT64:
            raise ValidationError("is too large", field or "body")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError("must be a finite number", field or "body")
    elif isinstance(value, dict):
        for key, item in value.items():
            _checkSafe(key, field or "body", depth + 1)
            _checkSafe(item, _join(field, str(key)), depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _checkSafe(item, f"{field}[{i}]", depth + 1)


def operationsByPath() -> Sequence[tuple[str, str]]:
    """C{(METHOD, path)} of every operation (for tests)."""
    return [(op.method, op.path) for op in OPERATIONS]
