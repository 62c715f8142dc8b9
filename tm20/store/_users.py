"""
L{tm20.interfaces.IUserStore} (the users each terminal holds and their credential slots),
written once for both stores (see L{tm20.store._ops}).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail

from tm20.events.payloads import userEvent
from tm20.model import Credential, User
from tm20.protocol.messages import BACKUPNUM_ALL_FINGERPRINTS, BACKUPNUM_EVERYTHING
from tm20.protocol.storable import requireStorableUser
from tm20.store._dialect import Dialect
from tm20.store._ops import AppendEvents, BrokenConstraint, Op, OpStore, whereAll

__all__ = [
    "UserStoreMixin",
    "deleteCredential",
    "deleteUser",
    "getUser",
    "listUsers",
    "saveCredential",
    "saveUser",
]

#: Create the user, or update C{name}/C{admin} when they are not C{None}.
_UPSERT_REPORTED_USER = """
INSERT INTO users (sn, enrollid, name, admin, enabled, updated_at)
VALUES (%(sn)s, %(enrollid)s, %(name)s, COALESCE(%(admin)s, 0), true, %(now)s)
ON CONFLICT (sn, enrollid) DO UPDATE SET
    name = COALESCE(%(name)s, users.name),
    admin = COALESCE(%(admin)s, users.admin),
    updated_at = %(now)s
"""


def _unknownTerminal(error: BrokenConstraint, sn: str) -> ValueError:
    if error.kind == "foreign key":
        return ValueError(f"unknown terminal {sn!r}")
    return error


def getUser(d: Dialect, sn: str, enrollid: int) -> Op[User | None]:
    """The user with its credentials (by C{backupnum}), or C{None}."""
    user = (yield ("SELECT * FROM users WHERE sn = %s AND enrollid = %s", (sn, enrollid))).first
    if user is None:
        return None
    credentials = yield (
        "SELECT * FROM credentials WHERE sn = %s AND enrollid = %s ORDER BY backupnum",
        (sn, enrollid),
    )
    return d.read.user(user, (d.read.credential(row) for row in credentials.rows))


def saveCredential(
    sn: str,
    enrollid: int,
    backupnum: int | None,
    recordJSON: str,
    name: str | None,
    admin: int | None,
    enrolled: bool,
    now: Any,
) -> Op[None]:
    """One slot as a terminal reported it (the user created if needed); see L{IUserStore}."""
    try:
        yield (
            _UPSERT_REPORTED_USER,
            {"sn": sn, "enrollid": enrollid, "name": name, "admin": admin, "now": now},
        )
        if backupnum is not None:
            yield (
                "INSERT INTO credentials (sn, enrollid, backupnum, record_json, updated_at)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (sn, enrollid, backupnum) DO UPDATE SET"
                " record_json = excluded.record_json, updated_at = excluded.updated_at",
                (sn, enrollid, backupnum, recordJSON, now),
            )
    except BrokenConstraint as e:
        raise _unknownTerminal(e, sn) from e
    if enrolled:
        user = (
            yield ("SELECT name, admin FROM users WHERE sn = %s AND enrollid = %s", (sn, enrollid))
        ).rows[0]
        event = userEvent(
            "enrolled", sn, enrollid, user["name"], backupnum=backupnum, admin=user["admin"]
        )
        yield AppendEvents((event,), now)


def saveUser(
    d: Dialect, sn: str, enrollid: int, name: str | None, admin: int, enabled: bool, now: Any
) -> Op[User]:
    """Create or update a user (not its credentials)."""
    try:
        yield (
            "INSERT INTO users (sn, enrollid, name, admin, enabled, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (sn, enrollid) DO UPDATE SET name = excluded.name,"
            " admin = excluded.admin, enabled = excluded.enabled,"
            " updated_at = excluded.updated_at",
            (sn, enrollid, name, admin, bool(enabled), now),
        )
    except BrokenConstraint as e:
        raise _unknownTerminal(e, sn) from e
    user = yield from getUser(d, sn, enrollid)
    assert user is not None
    event = userEvent("changed", sn, enrollid, user.name, admin=user.admin, enabled=user.enabled)
    yield AppendEvents((event,), now)
    return user


def listUsers(d: Dialect, sn: str, limit: int, afterEnrollid: int | None) -> Op[list[User]]:
    """A page of C{sn}'s users by C{enrollid}, strictly after C{afterEnrollid}."""
    where, params = whereAll([("sn = %s", sn), ("enrollid > %s", afterEnrollid)])
    users = (
        yield (
            f"SELECT * FROM users{where} ORDER BY enrollid LIMIT %s",
            (*params, max(limit, 0)),
        )
    ).rows
    if not users:
        return []
    credentials: dict[int, list[Credential]] = {row["enrollid"]: [] for row in users}
    for row in (
        yield (
            "SELECT * FROM credentials WHERE sn = %s AND enrollid BETWEEN %s AND %s"
            " ORDER BY enrollid, backupnum",
            (sn, users[0]["enrollid"], users[-1]["enrollid"]),
        )
    ).rows:
        credentials[row["enrollid"]].append(d.read.credential(row))
    return [d.read.user(row, credentials[row["enrollid"]]) for row in users]


def deleteUser(sn: str, enrollid: int, now: Any) -> Op[bool]:
    """Delete a user and its credentials; whether it existed."""
    yield ("DELETE FROM credentials WHERE sn = %s AND enrollid = %s", (sn, enrollid))
    deleted = yield ("DELETE FROM users WHERE sn = %s AND enrollid = %s", (sn, enrollid))
    if deleted.rowcount > 0:
        yield AppendEvents((userEvent("deleted", sn, enrollid),), now)
        return True
    return False


def deleteCredential(sn: str, enrollid: int, backupnum: int, now: Any) -> Op[int]:
    """
    Delete one slot: C{12} slots 0-9, C{13} the user and all its slots (the count is then the
    slots it had).
    """
    if backupnum == BACKUPNUM_EVERYTHING:
        slots = yield ("DELETE FROM credentials WHERE sn = %s AND enrollid = %s", (sn, enrollid))
        user = yield ("DELETE FROM users WHERE sn = %s AND enrollid = %s", (sn, enrollid))
        if user.rowcount > 0:
            yield AppendEvents((userEvent("deleted", sn, enrollid),), now)
        return int(slots.rowcount)
    if backupnum == BACKUPNUM_ALL_FINGERPRINTS:
        slots = yield (
            "DELETE FROM credentials WHERE sn = %s AND enrollid = %s AND backupnum BETWEEN 0 AND 9",
            (sn, enrollid),
        )
    else:
        slots = yield (
            "DELETE FROM credentials WHERE sn = %s AND enrollid = %s AND backupnum = %s",
            (sn, enrollid, backupnum),
        )
    if slots.rowcount:
        event = userEvent("changed", sn, enrollid, removedBackupnum=backupnum)
        yield AppendEvents((event,), now)
    return int(slots.rowcount)


class UserStoreMixin(OpStore):
    """L{tm20.interfaces.IUserStore} for a store providing L{OpStore}."""

    def saveCredential(
        self,
        sn: str,
        enrollid: int,
        backupnum: int | None,
        record: str | int | None,
        name: str | None,
        admin: int | None,
        *,
        enrolled: bool = False,
    ) -> Deferred[None]:
        """See L{tm20.interfaces.IUserStore.saveCredential}."""
        try:
            requireStorableUser(enrollid, name, backupnum, admin)
            recordJSON = json.dumps(record)
        except (TypeError, ValueError) as e:
            return fail(e)
        op = saveCredential(sn, enrollid, backupnum, recordJSON, name, admin, enrolled, self._now())
        return self._runOpWithEvents(op)

    def saveUser(
        self, sn: str, enrollid: int, name: str | None, admin: int, enabled: bool
    ) -> Deferred[User]:
        """See L{tm20.interfaces.IUserStore.saveUser}."""
        op = saveUser(self.dialect, sn, enrollid, name, admin, enabled, self._now())
        return self._runOpWithEvents(op)

    def getUser(self, sn: str, enrollid: int) -> Deferred[User | None]:
        """See L{tm20.interfaces.IUserStore.getUser}; credentials are ordered by C{backupnum}."""
        return self._runOp(False, getUser(self.dialect, sn, enrollid))

    def listUsers(self, sn: str, limit: int, afterEnrollid: int | None) -> Deferred[list[User]]:
        """See L{tm20.interfaces.IUserStore.listUsers}."""
        return self._runOp(False, listUsers(self.dialect, sn, limit, afterEnrollid))

    def deleteUser(self, sn: str, enrollid: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IUserStore.deleteUser}."""
        return self._runOpWithEvents(deleteUser(sn, enrollid, self._now()))

    def deleteCredential(self, sn: str, enrollid: int, backupnum: int) -> Deferred[int]:
        """See L{tm20.interfaces.IUserStore.deleteCredential}."""
        return self._runOpWithEvents(deleteCredential(sn, enrollid, backupnum, self._now()))
