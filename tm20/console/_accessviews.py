"""
What the console's access pages show, worked out from the store's values, and the rule form
read back into the body L{tm20.services.accessadmin.AccessAdmin} takes: a rule's who, where and
when as text, a code's state, a decision's row, a refused field mapped to the form's field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tm20.access.device import NOT_ON_DEVICE, DevicePlan
from tm20.access.model import DAYS, AccessRule, QrCode, Window
from tm20.services.errors import ServiceError

__all__ = [
    "RULE_ROWS",
    "codeRow",
    "codeState",
    "decisionRow",
    "formField",
    "planView",
    "ruleBody",
    "ruleForm",
    "submittedRule",
    "ruleRow",
    "windowText",
]

#: Empty window rows offered below a rule's windows (the form works without JavaScript).
RULE_ROWS = 3


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def windowText(window: Window) -> str:
    days = [DAYS.index(d) for d in window.days if d in DAYS]
    # consecutive days as a range: mon-fri
    parts: list[str] = []
    run: list[int] = []
    for day in sorted(days):
        if run and day != run[-1] + 1:
            parts.append(_run(run))
            run = []
        run.append(day)
    if run:
        parts.append(_run(run))
    return f"{', '.join(parts)} {window.start}–{window.end}"


def _run(run: list[int]) -> str:
    if len(run) >= 3:
        return f"{DAYS[run[0]]}–{DAYS[run[-1]]}"
    return ", ".join(DAYS[d] for d in run)


def ruleRow(rule: AccessRule, names: Mapping[int, str]) -> dict[str, Any]:
    """A rule in the list: who, where, when as text."""
    persons = [f"{names[p]} ({p})" if p in names else str(p) for p in rule.persons]
    return {
        "id": rule.id,
        "description": rule.description or "",
        "persons": persons,
        "personGroups": list(rule.personGroups),
        "terminals": list(rule.terminals),
        "terminalGroups": list(rule.terminalGroups),
        "windows": [windowText(w) for w in rule.windows] or ["at any time"],
        "holidays": rule.holidays,
        "updated": _iso(rule.updatedAt or rule.createdAt),
    }


def ruleForm(rule: AccessRule | None) -> dict[str, Any]:
    """The form's values for C{rule} (C{None}: a new rule), with blank window rows."""
    windows: list[dict[str, Any]] = []
    if rule is not None:
        windows = [{"days": list(w.days), "start": w.start, "end": w.end} for w in rule.windows]
    blank: list[dict[str, Any]] = [{"days": [], "start": "", "end": ""}]
    return {
        "description": (rule.description or "") if rule else "",
        "persons": [str(p) for p in rule.persons] if rule else [],
        "personGroups": list(rule.personGroups) if rule else [],
        "terminals": list(rule.terminals) if rule else [],
        "terminalGroups": list(rule.terminalGroups) if rule else [],
        "holidays": rule.holidays if rule else False,
        "windows": windows + blank * RULE_ROWS,
    }


def submittedRule(values: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The submitted form (C{values}: each field's values), to show again and to read."""

    def one(name: str) -> str:
        found = values.get(name) or [""]
        return found[-1].strip()

    form: dict[str, Any] = {
        "description": one("description"),
        "persons": [v for v in values.get("persons", []) if v],
        "personGroups": [v for v in values.get("personGroups", []) if v],
        "terminals": [v for v in values.get("terminals", []) if v],
        "terminalGroups": [v for v in values.get("terminalGroups", []) if v],
        "holidays": one("holidays") == "on",
        "windows": [],
    }
    rows = one("rows")
    for i in range(min(int(rows), 50) if rows.isdigit() else 0):
        form["windows"].append(
            {
                "days": [d for d in values.get(f"w{i}-days", []) if d],
                "start": one(f"w{i}-start"),
                "end": one(f"w{i}-end"),
            }
        )
    return form


def ruleBody(form: Mapping[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """
    The service's body of a submitted form (L{submittedRule}), and for each window of the body
    the form row it came from.  A row without days and times is left out; the service judges
    the rest.
    """
    windows: list[dict[str, Any]] = []
    origin: list[int] = []
    for i, row in enumerate(form["windows"]):
        if row["days"] or row["start"] or row["end"]:
            windows.append(dict(row))
            origin.append(i)
    persons: list[int] = []
    for value in form["persons"]:
        if not value.isdigit():
            raise ServiceError(400, "invalid_form", "must be enroll ids", field="persons")
        persons.append(int(value))
    body = {
        "description": form["description"] or None,
        "persons": persons,
        "personGroups": form["personGroups"],
        "terminals": form["terminals"],
        "terminalGroups": form["terminalGroups"],
        "windows": windows,
        "holidays": form["holidays"],
    }
    return body, origin


_FIELD = re.compile(r"^([A-Za-z]+)(?:\[(\d+)\])?(?:\.([A-Za-z]+))?$")


def formField(field: str | None, origin: Sequence[int] = ()) -> str:
    """
    The form field a service's refusal names (C{persons[2]}: C{persons};
    C{windows[1].start}: the row of the form the second window came from, C{w3}).
    """
    if not field:
        return "form"
    match = _FIELD.match(field)
    if match is None:
        return "form"
    name, index = match.group(1), match.group(2)
    if name == "windows" and index is not None:
        i = int(index)
        return f"w{origin[i] if i < len(origin) else i}"
    return name


def codeState(code: QrCode, now: datetime) -> str:
    """C{revoked}, C{used} (a single-use code), C{expired}, C{scheduled} (not yet) or C{valid}."""
    if code.revokedAt is not None:
        return "revoked"
    if code.singleUse and code.usedAt is not None:
        return "used"
    if code.validUntil is not None and code.validUntil <= now:
        return "expired"
    if code.validFrom is not None and code.validFrom > now:
        return "scheduled"
    return "valid"


def codeRow(code: QrCode, now: datetime, names: Mapping[int, str]) -> dict[str, Any]:
    if code.enrollid is not None:
        holder = f"{names.get(code.enrollid, 'person')} ({code.enrollid})"
    else:
        holder = f"visitor {code.visitorName}"
    return {
        "id": code.id,
        "holder": holder,
        "state": codeState(code, now),
        "validFrom": _iso(code.validFrom),
        "validUntil": _iso(code.validUntil),
        "doors": [*code.terminals, *(f"group {g}" for g in code.terminalGroups)],
        "singleUse": code.singleUse,
        "used": f"{_iso(code.usedAt)} at {code.usedSn}" if code.usedAt else "",
    }


def decisionRow(
    kind: str,
    sn: str,
    enrollid: int | None,
    granted: bool | None,
    reason: str | None,
    time: str,
    names: Mapping[int, str],
) -> dict[str, Any]:
    person = ""
    if enrollid is not None:
        person = f"{names[enrollid]} ({enrollid})" if enrollid in names else str(enrollid)
    return {
        "kind": kind,
        "sn": sn,
        "person": person,
        "decision": "granted" if granted else "denied",
        "reason": reason or "",
        "time": time,
    }


def codeDecisionTime(value: str | None) -> str:
    """A code decision's C{decidedAt} (ISO, UTC) as the page shows times."""
    if not value:
        return ""
    return _iso(datetime.fromisoformat(value))


def planView(plan: DevicePlan) -> dict[str, Any]:
    return {
        "dayzones": len(plan.dayzone),
        "weekzones": len(plan.weekzone),
        "userlocks": len(plan.userlocks),
        "commands": len(plan.commands()),
        "notOnDevice": list(NOT_ON_DEVICE),
    }
