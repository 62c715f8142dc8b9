"""
What a terminal can enforce by itself (offline): the rules compiled to its lock settings.

The firmware holds (protocol notes §6.4) up to 8 I{day zones} of up to 5 sections
C{HH:MM~HH:MM} (C{setdevlock dayzone}), up to 8 I{week zones} naming a day zone for each day
Monday to Sunday (C{setdevlock weekzone}), and per user a week zone with a start and end time
(C{setuserlock}).  L{devicePlan} turns the rules that apply at one terminal into those, for the
persons the terminal holds (assigned to it directly or through a group): each person's windows
there, merged; a person no rule lets through there gets the week zone that opens never.  Pure.

Not expressible, so not in the plan (the terminal does not know them): holidays, unknown
enrollids allowed, visitor codes, policy plugins.  A terminal whose persons need more than 8
distinct days or weeks, or a day of more than 5 sections, gets no plan (L{DevicePlanError}).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from tm20.access.model import DAYS, PersonAccess, Window
from tm20.access.rules import Snapshot

__all__ = ["DevicePlan", "DevicePlanError", "devicePlan", "NOT_ON_DEVICE"]

#: What the terminal never enforces by itself (stated with every plan).
NOT_ON_DEVICE = (
    "holidays",
    "unknown enrollids allowed",
    "visitor and person codes",
    "policy plugins",
    "per-door rules of 4-door controllers",
)

MAX_ZONES = 8
MAX_SECTIONS = 5
_NEVER = ((0, 0),)  # "00:00~00:00": no access
_DAY_MINUTES = 24 * 60


class DevicePlanError(ValueError):
    """The rules at this terminal need more than its lock settings can hold."""


@attrs.frozen
class DevicePlan:
    """The C{setdevlock} settings and the C{setuserlock} records of one terminal."""

    sn: str
    dayzone: tuple[dict[str, Any], ...]
    weekzone: tuple[dict[str, Any], ...]
    userlocks: tuple[dict[str, Any], ...]

    def commands(self, chunk: int = 40) -> list[tuple[str, dict[str, Any]]]:
        """The commands that install it: C{setdevlock}, then C{setuserlock} by C{chunk}."""
        out: list[tuple[str, dict[str, Any]]] = [
            ("setdevlock", {"dayzone": list(self.dayzone), "weekzone": list(self.weekzone)})
        ]
        for start in range(0, len(self.userlocks), chunk):
            records = list(self.userlocks[start : start + chunk])
            out.append(("setuserlock", {"count": len(records), "record": records}))
        return out


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _sections(windows: Iterable[Window]) -> list[list[tuple[int, int]]]:
    """Per weekday (Monday first), the merged minute ranges C{[start, end)} of C{windows}."""
    days: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for window in windows:
        start, end = _minutes(window.start), _minutes(window.end)
        for name in window.days:
            day = DAYS.index(name)
            if start < end:
                days[day].append((start, end))
            else:  # past midnight
                days[day].append((start, _DAY_MINUTES))
                if end > 0:
                    days[(day + 1) % 7].append((0, end))
    merged: list[list[tuple[int, int]]] = []
    for ranges in days:
        out: list[tuple[int, int]] = []
        for start, end in sorted(ranges):
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged.append(out)
    return merged


def _hhmm(minutes: int) -> str:
    minutes = min(minutes, _DAY_MINUTES - 1)  # the device's last minute is 23:59
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _onTerminal(person: PersonAccess, sn: str, groups: frozenset[str]) -> bool:
    return sn in person.terminals or bool(groups.intersection(person.groups))


def devicePlan(snapshot: Snapshot, sn: str) -> DevicePlan:
    """
    The lock settings of terminal C{sn} (see the module docstring).

    @raise DevicePlanError: more zones or sections than the device holds (naming which).
    """
    groups = snapshot.groupsOf(sn)
    always = [Window(DAYS, "00:00", "24:00")]
    dayIndex: dict[tuple[tuple[int, int], ...], int] = {_NEVER: 1}
    weekIndex: dict[tuple[int, ...], int] = {}
    userlocks: list[dict[str, Any]] = []
    persons = sorted(
        (p for p in snapshot.persons.values() if _onTerminal(p, sn, groups)),
        key=lambda p: p.enrollid,
    )
    for person in persons:
        windows: list[Window] = []
        if person.enabled:
            for rule, (ids, pgroups, terminals, tgroups) in zip(
                snapshot.rules, snapshot.ruleSets(), strict=True
            ):
                if person.enrollid not in ids and not pgroups.intersection(person.groups):
                    continue
                if sn not in terminals and not tgroups.intersection(groups):
                    continue
                windows.extend(rule.windows or always)
        week: list[int] = []
        for day, ranges in zip(DAYS, _sections(windows), strict=True):
            key = tuple(ranges) or _NEVER
            if len(key) > MAX_SECTIONS:
                raise DevicePlanError(
                    f"person {person.enrollid} has {len(key)} time ranges on {day}"
                    f" at {sn}: a terminal holds {MAX_SECTIONS}"
                )
            if key not in dayIndex:
                if len(dayIndex) == MAX_ZONES:
                    raise DevicePlanError(
                        f"the rules at {sn} need more than {MAX_ZONES} distinct days"
                    )
                dayIndex[key] = len(dayIndex) + 1
            week.append(dayIndex[key])
        weekKey = tuple(week)
        if weekKey not in weekIndex:
            if len(weekIndex) == MAX_ZONES:
                raise DevicePlanError(
                    f"the rules at {sn} need more than {MAX_ZONES} distinct weeks"
                )
            weekIndex[weekKey] = len(weekIndex) + 1
        lock: dict[str, Any] = {"enrollid": person.enrollid, "weekzone": weekIndex[weekKey]}
        if person.validFrom is not None:
            lock["starttime"] = person.validFrom
        if person.validUntil is not None:
            lock["endtime"] = person.validUntil
        userlocks.append(lock)
    dayzone = tuple(
        {"day": [{"section": f"{_hhmm(s)}~{_hhmm(e)}"} for s, e in key]}
        for key, _ in sorted(dayIndex.items(), key=lambda item: item[1])
    )
    weekzone = tuple(
        {"week": [{"day": index} for index in key]}
        for key, _ in sorted(weekIndex.items(), key=lambda item: item[1])
    )
    return DevicePlan(sn=sn, dayzone=dayzone, weekzone=weekzone, userlocks=tuple(userlocks))
