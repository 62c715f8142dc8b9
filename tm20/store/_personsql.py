"""
Persons, terminal groups and their sync state, written once for both stores.

Each operation is a generator of statements (see L{tm20.store._ops}, which drives them on
both databases).  A broken constraint (an unknown group or terminal, a taken C{enrollid} or
name) becomes C{ValueError} in both.

Timestamps are passed in (C{now}) and read back (C{time}) in each store's own form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from tm20.events.payloads import personSyncEvent
from tm20.model import (
    SYNC_FAILED,
    SYNC_STATES,
    SYNC_SYNCED,
    Credential,
    Person,
    PersonSync,
    TerminalGroup,
)
from tm20.store._ops import AppendEvents, Op, whereAll

__all__ = [
    "SYNC_STATES",
    "Op",
    "deleteGroup",
    "deletePerson",
    "deletePersonSync",
    "getGroup",
    "getPerson",
    "groupsOfTerminal",
    "listGroups",
    "listPersonSync",
    "listPersons",
    "personsForTerminal",
    "putGroup",
    "putPerson",
    "savePersonSync",
]

Time = Callable[[Any], datetime | None]


# -- persons ---------------------------------------------------------------------------------------

_FOR_TERMINAL = (
    "SELECT enrollid FROM person_terminals WHERE sn = %s"
    " UNION SELECT pg.enrollid FROM person_groups pg"
    " JOIN group_terminals gt ON gt.group_name = pg.group_name WHERE gt.sn = %s"
)


def _loadPersons(where: str, params: Sequence[Any], time: Time) -> Op[list[Person]]:
    """The persons whose C{enrollid} is in the subquery C{where}, by C{enrollid}."""
    rows = (
        yield (f"SELECT * FROM persons WHERE enrollid IN ({where}) ORDER BY enrollid", params)
    ).rows
    if not rows:
        return []
    credentials: dict[int, list[Credential]] = {row["enrollid"]: [] for row in rows}
    groups: dict[int, list[str]] = {row["enrollid"]: [] for row in rows}
    terminals: dict[int, list[str]] = {row["enrollid"]: [] for row in rows}
    for row in (
        yield (
            f"SELECT * FROM person_credentials WHERE enrollid IN ({where})"
            " ORDER BY enrollid, backupnum",
            params,
        )
    ).rows:
        credentials[row["enrollid"]].append(
            Credential(
                backupnum=row["backupnum"],
                record=json.loads(row["record_json"]),
                updatedAt=time(row["updated_at"]),
            )
        )
    for row in (
        yield (
            f"SELECT enrollid, group_name FROM person_groups WHERE enrollid IN ({where})"
            " ORDER BY enrollid, group_name",
            params,
        )
    ).rows:
        groups[row["enrollid"]].append(row["group_name"])
    for row in (
        yield (
            f"SELECT enrollid, sn FROM person_terminals WHERE enrollid IN ({where})"
            " ORDER BY enrollid, sn",
            params,
        )
    ).rows:
        terminals[row["enrollid"]].append(row["sn"])
    return [
        Person(
            enrollid=row["enrollid"],
            name=row["name"],
            admin=row["admin"],
            enabled=bool(row["enabled"]),
            validFrom=row["valid_from"],
            validUntil=row["valid_until"],
            credentials=tuple(credentials[row["enrollid"]]),
            groups=tuple(groups[row["enrollid"]]),
            terminals=tuple(terminals[row["enrollid"]]),
            createdAt=time(row["created_at"]),
            updatedAt=time(row["updated_at"]),
        )
        for row in rows
    ]


def getPerson(enrollid: int, time: Time) -> Op[Person | None]:
    persons = yield from _loadPersons("%s", (enrollid,), time)
    return persons[0] if persons else None


def listPersons(limit: int, afterEnrollid: int | None, time: Time) -> Op[list[Person]]:
    if afterEnrollid is None:
        where = "SELECT enrollid FROM persons ORDER BY enrollid LIMIT %s"
        params: tuple[Any, ...] = (max(limit, 0),)
    else:
        where = "SELECT enrollid FROM persons WHERE enrollid > %s ORDER BY enrollid LIMIT %s"
        params = (afterEnrollid, max(limit, 0))
    return (yield from _loadPersons(where, params, time))


def personsForTerminal(sn: str, time: Time) -> Op[list[Person]]:
    return (yield from _loadPersons(_FOR_TERMINAL, (sn, sn), time))


def terminalsWithPersons(sns: Sequence[str]) -> Op[set[str]]:
    """
    Of C{sns}, those with a person assigned (directly or through a group) or a sync state: the
    others have nothing for the reconciler to look at.
    """
    if not sns:
        return set()
    marks = ", ".join(["%s"] * len(sns))
    rows = (
        yield (
            f"SELECT sn FROM person_sync WHERE sn IN ({marks})"
            f" UNION SELECT sn FROM person_terminals WHERE sn IN ({marks})"
            " UNION SELECT gt.sn FROM group_terminals gt"
            f" JOIN person_groups pg ON pg.group_name = gt.group_name WHERE gt.sn IN ({marks})",
            (*sns, *sns, *sns),
        )
    ).rows
    return {str(row["sn"]) for row in rows}


def putPerson(person: Person, create: bool, now: Any, time: Time) -> Op[Person | None]:
    """Create (C{ValueError} if it exists) or replace (C{None} if absent) a person, whole."""
    values = (
        person.name,
        person.admin,
        bool(person.enabled),
        person.validFrom,
        person.validUntil,
    )
    if create:
        yield (
            "INSERT INTO persons (enrollid, name, admin, enabled, valid_from, valid_until,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (person.enrollid, *values, now, now),
        )
    else:
        changed = yield (
            "UPDATE persons SET name = %s, admin = %s, enabled = %s, valid_from = %s,"
            " valid_until = %s, updated_at = %s WHERE enrollid = %s",
            (*values, now, person.enrollid),
        )
        if changed.rowcount == 0:
            return None
        for table in ("person_credentials", "person_groups", "person_terminals"):
            yield (f"DELETE FROM {table} WHERE enrollid = %s", (person.enrollid,))
    for credential in person.credentials:
        yield (
            "INSERT INTO person_credentials (enrollid, backupnum, record_json, updated_at)"
            " VALUES (%s, %s, %s, %s)",
            (person.enrollid, credential.backupnum, json.dumps(credential.record), now),
        )
    for group in sorted(set(person.groups)):
        yield (
            "INSERT INTO person_groups (enrollid, group_name) VALUES (%s, %s)",
            (person.enrollid, group),
        )
    for sn in sorted(set(person.terminals)):
        yield (
            "INSERT INTO person_terminals (enrollid, sn) VALUES (%s, %s)",
            (person.enrollid, sn),
        )
    return (yield from getPerson(person.enrollid, time))


def deletePerson(enrollid: int) -> Op[bool]:
    result = yield ("DELETE FROM persons WHERE enrollid = %s", (enrollid,))
    return result.rowcount > 0


# -- groups ----------------------------------------------------------------------------------------


def _loadGroups(where: str, params: Sequence[Any], time: Time) -> Op[list[TerminalGroup]]:
    rows = (
        yield (f"SELECT * FROM terminal_groups WHERE name IN ({where}) ORDER BY name", params)
    ).rows
    if not rows:
        return []
    terminals: dict[str, list[str]] = {row["name"]: [] for row in rows}
    for row in (
        yield (
            f"SELECT group_name, sn FROM group_terminals WHERE group_name IN ({where})"
            " ORDER BY group_name, sn",
            params,
        )
    ).rows:
        terminals[row["group_name"]].append(row["sn"])
    return [
        TerminalGroup(
            name=row["name"],
            description=row["description"],
            adoptKeypad=bool(row["adopt_keypad"]),
            terminals=tuple(terminals[row["name"]]),
            createdAt=time(row["created_at"]),
            updatedAt=time(row["updated_at"]),
        )
        for row in rows
    ]


def getGroup(name: str, time: Time) -> Op[TerminalGroup | None]:
    groups = yield from _loadGroups("%s", (name,), time)
    return groups[0] if groups else None


def listGroups(time: Time) -> Op[list[TerminalGroup]]:
    return (yield from _loadGroups("SELECT name FROM terminal_groups", (), time))


def groupsOfTerminal(sn: str, time: Time) -> Op[list[TerminalGroup]]:
    return (
        yield from _loadGroups("SELECT group_name FROM group_terminals WHERE sn = %s", (sn,), time)
    )


def putGroup(group: TerminalGroup, create: bool, now: Any, time: Time) -> Op[TerminalGroup | None]:
    """Create (C{ValueError} if it exists) or replace (C{None} if absent) a group, whole."""
    if create:
        yield (
            "INSERT INTO terminal_groups (name, description, adopt_keypad, created_at,"
            " updated_at) VALUES (%s, %s, %s, %s, %s)",
            (group.name, group.description, bool(group.adoptKeypad), now, now),
        )
    else:
        changed = yield (
            "UPDATE terminal_groups SET description = %s, adopt_keypad = %s, updated_at = %s"
            " WHERE name = %s",
            (group.description, bool(group.adoptKeypad), now, group.name),
        )
        if changed.rowcount == 0:
            return None
        yield ("DELETE FROM group_terminals WHERE group_name = %s", (group.name,))
    for sn in sorted(set(group.terminals)):
        yield (
            "INSERT INTO group_terminals (group_name, sn) VALUES (%s, %s)",
            (group.name, sn),
        )
    return (yield from getGroup(group.name, time))


def deleteGroup(name: str) -> Op[bool]:
    result = yield ("DELETE FROM terminal_groups WHERE name = %s", (name,))
    return result.rowcount > 0


# -- sync state ------------------------------------------------------------------------------------


def savePersonSync(sync: PersonSync, now: Any, time: Time) -> Op[PersonSync]:
    """
    Create or replace the sync state of C{(sn, enrollid)}; when it becomes C{synced} or
    C{failed}, append C{person.synced} / C{person.sync_failed} in the same transaction.
    """
    before = (
        yield (
            "SELECT state FROM person_sync WHERE sn = %s AND enrollid = %s",
            (sync.sn, sync.enrollid),
        )
    ).rows
    previous = before[0]["state"] if before else None
    yield (
        "INSERT INTO person_sync (sn, enrollid, state, owned, detail, commands, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (sn, enrollid) DO UPDATE SET state = excluded.state,"
        " owned = excluded.owned, detail = excluded.detail, commands = excluded.commands,"
        " updated_at = excluded.updated_at",
        (
            sync.sn,
            sync.enrollid,
            sync.state,
            bool(sync.owned),
            json.dumps(dict(sync.detail), ensure_ascii=False, separators=(",", ":")),
            json.dumps(list(sync.commands)),
            now,
        ),
    )
    if sync.state != previous and sync.state in (SYNC_SYNCED, SYNC_FAILED):
        yield AppendEvents((personSyncEvent(sync, previous),), now)
    return attrs.evolve(sync, updatedAt=time(now))


def deletePersonSync(sn: str, enrollid: int) -> Op[bool]:
    result = yield ("DELETE FROM person_sync WHERE sn = %s AND enrollid = %s", (sn, enrollid))
    return result.rowcount > 0


def listPersonSync(sn: str | None, enrollid: int | None, time: Time) -> Op[list[PersonSync]]:
    """The sync states of a terminal, of a person, or all, by C{(sn, enrollid)}."""
    where, params = whereAll([("sn = %s", sn), ("enrollid = %s", enrollid)])
    rows = (yield (f"SELECT * FROM person_sync{where} ORDER BY sn, enrollid", params)).rows
    return [_sync(row, time) for row in rows]


def _sync(row: Mapping[str, Any], time: Time) -> PersonSync:
    detail = json.loads(row["detail"])
    commands: Iterable[int] = json.loads(row["commands"])
    return PersonSync(
        sn=row["sn"],
        enrollid=row["enrollid"],
        state=row["state"],
        owned=bool(row["owned"]),
        detail=detail if isinstance(detail, dict) else {},
        commands=tuple(commands),
        updatedAt=time(row["updated_at"]),
    )
