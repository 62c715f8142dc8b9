"""
Rule evaluation over an in-memory L{Snapshot}: no database read at the door.

Times: C{local} is the terminal's wall-clock time now (its own time zone, as a naive
C{datetime}); C{now} the same instant in aware UTC (visitor codes are valid between two
instants).  Person validity and holidays are terminal-local, like the persons API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime

import attrs

from tm20.access.model import (
    DAYS,
    REASON_DISABLED,
    REASON_EXPIRED,
    REASON_HOLIDAY,
    REASON_QR_DOOR,
    REASON_QR_EXPIRED,
    REASON_QR_REVOKED,
    REASON_QR_UNKNOWN,
    REASON_QR_USED,
    REASON_QR_VALID,
    REASON_RULE,
    REASON_UNKNOWN,
    REASON_WINDOW,
    UNKNOWN_ALLOW,
    AccessRule,
    Decision,
    GroupAccess,
    Holiday,
    PersonAccess,
    QrCode,
    Window,
)

__all__ = ["Snapshot", "codeHash", "decideCode", "decidePerson", "inWindow", "localText"]


@attrs.frozen
class Snapshot:
    """Everything a decision reads, loaded at start and refreshed on change."""

    persons: Mapping[int, PersonAccess] = attrs.field(factory=dict)
    rules: tuple[AccessRule, ...] = ()
    holidays: tuple[Holiday, ...] = ()
    #: visitor and person codes by the sha256 of their text (revoked ones included)
    codes: Mapping[str, QrCode] = attrs.field(factory=dict)
    #: enrollids by PIN (a person's password credential, slot 10)
    pins: Mapping[str, tuple[int, ...]] = attrs.field(factory=dict)
    #: the groups of each terminal
    terminalGroups: Mapping[str, frozenset[str]] = attrs.field(factory=dict)
    groupAccess: Mapping[str, GroupAccess] = attrs.field(factory=dict)
    #: per rule: its persons, person groups, terminals and terminal groups as sets (a rule may
    #: name thousands of doors: membership must not scan a list)
    _sets: tuple[tuple[frozenset[int], frozenset[str], frozenset[str], frozenset[str]], ...] = (
        attrs.field(init=False, repr=False, eq=False)
    )
    #: the terminals and the terminal groups that a rule, a code (not revoked) or a group
    #: access setting names: the doors under access control (L{controls})
    _coveredTerminals: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    _coveredGroups: frozenset[str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(
            self,
            "_sets",
            tuple(
                (
                    frozenset(r.persons),
                    frozenset(r.personGroups),
                    frozenset(r.terminals),
                    frozenset(r.terminalGroups),
                )
                for r in self.rules
            ),
        )
        live = [c for c in self.codes.values() if c.revokedAt is None]
        object.__setattr__(
            self,
            "_coveredTerminals",
            frozenset(sn for r in self.rules for sn in r.terminals).union(
                sn for c in live for sn in c.terminals
            ),
        )
        object.__setattr__(
            self,
            "_coveredGroups",
            frozenset(g for r in self.rules for g in r.terminalGroups)
            .union(g for c in live for g in c.terminalGroups)
            .union(self.groupAccess),
        )

    def ruleSets(
        self,
    ) -> tuple[tuple[frozenset[int], frozenset[str], frozenset[str], frozenset[str]], ...]:
        """L{rules}' membership sets, in the same order."""
        return self._sets

    def controls(self, sn: str) -> bool:
        """
        C{True} when door C{sn} is under access control: an access rule, a code that is not
        revoked, or a group access setting names it, directly or through one of its groups.
        """
        return sn in self._coveredTerminals or not self._coveredGroups.isdisjoint(self.groupsOf(sn))

    def groupsOf(self, sn: str) -> frozenset[str]:
        return self.terminalGroups.get(sn, frozenset())

    def allowsUnknown(self, sn: str, what: str) -> bool:
        """C{True} when a group of door C{sn} lets an unknown C{enrollid} or C{code} pass."""
        for group in self.groupsOf(sn):
            settings = self.groupAccess.get(group)
            if settings is None:
                continue
            value = settings.unknownEnrollid if what == "enrollid" else settings.unknownCode
            if value == UNKNOWN_ALLOW:
                return True
        return False

    def withCodeUsed(self, qrcodeId: int, sn: str, when: datetime) -> Snapshot:
        """This snapshot with code C{qrcodeId} marked used (at once, before any refresh)."""
        codes = dict(self.codes)
        for text, code in codes.items():
            if code.id == qrcodeId:
                codes[text] = attrs.evolve(code, usedAt=when, usedSn=sn)
        return attrs.evolve(self, codes=codes)


def codeHash(text: str) -> str:
    """The sha256 (hex) under which a code is stored and looked up."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def localText(local: datetime) -> str:
    """C{YYYY-MM-DD HH:MM:SS}, the form of terminal-local times."""
    return local.strftime("%Y-%m-%d %H:%M:%S")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def inWindow(window: Window, local: datetime) -> bool:
    """C{True} when terminal-local C{local} falls in C{window}."""
    start, end = _minutes(window.start), _minutes(window.end)
    now = local.hour * 60 + local.minute
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    if start < end:
        return today in window.days and start <= now < end
    # past midnight: from start on one of its days until end on the next day
    return (today in window.days and now >= start) or (yesterday in window.days and now < end)


def _isHoliday(holidays: Iterable[Holiday], groups: frozenset[str], day: str) -> bool:
    for holiday in holidays:
        if holiday.start <= day <= holiday.end and (
            not holiday.terminalGroups or groups.intersection(holiday.terminalGroups)
        ):
            return True
    return False


def _atDoor(
    sn: str, groups: frozenset[str], terminals: Iterable[str], tgroups: Iterable[str]
) -> bool:
    return sn in terminals or bool(groups.intersection(tgroups))


def _personState(person: PersonAccess, local: datetime) -> str | None:
    """The reason C{person} can never pass now (disabled, expired), or C{None}."""
    if not person.enabled:
        return REASON_DISABLED
    now = localText(local)
    if (person.validFrom is not None and now < person.validFrom) or (
        person.validUntil is not None and now > person.validUntil
    ):
        return REASON_EXPIRED
    return None


def decidePerson(snapshot: Snapshot, sn: str, enrollid: int, local: datetime) -> Decision:
    """
    May person C{enrollid} pass door C{sn} at terminal-local time C{local}?

    Unknown: denied unless a group of the door allows unknown enrollids.  Disabled, outside
    its validity: denied.  Otherwise granted by the first rule covering the person at this door
    whose window holds now (and, on a holiday, that covers holidays); denied C{rule} when no
    rule covers the person here, C{holiday} or C{window} when rules do but not now.
    """
    person = snapshot.persons.get(enrollid)
    if person is None:
        return Decision(snapshot.allowsUnknown(sn, "enrollid"), REASON_UNKNOWN, enrollid=enrollid)
    decision = Decision(False, REASON_RULE, enrollid=enrollid, name=person.name)
    blocked = _personState(person, local)
    if blocked is not None:
        return decision.denied(blocked)
    groups = snapshot.groupsOf(sn)
    holiday = _isHoliday(snapshot.holidays, groups, local.strftime("%Y-%m-%d"))
    reason = REASON_RULE
    for rule in snapshot.rules:
        if enrollid not in rule.persons and not set(person.groups).intersection(rule.personGroups):
            continue
        if not _atDoor(sn, groups, rule.terminals, rule.terminalGroups):
            continue
        if rule.windows and not any(inWindow(w, local) for w in rule.windows):
            reason = REASON_WINDOW if reason != REASON_HOLIDAY else reason
            continue
        if holiday and not rule.holidays:
            reason = REASON_HOLIDAY
            continue
        return attrs.evolve(decision, granted=True, reason=REASON_RULE, ruleId=rule.id)
    return decision.denied(reason)


def decideCode(
    snapshot: Snapshot, sn: str, text: str, local: datetime, now: datetime, pin: bool = False
) -> Decision:
    """
    May code C{text} (scanned, or typed when C{pin}) open door C{sn} now?

    A stored code passes at its doors, within its validity, once if single-use (the caller
    consumes it in the transaction that records the decision: L{Decision.consume}); a
    person's code also needs the person enabled and within its validity.  A PIN no code has is
    looked up among the persons' password credentials and decided by the rules, as a punch.
    """
    code = snapshot.codes.get(codeHash(text))
    if code is None:
        if pin:
            owners = snapshot.pins.get(text, ())
            if len(owners) == 1:
                return decidePerson(snapshot, sn, owners[0], local)
        return Decision(snapshot.allowsUnknown(sn, "code"), REASON_QR_UNKNOWN)
    decision = Decision(
        False, REASON_QR_VALID, enrollid=code.enrollid, name=code.visitorName, qrcodeId=code.id
    )
    if code.revokedAt is not None:
        return decision.denied(REASON_QR_REVOKED)
    if (code.validFrom is not None and now < code.validFrom) or (
        code.validUntil is not None and now >= code.validUntil
    ):
        return decision.denied(REASON_QR_EXPIRED)
    if not _atDoor(sn, snapshot.groupsOf(sn), code.terminals, code.terminalGroups):
        return decision.denied(REASON_QR_DOOR)
    if code.singleUse and code.usedAt is not None:
        return decision.denied(REASON_QR_USED)
    if code.enrollid is not None:
        person = snapshot.persons.get(code.enrollid)
        if person is None:
            return decision.denied(REASON_QR_UNKNOWN)
        decision = attrs.evolve(decision, name=person.name)
        blocked = _personState(person, local)
        if blocked is not None:
            return decision.denied(blocked)
    return attrs.evolve(decision, granted=True, consume=code.singleUse)
