"""
Date and time strings of the protocol.

Terminals speak local wall-clock time without a zone, as C{YYYY-MM-DD HH:MM:SS}; some firmwares
drop the zero padding (C{2018-11-1 8:5:3}).  Everything here is pure: C{cloudTime} takes the
current POSIX time as an argument.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TIME_RE = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{1,2}):(\d{1,2})\s*", re.ASCII
)
_DATE_RE = re.compile(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*", re.ASCII)
_MONTHDAY_RE = re.compile(r"(\d{1,2})-(\d{1,2})", re.ASCII)
#: A date-time already in the canonical form I{and} certainly valid (days 29-31 excluded: those
#: need the calendar), so that L{normaliseTime} can return it as it is.
_CANONICAL_RE = re.compile(
    r"(?!0000)\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8]) (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d",
    re.ASCII,
)

#: C{fullmatch} of L{_CANONICAL_RE}: a match when a date-time is canonical and certainly valid
#: (L{normaliseTime} returns it as it is), else C{None}.
matchCanonicalTime = _CANONICAL_RE.fullmatch


def parseTime(s: str) -> datetime:
    """
    Parse a protocol date-time.

    @param s: C{YYYY-MM-DD HH:MM:SS}; unpadded fields and surrounding spaces are accepted.
    @return: a naive L{datetime} (terminal-local wall-clock time).
    @raise ValueError: if C{s} is not a string or not a valid date-time (ISO C{T}/C{Z} forms
        included: terminals reject them).
    """
    if not isinstance(s, str):
        raise ValueError(f"expected a date-time string, got {type(s).__name__}")
    match = _TIME_RE.fullmatch(s)
    if match is None:
        raise ValueError(f"not a YYYY-MM-DD HH:MM:SS date-time: {s[:40]!r}")
    year, month, day, hour, minute, second = map(int, match.groups())
    # datetime() checks the ranges (month 13, Feb 30, hour 24 ...) and raises ValueError.
    return datetime(year, month, day, hour, minute, second)


def formatTime(dt: datetime) -> str:
    """
    Format a date-time the way terminals expect it.

    @param dt: any L{datetime}; its time zone, if any, is ignored (the wall-clock fields are used)
        and microseconds are dropped.
    @return: C{YYYY-MM-DD HH:MM:SS}, zero-padded.
    """
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def normaliseTime(s: str) -> str:
    """
    Validate a protocol date-time and zero-pad it.

    @param s: e.g. C{"2018-11-1 8:5:3"}.
    @return: e.g. C{"2018-11-01 08:05:03"}.
    @raise ValueError: see L{parseTime}.
    """
    if type(s) is str and _CANONICAL_RE.fullmatch(s) is not None:
        return s  # the usual case: nothing to pad, nothing to check further
    return formatTime(parseTime(s))


def parseDate(s: object) -> date:
    """
    Parse a C{getalllog} C{from}/C{to} date.

    @param s: C{YYYY-MM-DD}; the doc's unpadded C{2018-11-1} is accepted (anything else: ValueError).
    @raise ValueError: if C{s} is not a valid date string.
    """
    if not isinstance(s, str):
        raise ValueError(f"expected a date string, got {type(s).__name__}")
    match = _DATE_RE.fullmatch(s)
    if match is None:
        raise ValueError(f"not a YYYY-MM-DD date: {s[:40]!r}")
    year, month, day = (int(g) for g in match.groups())
    return date(year, month, day)


def normaliseDate(s: str) -> str:
    """
    Validate a date and zero-pad it.

    @param s: e.g. C{"2018-11-1"}.
    @return: e.g. C{"2018-11-01"}.
    @raise ValueError: see L{parseDate}.
    """
    d = parseDate(s)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def isValidDate(s: object) -> bool:
    """
    @param s: anything.
    @return: C{True} if C{s} is a date string accepted by L{normaliseDate}.
    """
    try:
        parseDate(s)
    except ValueError:
        return False
    return True


def normaliseMonthDay(s: str) -> str:
    """
    Validate a C{MM-DD} day of the year (birthdays, holidays); 02-29 is allowed.

    @return: the zero-padded C{MM-DD}.
    @raise ValueError: if C{s} is not a valid month and day.
    """
    if not isinstance(s, str):
        raise ValueError(f"expected an MM-DD string, got {type(s).__name__}")
    match = _MONTHDAY_RE.fullmatch(s.strip())
    if match is None:
        raise ValueError(f"not an MM-DD day: {s[:40]!r}")
    month, day = (int(g) for g in match.groups())
    date(2000, month, day)  # a leap year: validates the ranges, 02-29 included
    return f"{month:02d}-{day:02d}"


def cloudTime(nowPosix: float, tz: str | None) -> str:
    """
    The C{cloudtime} to send to a terminal: the current wall-clock time where the terminal is.

    @param nowPosix: the current POSIX time (e.g. C{reactor.seconds()}).
    @param tz: the terminal's IANA time zone (C{"Europe/Paris"}), or C{None} for the server's
        local time zone.
    @return: C{YYYY-MM-DD HH:MM:SS}.
    @raise ValueError: if C{tz} is not a known time zone.
    """
    if tz is None:
        return formatTime(datetime.fromtimestamp(nowPosix))
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"unknown time zone: {tz!r}") from e
    return formatTime(datetime.fromtimestamp(nowPosix, UTC).astimezone(zone))
