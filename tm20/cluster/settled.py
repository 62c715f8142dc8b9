"""
A command as stored, carried in the C{settled} notification a holder sends after a delivery
attempt, so that the node waiting for it need not read the row again (L{tm20.cluster.routing}).

A notification's payload is at most 8 000 bytes (PostgreSQL): a command whose form is longer
(a big reply) is not carried, and the waiting node reads the row as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tm20.model import StoredCommand

__all__ = ["MAX_CARRIED", "commandFromMessage", "commandMessage", "settledMessage"]

#: The longest C{settled} message (JSON characters) that carries its command.
MAX_CARRIED = 7000

_TIMES = ("createdAt", "sentAt", "finishedAt", "expiresAt")


def commandMessage(command: StoredCommand) -> dict[str, Any]:
    """C{command} as JSON values (times as ISO 8601 text)."""
    out: dict[str, Any] = {
        "id": command.id,
        "sn": command.sn,
        "name": command.name,
        "payload": dict(command.payload),
        "status": command.status,
        "reply": None if command.reply is None else dict(command.reply),
        "attempts": command.attempts,
        "maxAttempts": command.maxAttempts,
        "actor": command.actor,
        "warnings": [dict(w) for w in command.warnings],
    }
    for name in _TIMES:
        value: datetime | None = getattr(command, name)
        out[name] = None if value is None else value.isoformat()
    return out


def commandFromMessage(message: Mapping[str, Any]) -> StoredCommand | None:
    """The L{StoredCommand} of L{commandMessage}'s form, or C{None} when it is not one."""
    try:
        times = {
            name: None if message[name] is None else datetime.fromisoformat(message[name])
            for name in _TIMES
        }
        reply = message["reply"]
        return StoredCommand(
            id=int(message["id"]),
            sn=str(message["sn"]),
            name=str(message["name"]),
            payload=dict(message["payload"]),
            status=str(message["status"]),
            reply=None if reply is None else dict(reply),
            attempts=int(message["attempts"]),
            maxAttempts=int(message["maxAttempts"]),
            actor=None if message["actor"] is None else str(message["actor"]),
            warnings=tuple(dict(w) for w in message["warnings"]),
            **times,
        )
    except (KeyError, TypeError, ValueError):
        return None


def settledMessage(command: StoredCommand, connected: bool) -> dict[str, Any]:
    """
    The C{settled} notification of C{command} (as stored after an attempt); C{connected}:
    whether its terminal is still held by the sender.  It carries the command (C{row}) when
    short enough.
    """
    message: dict[str, Any] = {"op": "settled", "command": command.id, "connected": connected}
    carried = {**message, "row": commandMessage(command)}
    if len(json.dumps(carried)) <= MAX_CARRIED:
        return carried
    return message
