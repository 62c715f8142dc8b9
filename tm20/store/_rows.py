"""
Helpers shared by the stores to turn values into columns and rows back into L{tm20.model} values.

Nothing here touches a database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tm20.model import COMMAND_FAILED, COMMAND_STATUSES, COMMAND_SUCCEEDED, COMMAND_TIMED_OUT

#: Command statuses after which a command is done (C{finishedAt} is set).
FINAL_COMMAND_STATUSES = frozenset({COMMAND_SUCCEEDED, COMMAND_FAILED, COMMAND_TIMED_OUT})

#: The C{devinfo} keys copied into their own terminal columns.
DEVINFO_COLUMNS = ("mac", "modelname", "firmware")


def utcFromSeconds(seconds: float) -> datetime:
    """A timezone-aware UTC C{datetime} for a POSIX timestamp (C{IReactorTime.seconds()})."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def formatTimestamp(when: datetime) -> str:
    """
    ISO-8601 text in UTC with microseconds and offset, e.g.
    C{2026-04-30T11:59:37.000000+00:00}: fixed width, so text order is time order.
    """
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def parseTimestamp(text: str | None) -> datetime | None:
    """The aware UTC C{datetime} for text made by L{formatTimestamp} (C{None} stays C{None})."""
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def dumpJSON(value: Any) -> str:
    """Compact JSON text; C{Mapping}s (e.g. frozen attrs fields) are copied into dicts."""
    if isinstance(value, Mapping):
        value = dict(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loadJSONObject(text: str | None) -> dict[str, Any]:
    """A JSON object column as a dict (C{None} or a non-object gives C{{}})."""
    if text is None:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def devinfoColumn(devinfo: Mapping[str, Any], key: str) -> str | None:
    """C{devinfo[key]} as text for its own column, or C{None} when absent or empty."""
    value = devinfo.get(key)
    if value is None or value == "":
        return None
    return str(value)


def checkCommandStatus(status: str) -> None:
    """@raise ValueError: C{status} is not one of L{tm20.model.COMMAND_STATUSES}."""
    if status not in COMMAND_STATUSES:
        raise ValueError(f"unknown command status {status!r}; expected one of {COMMAND_STATUSES}")


__all__ = [
    "DEVINFO_COLUMNS",
    "FINAL_COMMAND_STATUSES",
    "checkCommandStatus",
    "devinfoColumn",
    "dumpJSON",
    "formatTimestamp",
    "loadJSONObject",
    "parseTimestamp",
    "utcFromSeconds",
]
