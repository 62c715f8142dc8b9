"""
Reading the console's forms and query strings: a field as text (UTF-8, or a 400 naming it), a
terminal-local time, where to go after login (never another site).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from twisted.web.iweb import IRequest

from tm20.protocol.timefmt import normaliseDate, normaliseTime
from tm20.services.errors import ServiceError

__all__ = ["formValue", "formValues", "localInstant", "safeNext", "terminalTime"]


def formValue(request: IRequest, name: str) -> str:
    values = (getattr(request, "args", None) or {}).get(name.encode("ascii")) or []
    if not values:
        return ""
    try:
        return str(values[-1].decode("utf-8")).strip()
    except UnicodeDecodeError:
        raise ServiceError(400, "invalid_form", "must be UTF-8", field=name) from None


def formValues(request: IRequest, name: str) -> list[str]:
    """Every value of a field given several times (checkboxes, a multiple select)."""
    values = (getattr(request, "args", None) or {}).get(name.encode("ascii")) or []
    try:
        return [str(v.decode("utf-8")).strip() for v in values]
    except UnicodeDecodeError:
        raise ServiceError(400, "invalid_form", "must be UTF-8", field=name) from None


def localInstant(name: str, value: str, zone: str) -> str | None:
    """C{YYYY-MM-DD HH:MM} in time zone C{zone} as ISO 8601 with its offset (empty: C{None})."""
    if not value:
        return None
    try:
        tz = ZoneInfo(zone)
    except (ValueError, KeyError, OSError):
        raise ServiceError(400, "invalid_form", "unknown time zone", field="zone") from None
    try:
        when = datetime.strptime(value.replace("T", " ").strip()[:16], "%Y-%m-%d %H:%M")
    except ValueError:
        raise ServiceError(400, "invalid_form", "must be YYYY-MM-DD HH:MM", field=name) from None
    return when.replace(tzinfo=tz).isoformat()


def terminalTime(name: str, value: str, endOfDay: bool) -> str | None:
    if not value:
        return None
    try:
        text = value.replace("T", " ").strip()
        if " " in text:
            if text.count(":") == 1:
                text += ":00"
            return normaliseTime(text)
        day = normaliseDate(text)
    except ValueError:
        raise ServiceError(
            400, "invalid_form", "must be YYYY-MM-DD[ HH:MM[:SS]]", field=name
        ) from None
    return f"{day} 23:59:59" if endOfDay else f"{day} 00:00:00"


def safeNext(value: str) -> str:
    """Where to go after login: a path of the console only (never another site)."""
    if value.startswith("/admin/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin/"
