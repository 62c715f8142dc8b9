"""
How long a queued command stays deliverable: the defaults by kind, and the expiry of a stored
command (L{tm20.services.queue} never delivers a command past it).

An C{opendoor} posted while a terminal is offline must not open the door when the terminal
reconnects hours later; a user or a setting may well wait days for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tm20.model import StoredCommand

__all__ = [
    "ERASE_EXPIRY",
    "LONG_EXPIRY",
    "MAX_EXPIRY",
    "SHORT_EXPIRY",
    "defaultExpiry",
    "expiryOf",
]

#: Seconds a command stays deliverable, by kind.  Momentary actions (door, reboot, clock,
#: enrolment on the screen, recognition on/off) only make sense now: a minute.  Commands that
#: erase data: an hour, while the operator who confirmed them still expects them.  Everything
#: else (users, access rights, settings, reads): a week.  The TM20 protocol has no alarm
#: command; alarm settings are setdevlock settings.
SHORT_EXPIRY = 60
ERASE_EXPIRY = 3600
LONG_EXPIRY = 7 * 86400
#: The longest C{expiresIn} accepted.
MAX_EXPIRY = 30 * 86400
_SHORT_LIVED = frozenset(
    {"opendoor", "reboot", "settime", "gettime", "adduser", "disabledevice", "enabledevice"}
)
_ERASING = frozenset(
    {
        "cleanuser",
        "cleanlog",
        "cleanlogphoto",
        "initsys",
        "cleanadmin",
        "cleanuserlock",
        "cleanholiday",
    }
)


def defaultExpiry(name: str) -> int:
    """Seconds a command C{name} stays deliverable when the request gives no C{expiresIn}."""
    if name in _SHORT_LIVED:
        return SHORT_EXPIRY
    if name in _ERASING:
        return ERASE_EXPIRY
    return LONG_EXPIRY


def expiryOf(command: StoredCommand) -> datetime | None:
    """
    When C{command} stops being deliverable: its C{expiresAt}, or for a command stored before
    expiries existed, its creation plus the default of its kind.
    """
    if command.expiresAt is not None:
        return command.expiresAt
    if command.createdAt is None:
        return None
    return command.createdAt + timedelta(seconds=defaultExpiry(command.name))
