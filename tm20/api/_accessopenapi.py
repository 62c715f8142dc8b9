"""
The schemas of access control (rules, holidays, codes, group settings, decisions), joined to
L{tm20.api._openapi.SCHEMAS}; the routes are in L{tm20.api._openapi.ACCESS_OPERATIONS}.
"""

from __future__ import annotations

from typing import Any

from tm20.access.model import DAYS, REASONS, UNKNOWN_ALLOW, UNKNOWN_DENY
from tm20.protocol.commands import MAX_ENROLLID
from tm20.protocol.serial import MAX_SN_LENGTH

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_TIMESTAMP = {"type": "string", "nullable": True, "description": "ISO 8601, UTC."}
_GROUP = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
}
_SN = {"type": "string", "minLength": 1, "maxLength": MAX_SN_LENGTH}
_ENROLLID = {"type": "integer", "minimum": 1, "maximum": MAX_ENROLLID}
_HHMM = {
    "type": "string",
    "pattern": r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
    "description": "HH:MM, terminal-local (24:00: the end of the day).",
}
_DAY = {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"}
_UNKNOWN = {"type": "string", "enum": [UNKNOWN_DENY, UNKNOWN_ALLOW]}


def _list(items: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "array", "maxItems": 1000, "items": items, "description": description}


_WINDOW = {
    "type": "object",
    "required": ["days", "start", "end"],
    "additionalProperties": False,
    "description": "From start (inclusive) to end (exclusive) on these days, in the terminal's"
    " time zone; end before start runs past midnight into the next day.",
    "properties": {
        "days": {
            "type": "array",
            "maxItems": 7,
            "items": {"type": "string", "enum": list(DAYS)},
        },
        "start": _HHMM,
        "end": _HHMM,
    },
}

_RULE_FIELDS = {
    "description": {"type": "string", "maxLength": 500, "nullable": True},
    "persons": _list(_ENROLLID, "Persons (enrollids) this rule lets through."),
    "personGroups": _list(_GROUP, "The persons of these groups (their assignment groups)."),
    "terminals": _list(_SN, "The doors: these terminals ..."),
    "terminalGroups": _list(_GROUP, "... and the terminals of these groups."),
    "windows": {
        "type": "array",
        "maxItems": 50,
        "items": _WINDOW,
        "description": "Weekly windows; none: at any time.",
    },
    "holidays": {
        "type": "boolean",
        "description": "Also grants on the doors' holidays (false by default: closed then).",
    },
}

ACCESS_SCHEMAS: dict[str, dict[str, Any]] = {
    "AccessRuleWrite": {
        "type": "object",
        "additionalProperties": False,
        "description": "A rule, whole (PUT replaces every field).",
        "properties": _RULE_FIELDS,
    },
    "AccessRule": {
        "type": "object",
        "required": ["id", "persons", "terminals", "windows"],
        "properties": {
            "id": {"type": "integer"},
            **_RULE_FIELDS,
            "createdAt": _TIMESTAMP,
            "updatedAt": _TIMESTAMP,
        },
    },
    "AccessRuleList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/AccessRule"}}
        },
    },
    "HolidayWrite": {
        "type": "object",
        "required": ["name", "start"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "start": {**_DAY, "description": "First day, YYYY-MM-DD (terminal-local)."},
            "end": {**_DAY, "description": "Last day (inclusive); start by default."},
            "terminalGroups": _list(_GROUP, "The doors concerned; none: every terminal."),
        },
    },
    "Holiday": {
        "type": "object",
        "required": ["id", "name", "start", "end"],
        "properties": {
            "id": {"type": "integer"},
            "name": _STRING,
            "start": _STRING,
            "end": _STRING,
            "terminalGroups": {"type": "array", "items": _STRING},
            "createdAt": _TIMESTAMP,
        },
    },
    "HolidayList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Holiday"}}
        },
    },
    "QrCodeCreate": {
        "type": "object",
        "required": ["validUntil"],
        "additionalProperties": False,
        "properties": {
            "code": {
                "type": "string",
                "minLength": 4,
                "maxLength": 256,
                "description": "The code's text (what the QR code or PIN holds); generated when"
                " absent. Shown in this answer only: the server keeps its sha256.",
            },
            "enrollid": {**_ENROLLID, "description": "A person's code ..."},
            "visitorName": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "... or a visitor's (exactly one of the two).",
            },
            "validFrom": {
                "type": "string",
                "maxLength": 40,
                "description": "ISO 8601 with its offset; now by default.",
            },
            "validUntil": {
                "type": "string",
                "maxLength": 40,
                "description": "ISO 8601 with its offset.",
            },
            "terminals": _list(_SN, "The doors it opens ..."),
            "terminalGroups": _list(_GROUP, "... and those of these groups."),
            "singleUse": {"type": "boolean", "description": "Opens once (false by default)."},
        },
    },
    "QrCode": {
        "type": "object",
        "required": ["id", "terminals", "singleUse"],
        "properties": {
            "id": {"type": "integer"},
            "code": {"type": "string", "description": "In the creation's answer only."},
            "enrollid": {"type": "integer", "nullable": True},
            "visitorName": _NULLABLE_STRING,
            "validFrom": _TIMESTAMP,
            "validUntil": _TIMESTAMP,
            "terminals": {"type": "array", "items": _STRING},
            "terminalGroups": {"type": "array", "items": _STRING},
            "singleUse": {"type": "boolean"},
            "usedAt": _TIMESTAMP,
            "usedSn": _NULLABLE_STRING,
            "revokedAt": _TIMESTAMP,
            "createdAt": _TIMESTAMP,
        },
    },
    "QrCodePage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/QrCode"}},
            "next": _NULLABLE_STRING,
        },
    },
    "GroupAccessWrite": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "unknownEnrollid": {
                **_UNKNOWN,
                "description": "An enrollid no person has, at this group's doors (deny).",
            },
            "unknownCode": {**_UNKNOWN, "description": "A code nobody issued (deny)."},
        },
    },
    "GroupAccess": {
        "type": "object",
        "required": ["group", "unknownEnrollid", "unknownCode"],
        "properties": {
            "group": _STRING,
            "unknownEnrollid": _UNKNOWN,
            "unknownCode": _UNKNOWN,
            "updatedAt": _TIMESTAMP,
        },
    },
    "DevicePlan": {
        "type": "object",
        "required": ["sn", "dayzone", "weekzone", "userlocks", "notOnDevice"],
        "properties": {
            "sn": _STRING,
            "dayzone": {
                "type": "array",
                "items": {"type": "object"},
                "description": "setdevlock dayzone (1: never).",
            },
            "weekzone": {
                "type": "array",
                "items": {"type": "object"},
                "description": "setdevlock weekzone.",
            },
            "userlocks": {
                "type": "array",
                "items": {"type": "object"},
                "description": "setuserlock records.",
            },
            "notOnDevice": {
                "type": "array",
                "items": _STRING,
                "description": "What the terminal never enforces by itself.",
            },
            "commands": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "Queued command ids (POST).",
            },
        },
    },
    "AccessDecision": {
        "type": "object",
        "description": "A decision on a code (sendqrcode, sendpin); punches carry theirs.",
        "required": ["id", "sn", "kind", "granted", "reason"],
        "properties": {
            "id": {"type": "integer"},
            "sn": _STRING,
            "kind": {"type": "string", "enum": ["qrcode", "pin"]},
            "enrollid": {"type": "integer", "nullable": True},
            "qrcodeId": {"type": "integer", "nullable": True},
            "ruleId": {"type": "integer", "nullable": True},
            "granted": {"type": "boolean"},
            "reason": {"type": "string", "enum": list(REASONS)},
            "decidedAt": _TIMESTAMP,
        },
    },
    "AccessDecisionPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/AccessDecision"}},
            "next": _NULLABLE_STRING,
        },
    },
}

#: The access event payload (C{access.granted}, C{access.denied}).
ACCESS_EVENT_SCHEMA = {
    "type": "object",
    "description": "access.granted / access.denied: a decision at a door, written with its log"
    " (kind log: logId) or code decision (kind qrcode or pin: decisionId). replaces: the door"
    " got the fallback after all (the decision's commit came too late); the last event of a"
    " log or decision is what the door did. Never the code's text.",
    "properties": {
        "sn": _STRING,
        "kind": {"type": "string", "enum": ["log", "qrcode", "pin"]},
        "granted": {"type": "boolean"},
        "reason": {"type": "string", "enum": list(REASONS)},
        "enrollid": {"type": "integer", "nullable": True},
        "ruleId": {"type": "integer", "nullable": True},
        "qrcodeId": {"type": "integer", "nullable": True},
        "logId": {"type": "integer", "nullable": True},
        "decisionId": {"type": "integer", "nullable": True},
        "time": _NULLABLE_STRING,
        "timeUTC": _NULLABLE_STRING,
        "decidedAt": _TIMESTAMP,
        "replaces": {"type": "boolean"},
    },
}
