"""
Changing access control through the API: rules, holidays, visitor codes, per-group settings.

The API has checked each body's shape against its schema; here are the rules that need the
store (the persons, groups and terminals a rule names exist) or several fields at once.  Every
change reloads the access snapshot (L{tm20.services.access.AccessService.changed}), so the
next decision at a door already follows it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.defer import inlineCallbacks

from tm20.access.device import DevicePlan, DevicePlanError, devicePlan
from tm20.access.model import (
    DAYS,
    UNKNOWN_ALLOW,
    UNKNOWN_DENY,
    AccessRule,
    GroupAccess,
    Holiday,
    QrCode,
    Window,
)
from tm20.access.rules import codeHash

__all__ = ["AccessAdmin", "AccessError"]


class AccessError(Exception):
    """A change refused; C{field} names the offending field."""

    def __init__(self, status: int, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field


def _invalid(detail: str, field: str) -> AccessError:
    return AccessError(400, "invalid_body", detail, field)


#: C{HH:MM} of a window (C{24:00}: the end of the day); the API's schema says the same.
_HHMM = re.compile(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: Any, field: str) -> str:
    """A C{YYYY-MM-DD} day that exists."""
    if not isinstance(value, str) or not _DAY.match(value):
        raise _invalid("must be a day, YYYY-MM-DD", field)
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise _invalid("no such day", field) from None
    return value


def _instant(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 time with its offset (C{Z} or C{+01:00}) as aware UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid("must be an ISO 8601 time, e.g. 2026-12-01T09:00:00+01:00", field) from None
    if when.tzinfo is None:
        raise _invalid("must give its UTC offset (Z or +01:00)", field)
    return when.astimezone(UTC)


class AccessAdmin:
    """The rules of changing access control (see the module docstring)."""

    def __init__(self, store: Any, access: Any, clock: Any, queue: Any = None) -> None:
        self.store = store
        self.access = access
        self.clock = clock
        self.queue = queue

    def devicePlan(self, sn: str) -> DevicePlan:
        """What terminal C{sn} can enforce offline, from the rules in force now."""
        try:
            return devicePlan(self.access.snapshot, sn)
        except DevicePlanError as e:
            raise AccessError(409, "not_expressible", str(e)) from None

    @inlineCallbacks
    def pushDevicePlan(self, sn: str, actor: str | None) -> Any:
        """
        Queue the commands installing L{devicePlan} on C{sn} (through the durable queue: an
        offline terminal gets them when it connects).  @return: C{(plan, commands)}.
        """
        plan = self.devicePlan(sn)
        commands = []
        for name, params in plan.commands():
            command = yield self.queue.submit(sn, name, params, actor, wait=False)
            commands.append(command)
        return plan, commands

    @inlineCallbacks
    def _checkNames(self, body: Mapping[str, Any]) -> Any:
        groups = {g.name for g in (yield self.store.listGroups())}
        for field in ("personGroups", "terminalGroups"):
            for i, name in enumerate(body.get(field, ())):
                if name not in groups:
                    raise _invalid(f"no group {name!r}", f"{field}[{i}]")
        for i, enrollid in enumerate(body.get("persons", ())):
            if (yield self.store.getPerson(enrollid)) is None:
                raise _invalid(f"no person {enrollid}", f"persons[{i}]")
        for i, sn in enumerate(body.get("terminals", ())):
            if (yield self.store.getTerminal(sn)) is None:
                raise _invalid(f"no terminal {sn!r}", f"terminals[{i}]")

    @staticmethod
    def _windows(items: Sequence[Mapping[str, Any]]) -> tuple[Window, ...]:
        windows = []
        for i, item in enumerate(items):
            # the API's schema has checked these already; the console's forms come here as is
            for name in ("start", "end"):
                if not isinstance(item.get(name), str) or not _HHMM.match(item[name]):
                    raise _invalid(
                        "must be a time, HH:MM (24:00: the end of the day)", f"windows[{i}].{name}"
                    )
            if any(day not in DAYS for day in item.get("days", ())):
                raise _invalid(f"days are {', '.join(DAYS)}", f"windows[{i}].days")
            if not item.get("days"):
                raise _invalid("a window names at least one day", f"windows[{i}].days")
            if item["start"] == item["end"]:
                raise _invalid("start and end are the same time: an empty window", f"windows[{i}]")
            if item["start"] == "24:00":
                raise _invalid("a window starts at 23:59 at the latest", f"windows[{i}].start")
            windows.append(Window(days=tuple(item["days"]), start=item["start"], end=item["end"]))
        return tuple(windows)

    @inlineCallbacks
    def _rule(self, body: Mapping[str, Any], ruleId: int) -> Any:
        if not body.get("persons") and not body.get("personGroups"):
            raise _invalid("a rule names at least one person or group of persons", "persons")
        if not body.get("terminals") and not body.get("terminalGroups"):
            raise _invalid("a rule names at least one terminal or group of terminals", "terminals")
        yield self._checkNames(body)
        return AccessRule(
            id=ruleId,
            description=body.get("description"),
            persons=tuple(sorted(set(body.get("persons", ())))),
            personGroups=tuple(sorted(set(body.get("personGroups", ())))),
            terminals=tuple(sorted(set(body.get("terminals", ())))),
            terminalGroups=tuple(sorted(set(body.get("terminalGroups", ())))),
            windows=self._windows(body.get("windows", ())),
            holidays=bool(body.get("holidays", False)),
        )

    @inlineCallbacks
    def createRule(self, body: Mapping[str, Any]) -> Any:
        rule = yield self._rule(body, 0)
        created = yield self.store.putAccessRule(rule, True)
        yield self.access.changed()
        return created

    @inlineCallbacks
    def replaceRule(self, ruleId: int, body: Mapping[str, Any]) -> Any:
        rule = yield self._rule(body, ruleId)
        replaced = yield self.store.putAccessRule(rule, False)
        yield self.access.changed()
        return replaced

    @inlineCallbacks
    def deleteRule(self, ruleId: int) -> Any:
        deleted = yield self.store.deleteAccessRule(ruleId)
        yield self.access.changed()
        return deleted

    @inlineCallbacks
    def addHoliday(self, body: Mapping[str, Any]) -> Any:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
            raise _invalid("a holiday has a name (at most 200 characters)", "name")
        start = _day(body.get("start"), "start")
        end = _day(body.get("end", start), "end")
        if end < start:
            raise _invalid("must not be before start", "end")
        yield self._checkNames({"terminalGroups": body.get("terminalGroups", ())})
        holiday = Holiday(
            id=0,
            name=name.strip(),
            start=start,
            end=end,
            terminalGroups=tuple(sorted(set(body.get("terminalGroups", ())))),
        )
        added = yield self.store.addHoliday(holiday)
        yield self.access.changed()
        return added

    @inlineCallbacks
    def deleteHoliday(self, holidayId: int) -> Any:
        deleted = yield self.store.deleteHoliday(holidayId)
        yield self.access.changed()
        return deleted

    @inlineCallbacks
    def createCode(self, body: Mapping[str, Any]) -> Any:
        """@return: C{(code, text)}: the text is shown once, only its hash is stored."""
        enrollid = body.get("enrollid")
        visitor = body.get("visitorName")
        if (enrollid is None) == (visitor is None):
            raise _invalid("give either enrollid (a person) or visitorName", "visitorName")
        if not body.get("terminals") and not body.get("terminalGroups"):
            raise _invalid("a code opens at least one terminal or group", "terminals")
        if body.get("code") is not None and not 4 <= len(body["code"]) <= 256:
            raise _invalid("a code has 4 to 256 characters", "code")
        if body.get("validUntil") is None:
            raise _invalid("a code is valid until a time", "validUntil")
        now = datetime.fromtimestamp(self.clock.seconds(), UTC)
        validFrom = _instant(body.get("validFrom"), "validFrom") or now
        validUntil = _instant(body["validUntil"], "validUntil")
        assert validUntil is not None
        if validUntil <= validFrom:
            raise _invalid("must be after validFrom", "validUntil")
        yield self._checkNames({k: body[k] for k in ("terminals", "terminalGroups") if k in body})
        if enrollid is not None and (yield self.store.getPerson(enrollid)) is None:
            raise _invalid(f"no person {enrollid}", "enrollid")
        text = body.get("code") or secrets.token_urlsafe(18)
        code = QrCode(
            id=0,
            codeHash=codeHash(text),
            enrollid=enrollid,
            visitorName=visitor,
            validFrom=validFrom,
            validUntil=validUntil,
            terminals=tuple(sorted(set(body.get("terminals", ())))),
            terminalGroups=tuple(sorted(set(body.get("terminalGroups", ())))),
            singleUse=bool(body.get("singleUse", False)),
        )
        try:
            stored = yield self.store.addQrCode(code)
        except ValueError:
            raise AccessError(409, "conflict", "this code exists already", "code") from None
        yield self.access.changed()
        return stored, text

    @inlineCallbacks
    def revokeCode(self, codeId: int) -> Any:
        revoked = yield self.store.revokeQrCode(codeId)
        yield self.access.changed()
        return revoked

    @inlineCallbacks
    def setGroupAccess(self, name: str, body: Mapping[str, Any]) -> Any:
        current = {g.group: g for g in (yield self.store.listGroupAccess())}.get(name)
        for field in ("unknownEnrollid", "unknownCode"):
            if body.get(field, UNKNOWN_DENY) not in (UNKNOWN_DENY, UNKNOWN_ALLOW):
                raise _invalid(f"is {UNKNOWN_DENY} or {UNKNOWN_ALLOW}", field)
        settings = current or GroupAccess(group=name)
        settings = attrs.evolve(
            settings,
            unknownEnrollid=body.get("unknownEnrollid", settings.unknownEnrollid),
            unknownCode=body.get("unknownCode", settings.unknownCode),
        )
        stored = yield self.store.putGroupAccess(settings)
        yield self.access.changed()
        return stored
