"""
Access control rows (rules, holidays, codes, group settings) and the recording of decisions,
written once for both stores as operations of L{tm20.store._personsql} (generators of
C{(sql, params)} run by C{runSync} / C{runAsync} in one transaction).

A decided punch is written here, not through the log queue: one row with its decision, its
C{log.created} event and its C{access.*} event, in one transaction; the batch path
(L{tm20.interfaces.IStore.addLogs}) is unchanged and leaves the decision columns NULL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from tm20.access.model import (
    AccessRule,
    Decision,
    GroupAccess,
    Holiday,
    PersonAccess,
    QrCode,
    Window,
)
from tm20.access.rules import Snapshot
from tm20.events.payloads import accessEvent, logEvent
from tm20.protocol.messages import LogRecord
from tm20.store._ops import AppendEvents, Op
from tm20.store._personsql import Time
from tm20.store._rows import logRecordColumns

__all__ = [
    "addCode",
    "addHoliday",
    "deleteHoliday",
    "deleteRule",
    "getCode",
    "getRule",
    "listCodes",
    "listDecisions",
    "listGroupAccess",
    "listHolidays",
    "listRules",
    "loadSnapshot",
    "markFallback",
    "putGroupAccess",
    "putRule",
    "recordCode",
    "recordPunch",
    "recordPunches",
    "revokeCode",
]


def _list(text: Any) -> list[Any]:
    value = json.loads(text) if isinstance(text, str) else text
    return value if isinstance(value, list) else []


def _dump(values: Sequence[Any]) -> str:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


# -- rules ---------------------------------------------------------------------------------------


def _rule(row: Mapping[str, Any], time: Time) -> AccessRule:
    return AccessRule(
        id=row["id"],
        description=row["description"],
        persons=tuple(_list(row["persons"])),
        personGroups=tuple(_list(row["person_groups"])),
        terminals=tuple(_list(row["terminals"])),
        terminalGroups=tuple(_list(row["terminal_groups"])),
        windows=tuple(
            Window(days=tuple(w["days"]), start=w["start"], end=w["end"])
            for w in _list(row["windows"])
        ),
        holidays=bool(row["holidays"]),
        createdAt=time(row["created_at"]),
        updatedAt=time(row["updated_at"]),
    )


def _ruleValues(rule: AccessRule) -> tuple[Any, ...]:
    return (
        rule.description,
        _dump(rule.persons),
        _dump(rule.personGroups),
        _dump(rule.terminals),
        _dump(rule.terminalGroups),
        _dump([{"days": list(w.days), "start": w.start, "end": w.end} for w in rule.windows]),
        bool(rule.holidays),
    )


def listRules(time: Time) -> Op[list[AccessRule]]:
    rows = (yield ("SELECT * FROM access_rules ORDER BY id", ())).rows
    return [_rule(row, time) for row in rows]


def getRule(ruleId: int, time: Time) -> Op[AccessRule | None]:
    rows = (yield ("SELECT * FROM access_rules WHERE id = %s", (ruleId,))).rows
    return _rule(rows[0], time) if rows else None


def putRule(rule: AccessRule, create: bool, now: Any, time: Time) -> Op[AccessRule | None]:
    """Create a rule (its C{id} is ignored) or replace rule C{rule.id} whole (C{None}: absent)."""
    if create:
        rows = (
            yield (
                "INSERT INTO access_rules (description, persons, person_groups, terminals,"
                " terminal_groups, windows, holidays, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (*_ruleValues(rule), now, now),
            )
        ).rows
        ruleId = rows[0]["id"]
    else:
        changed = yield (
            "UPDATE access_rules SET description = %s, persons = %s, person_groups = %s,"
            " terminals = %s, terminal_groups = %s, windows = %s, holidays = %s,"
            " updated_at = %s WHERE id = %s",
            (*_ruleValues(rule), now, rule.id),
        )
        if changed.rowcount == 0:
            return None
        ruleId = rule.id
    return (yield from getRule(ruleId, time))


def deleteRule(ruleId: int) -> Op[bool]:
    return (yield ("DELETE FROM access_rules WHERE id = %s", (ruleId,))).rowcount > 0


# -- holidays ------------------------------------------------------------------------------------


def _holiday(row: Mapping[str, Any], time: Time) -> Holiday:
    return Holiday(
        id=row["id"],
        name=row["name"],
        start=row["start_day"],
        end=row["end_day"],
        terminalGroups=tuple(_list(row["terminal_groups"])),
        createdAt=time(row["created_at"]),
    )


def listHolidays(time: Time) -> Op[list[Holiday]]:
    rows = (yield ("SELECT * FROM access_holidays ORDER BY start_day, id", ())).rows
    return [_holiday(row, time) for row in rows]


def addHoliday(holiday: Holiday, now: Any, time: Time) -> Op[Holiday]:
    rows = (
        yield (
            "INSERT INTO access_holidays (name, start_day, end_day, terminal_groups, created_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (holiday.name, holiday.start, holiday.end, _dump(holiday.terminalGroups), now),
        )
    ).rows
    return _holiday(rows[0], time)


def deleteHoliday(holidayId: int) -> Op[bool]:
    return (yield ("DELETE FROM access_holidays WHERE id = %s", (holidayId,))).rowcount > 0


# -- codes ---------------------------------------------------------------------------------------


def _code(row: Mapping[str, Any], time: Time) -> QrCode:
    return QrCode(
        id=row["id"],
        codeHash=row["code_sha256"],
        enrollid=row["enrollid"],
        visitorName=row["visitor_name"],
        validFrom=time(row["valid_from"]),
        validUntil=time(row["valid_until"]),
        terminals=tuple(_list(row["terminals"])),
        terminalGroups=tuple(_list(row["terminal_groups"])),
        singleUse=bool(row["single_use"]),
        usedAt=time(row["used_at"]),
        usedSn=row["used_sn"],
        revokedAt=time(row["revoked_at"]),
        createdAt=time(row["created_at"]),
    )


def addCode(code: QrCode, validFrom: Any, validUntil: Any, now: Any, time: Time) -> Op[QrCode]:
    """Store C{code} (its times given in the store's form); a code already stored: C{ValueError}."""
    rows = (
        yield (
            "INSERT INTO access_qrcodes (code_sha256, enrollid, visitor_name, valid_from,"
            " valid_until, terminals, terminal_groups, single_use, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (
                code.codeHash,
                code.enrollid,
                code.visitorName,
                validFrom,
                validUntil,
                _dump(code.terminals),
                _dump(code.terminalGroups),
                bool(code.singleUse),
                now,
            ),
        )
    ).rows
    return _code(rows[0], time)


def getCode(codeId: int, time: Time) -> Op[QrCode | None]:
    rows = (yield ("SELECT * FROM access_qrcodes WHERE id = %s", (codeId,))).rows
    return _code(rows[0], time) if rows else None


def listCodes(limit: int, afterId: int | None, time: Time) -> Op[list[QrCode]]:
    rows = (
        yield (
            "SELECT * FROM access_qrcodes WHERE id > %s ORDER BY id LIMIT %s",
            (afterId or 0, max(limit, 0)),
        )
    ).rows
    return [_code(row, time) for row in rows]


def revokeCode(codeId: int, now: Any, time: Time) -> Op[QrCode | None]:
    """Revoke code C{codeId} (kept, for the decisions that name it); C{None}: no such code."""
    yield (
        "UPDATE access_qrcodes SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
        (now, codeId),
    )
    return (yield from getCode(codeId, time))


# -- group settings ------------------------------------------------------------------------------


def _groupAccess(row: Mapping[str, Any], time: Time) -> GroupAccess:
    return GroupAccess(
        group=row["group_name"],
        unknownEnrollid=row["unknown_enrollid"],
        unknownCode=row["unknown_code"],
        updatedAt=time(row["updated_at"]),
    )


def listGroupAccess(time: Time) -> Op[list[GroupAccess]]:
    rows = (yield ("SELECT * FROM access_group_settings ORDER BY group_name", ())).rows
    return [_groupAccess(row, time) for row in rows]


def putGroupAccess(settings: GroupAccess, now: Any, time: Time) -> Op[GroupAccess]:
    """Set a group's settings (an unknown group: C{ValueError}, a broken foreign key)."""
    rows = (
        yield (
            "INSERT INTO access_group_settings (group_name, unknown_enrollid, unknown_code,"
            " updated_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (group_name) DO UPDATE SET unknown_enrollid = excluded.unknown_enrollid,"
            " unknown_code = excluded.unknown_code, updated_at = excluded.updated_at"
            " RETURNING *",
            (settings.group, settings.unknownEnrollid, settings.unknownCode, now),
        )
    ).rows
    return _groupAccess(rows[0], time)


# -- the snapshot --------------------------------------------------------------------------------


def loadSnapshot(time: Time) -> Op[Snapshot]:
    """Everything a decision reads, in one transaction (one consistent view)."""
    persons: dict[int, PersonAccess] = {}
    groups: dict[int, list[str]] = {}
    for row in (yield ("SELECT enrollid, group_name FROM person_groups", ())).rows:
        groups.setdefault(row["enrollid"], []).append(row["group_name"])
    assigned: dict[int, list[str]] = {}
    for row in (yield ("SELECT enrollid, sn FROM person_terminals", ())).rows:
        assigned.setdefault(row["enrollid"], []).append(row["sn"])
    for row in (
        yield ("SELECT enrollid, name, enabled, valid_from, valid_until FROM persons", ())
    ).rows:
        enrollid = row["enrollid"]
        persons[enrollid] = PersonAccess(
            enrollid=enrollid,
            name=row["name"],
            enabled=bool(row["enabled"]),
            validFrom=row["valid_from"],
            validUntil=row["valid_until"],
            groups=tuple(groups.get(enrollid, ())),
            terminals=tuple(assigned.get(enrollid, ())),
        )
    pins: dict[str, list[int]] = {}
    for row in (
        yield ("SELECT enrollid, record_json FROM person_credentials WHERE backupnum = 10", ())
    ).rows:
        pins.setdefault(str(json.loads(row["record_json"])), []).append(row["enrollid"])
    terminalGroups: dict[str, set[str]] = {}
    for row in (yield ("SELECT group_name, sn FROM group_terminals", ())).rows:
        terminalGroups.setdefault(row["sn"], set()).add(row["group_name"])
    rules = yield from listRules(time)
    holidays = yield from listHolidays(time)
    codes = [
        _code(row, time) for row in (yield ("SELECT * FROM access_qrcodes ORDER BY id", ())).rows
    ]
    settings = yield from listGroupAccess(time)
    return Snapshot(
        persons=persons,
        rules=tuple(rules),
        holidays=tuple(holidays),
        codes={code.codeHash: code for code in codes},
        pins={pin: tuple(owners) for pin, owners in pins.items()},
        terminalGroups={sn: frozenset(names) for sn, names in terminalGroups.items()},
        groupAccess={s.group: s for s in settings},
    )


# -- decisions -----------------------------------------------------------------------------------

_INSERT_DECIDED_LOG = (
    "INSERT INTO attendance_logs (sn, enrollid, time, mode, inout, event, temp, verifymode,"
    " image, extra, received_at, access_granted, access_reason)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (sn, enrollid, time, mode, inout, event) DO NOTHING RETURNING id"
)


def recordPunch(
    sn: str,
    record: LogRecord,
    decision: Decision,
    timezone: str | None,
    now: Any,
    receivedAt: str,
) -> Op[int | None]:
    """
    Store a real-time punch with its decision, its C{log.created} and its C{access.*} event,
    in one transaction.

    @return: the log's id, or C{None} when the record was already stored (a resend: nothing
        written, no event).
    """
    rows = (
        yield (
            _INSERT_DECIDED_LOG,
            (
                sn,
                *logRecordColumns(record),
                now,
                bool(decision.granted),
                decision.reason,
            ),
        )
    ).rows
    if not rows:
        return None
    logId = int(rows[0]["id"])
    fields = {
        "enrollid": record.enrollid,
        "time": record.time,
        "mode": record.mode,
        "inout": record.inout,
        "event": record.event,
        "temp": record.temp,
        "verifymode": record.verifymode,
        "image": record.image,
        "extra": dict(record.extra),
    }
    yield AppendEvents(
        (
            logEvent(sn, logId, fields, receivedAt, timezone),
            accessEvent(
                sn,
                "log",
                decision,
                receivedAt,
                logId=logId,
                time=record.time,
                timezone=timezone,
            ),
        ),
        now,
    )
    return logId


def recordPunches(
    punches: Sequence[tuple[str, LogRecord, Decision, str | None]], now: Any, receivedAt: str
) -> Op[list[int | None]]:
    """
    L{recordPunch} for several punches (of several doors) in one transaction: the group commit
    of real-time punches.  In key order, so concurrent transactions lock rows alike.

    @return: each punch's log id (or C{None}), in the order given.
    """
    order = sorted(
        range(len(punches)),
        key=lambda i: (punches[i][0], *punches[i][1].key()),
    )
    ids: list[int | None] = [None] * len(punches)
    for i in order:
        sn, record, decision, timezone = punches[i]
        ids[i] = yield from recordPunch(sn, record, decision, timezone, now, receivedAt)
    return ids


def recordCode(
    sn: str, kind: str, decision: Decision, now: Any, decidedAt: str
) -> Op[tuple[Decision, int]]:
    """
    Record a decision on a code (C{kind} C{qrcode} or C{pin}) with its C{access.*} event; a
    single-use code it grants is consumed by a conditional C{UPDATE} in the same transaction,
    so two doors cannot both use it: the second finds it used and is denied C{qr_used}.

    @return: the decision as recorded (maybe turned into that denial) and its id.
    """
    if decision.granted and decision.consume:
        used = yield (
            "UPDATE access_qrcodes SET used_at = %s, used_sn = %s"
            " WHERE id = %s AND used_at IS NULL AND revoked_at IS NULL",
            (now, sn, decision.qrcodeId),
        )
        if used.rowcount == 0:
            decision = decision.denied("qr_used")
    rows = (
        yield (
            "INSERT INTO access_decisions (sn, kind, enrollid, qrcode_id, rule_id, granted,"
            " reason, decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                sn,
                kind,
                decision.enrollid,
                decision.qrcodeId,
                decision.ruleId,
                bool(decision.granted),
                decision.reason,
                now,
            ),
        )
    ).rows
    decisionId = int(rows[0]["id"])
    if decision.granted and decision.consume:
        yield (
            "UPDATE access_qrcodes SET used_decision = %s WHERE id = %s",
            (decisionId, decision.qrcodeId),
        )
    yield AppendEvents((accessEvent(sn, kind, decision, decidedAt, decisionId=decisionId),), now)
    return decision, decisionId


def markFallback(
    sn: str, kind: str, recordId: int, decision: Decision, now: Any, decidedAt: str
) -> Op[None]:
    """
    The door was answered with fallback C{decision} after all (the first decision's commit
    came too late): record it on the log (C{kind} C{log}) or code decision, give back a
    single-use code the late commit consumed, and append the corrected C{access.*} event.
    """
    if kind == "log":
        yield (
            "UPDATE attendance_logs SET access_granted = %s, access_reason = %s WHERE id = %s",
            (bool(decision.granted), decision.reason, recordId),
        )
        event = accessEvent(sn, kind, decision, decidedAt, logId=recordId, replaces=True)
    else:
        yield (
            "UPDATE access_decisions SET granted = %s, reason = %s WHERE id = %s",
            (bool(decision.granted), decision.reason, recordId),
        )
        if not decision.granted:
            yield (
                "UPDATE access_qrcodes SET used_at = NULL, used_sn = NULL, used_decision = NULL"
                " WHERE used_decision = %s",
                (recordId,),
            )
        event = accessEvent(sn, kind, decision, decidedAt, decisionId=recordId, replaces=True)
    yield AppendEvents((event,), now)


def listDecisions(
    sn: str | None, limit: int, beforeId: int | None, time: Time, granted: bool | None = None
) -> Op[list[dict[str, Any]]]:
    """
    Code decisions, newest first (C{id} below C{beforeId}), of one terminal or all; only the
    granted (or the denied) ones when C{granted} is given.
    """
    conditions = ["id < %s"]
    params: list[Any] = [beforeId if beforeId is not None else 2**63 - 1]
    if sn is not None:
        conditions.append("sn = %s")
        params.append(sn)
    if granted is not None:
        conditions.append("granted = %s")
        params.append(bool(granted))
    params.append(max(limit, 0))
    rows = (
        yield (
            f"SELECT * FROM access_decisions WHERE {' AND '.join(conditions)}"
            " ORDER BY id DESC LIMIT %s",
            params,
        )
    ).rows
    out: list[dict[str, Any]] = []
    for row in rows:
        decidedAt: datetime | None = time(row["decided_at"])
        out.append(
            {
                "id": row["id"],
                "sn": row["sn"],
                "kind": row["kind"],
                "enrollid": row["enrollid"],
                "qrcodeId": row["qrcode_id"],
                "ruleId": row["rule_id"],
                "granted": bool(row["granted"]),
                "reason": row["reason"],
                "decidedAt": None if decidedAt is None else decidedAt.isoformat(),
            }
        )
    return out
