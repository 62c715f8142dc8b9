"""
The JSON shapes of the model, as the REST API answers them and the console shows them (the
OpenAPI schemas in L{tm20.api._openapi} describe the same).

Server timestamps are ISO 8601 in UTC; terminal times (log C{time}) stay the terminal's local
C{YYYY-MM-DD HH:MM:SS}.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tm20.model import (
    AuditEntry,
    Credential,
    Person,
    PersonSync,
    QuarantinedRecord,
    StoredCommand,
    StoredLog,
    Terminal,
    TerminalGroup,
    TerminalWatch,
    User,
)
from tm20.services.expiry import expiryOf
from tm20.services.terminals import TerminalView

__all__ = [
    "auditJSON",
    "commandJSON",
    "decodeCursor",
    "encodeCursor",
    "groupJSON",
    "personJSON",
    "personSyncJSON",
    "isoTime",
    "logJSON",
    "quarantinedJSON",
    "terminalJSON",
    "terminalStates",
    "userJSON",
    "watchJSON",
]


def isoTime(value: datetime | None) -> str | None:
    """ISO 8601, or C{None}."""
    return None if value is None else value.isoformat()


def terminalJSON(terminal: Terminal, connected: bool) -> dict[str, Any]:
    """
    A terminal, with every C{devinfo} field it reported, whether it is connected now, and its
    identity: the hardware it is bound to, the latest refused claim (C{identityMismatch},
    C{flagged} while there is one) and whether it has a path secret (C{hasSecret}; the secret's
    hash is never shown).
    """
    return {
        "sn": terminal.sn,
        "name": terminal.name,
        "status": "approved" if terminal.approved else "pending",
        "approved": terminal.approved,
        "active": terminal.active,
        "timezone": terminal.timezone,
        "connected": connected,
        "cpusn": terminal.cpusn,
        "mac": terminal.mac,
        "modelname": terminal.modelname,
        "firmware": terminal.firmware,
        "devinfo": dict(terminal.devinfo),
        "firstSeen": isoTime(terminal.firstSeen),
        "lastSeen": isoTime(terminal.lastSeen),
        "boundCpusn": terminal.boundCpusn,
        "boundMac": terminal.boundMac,
        "boundAt": isoTime(terminal.boundAt),
        "flagged": terminal.flagged,
        "identityMismatch": (
            None if terminal.identityMismatch is None else dict(terminal.identityMismatch)
        ),
        "hasSecret": bool(terminal.secretHash),
    }


def watchJSON(
    watch: TerminalWatch | None,
    silentAfter: float,
    driftFlagged: bool,
    lastHeard: datetime | None,
    fetching: bool,
) -> dict[str, Any]:
    """
    What the server watches on a terminal: its silence (with the threshold in force and its own
    override), the logs missing from the server, its clock drift.
    """
    w = watch if watch is not None else TerminalWatch(sn="")
    return {
        "silent": w.silentSince is not None,
        "silentSince": isoTime(w.silentSince),
        "silentAfter": silentAfter,
        "silentAfterOverride": w.silentAfter,
        "lastHeard": isoTime(lastHeard),
        "logGap": {
            "missing": w.logGap,
            "source": w.logGapSource,
            "since": isoTime(w.logGapSince),
            "from": w.logGapFrom,
            "to": w.logGapTo,
            "fetching": fetching,
            "recovered": w.logsRecovered,
            "lastRecoveryAt": isoTime(w.lastRecoveryAt),
        },
        "clock": {
            "drift": w.clockDrift,
            "flagged": driftFlagged,
            "checkedAt": isoTime(w.clockCheckedAt),
            "correctedAt": isoTime(w.clockCorrectedAt),
        },
    }


#: The states a terminal can be in at once (the C{state} filter of the terminal list).
TERMINAL_STATES = (
    "pending",
    "inactive",
    "connected",
    "disconnected",
    "silent",
    "log_gap",
    "clock_drift",
    "flagged",
)


def terminalStates(terminal: Terminal, connected: bool, watch: dict[str, Any] | None) -> list[str]:
    """The L{TERMINAL_STATES} a terminal is in, in that order."""
    states = []
    if not terminal.approved:
        states.append("pending")
    if not terminal.active:
        states.append("inactive")
    states.append("connected" if connected else "disconnected")
    if watch is not None:
        if watch["silent"]:
            states.append("silent")
        if watch["logGap"]["missing"] > 0:
            states.append("log_gap")
        if watch["clock"]["flagged"]:
            states.append("clock_drift")
    if terminal.flagged:
        states.append("flagged")
    return states


def credentialJSON(credential: Credential, withRecord: bool) -> dict[str, Any]:
    """One credential slot (its record only when C{withRecord})."""
    out: dict[str, Any] = {
        "backupnum": credential.backupnum,
        "updatedAt": isoTime(credential.updatedAt),
    }
    if withRecord:
        out["record"] = credential.record
    return out


def userJSON(user: User, withRecords: bool = False) -> dict[str, Any]:
    """A user and its credential slots."""
    return {
        "sn": user.sn,
        "enrollid": user.enrollid,
        "name": user.name,
        "admin": user.admin,
        "enabled": user.enabled,
        "credentials": [credentialJSON(c, withRecords) for c in user.credentials],
        "updatedAt": isoTime(user.updatedAt),
    }


def personJSON(person: Person, withRecords: bool = False) -> dict[str, Any]:
    """A fleet person, its credential slots and its assignment."""
    return {
        "enrollid": person.enrollid,
        "name": person.name,
        "admin": person.admin,
        "enabled": person.enabled,
        "validFrom": person.validFrom,
        "validUntil": person.validUntil,
        "credentials": [credentialJSON(c, withRecords) for c in person.credentials],
        "groups": list(person.groups),
        "terminals": list(person.terminals),
        "createdAt": isoTime(person.createdAt),
        "updatedAt": isoTime(person.updatedAt),
    }


def groupJSON(group: TerminalGroup) -> dict[str, Any]:
    """A group of terminals."""
    return {
        "name": group.name,
        "description": group.description,
        "adoptKeypad": group.adoptKeypad,
        "terminals": list(group.terminals),
        "createdAt": isoTime(group.createdAt),
        "updatedAt": isoTime(group.updatedAt),
    }


def personSyncJSON(
    sn: str,
    state: str,
    assigned: bool,
    sync: PersonSync | None,
    commands: list[StoredCommand],
) -> dict[str, Any]:
    """A person's state on one terminal."""
    return {
        "sn": sn,
        "state": state,
        "assigned": assigned,
        "owned": sync.owned if sync is not None else False,
        "detail": dict(sync.detail) if sync is not None else {},
        "commands": [commandJSON(c) for c in commands],
        "updatedAt": isoTime(sync.updatedAt) if sync is not None else None,
    }


def logJSON(log: StoredLog) -> dict[str, Any]:
    """An attendance punch or a door event."""
    return {
        "id": log.id,
        "sn": log.sn,
        "enrollid": log.enrollid,
        "time": log.time,
        "mode": log.mode,
        "inout": log.inout,
        "event": log.event,
        "temp": log.temp,
        "verifymode": log.verifymode,
        "image": log.image,
        "extra": dict(log.extra),
        "receivedAt": isoTime(log.receivedAt),
        "accessGranted": log.accessGranted,
        "accessReason": log.accessReason,
    }


def _refuseConstant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parsedRecord(raw: str) -> Any:
    """
    The value of a held record's text, or C{None} when it is no JSON this API can answer (a
    trailing comma, C{NaN}, a lone surrogate escape, an integer of thousands of digits).
    """
    try:
        value = json.loads(raw, parse_constant=_refuseConstant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        return None
    return value


def quarantinedJSON(held: QuarantinedRecord) -> dict[str, Any]:
    """
    A quarantined record: C{raw}, its text exactly as the terminal sent it; C{record}, that text
    parsed (C{None} when it is not plain JSON); why it can never be stored.
    """
    return {
        "id": held.id,
        "sn": held.sn,
        "source": held.source,
        "raw": held.raw,
        "record": _parsedRecord(held.raw),
        "problem": held.problem,
        "field": held.field,
        "reason": held.reason,
        "receivedAt": isoTime(held.receivedAt),
    }


def commandJSON(command: StoredCommand) -> dict[str, Any]:
    """A stored command: status, reply, timestamps, expiry and warnings."""
    return {
        "id": command.id,
        "sn": command.sn,
        "command": command.name,
        "payload": dict(command.payload),
        "status": command.status,
        "reply": None if command.reply is None else dict(command.reply),
        "attempts": command.attempts,
        "maxAttempts": command.maxAttempts,
        "actor": command.actor,
        "createdAt": isoTime(command.createdAt),
        "sentAt": isoTime(command.sentAt),
        "finishedAt": isoTime(command.finishedAt),
        "expiresAt": isoTime(expiryOf(command)),
        "warnings": [
            {"field": f"params.{w.get('field')}", "detail": w.get("detail", "")}
            for w in command.warnings
        ],
    }


def auditJSON(entry: AuditEntry) -> dict[str, Any]:
    """One audit log entry."""
    return {
        "id": entry.id,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "detail": dict(entry.detail) if isinstance(entry.detail, Mapping) else entry.detail,
        "at": isoTime(entry.at),
    }


def encodeCursor(value: Any) -> str:
    """An opaque pagination cursor for C{value} (JSON, base64url)."""
    raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decodeCursor(cursor: str) -> Any:
    """
    The value of a cursor made by L{encodeCursor}.

    @raise ValueError: if it is not one.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError) as e:
        raise ValueError("invalid cursor") from e


def describeTerminal(view: TerminalView) -> dict[str, Any]:
    """A terminal as the API shows it: L{terminalJSON}, its watch and its states."""
    out = terminalJSON(view.terminal, view.connected)
    out["node"] = view.node
    watched = None
    if view.watched:
        heard = view.lastHeard
        watched = watchJSON(
            view.watch,
            view.silentAfter,
            view.driftFlagged,
            None if heard is None else datetime.fromtimestamp(heard, tz=UTC),
            view.gapBusy,
        )
        out["watch"] = watched
    out["states"] = terminalStates(view.terminal, view.connected, watched)
    return out
