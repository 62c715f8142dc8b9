"""
Console accounts and sessions, written once for both stores as operations of
L{tm20.store._ops} (generators of C{(sql, params)} run by C{runSync}/C{runAsync}).
Times are seconds since the epoch, passed in by the caller (its clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tm20.model import ConsoleAccount, ConsoleSession
from tm20.store._ops import Op

__all__ = [
    "createAccount",
    "createSession",
    "deleteSession",
    "getAccount",
    "listAccounts",
    "touchSession",
    "updateAccount",
]


def _account(row: Mapping[str, Any]) -> ConsoleAccount:
    return ConsoleAccount(
        name=row["name"],
        role=row["role"],
        passwordHash=row["password_hash"],
        disabled=bool(row["disabled"]),
        createdAt=float(row["created_at"]),
        updatedAt=float(row["updated_at"]),
    )


def createAccount(name: str, role: str, passwordHash: str, now: float) -> Op[ConsoleAccount]:
    """A new account (C{ValueError} when the name is taken)."""
    yield (
        "INSERT INTO console_accounts (name, role, password_hash, disabled, created_at,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (name, role, passwordHash, False, now, now),
    )
    return ConsoleAccount(name, role, passwordHash, False, now, now)


def getAccount(name: str) -> Op[ConsoleAccount | None]:
    rows = (yield ("SELECT * FROM console_accounts WHERE name = %s", (name,))).rows
    return _account(rows[0]) if rows else None


def listAccounts() -> Op[list[ConsoleAccount]]:
    rows = (yield ("SELECT * FROM console_accounts ORDER BY name", ())).rows
    return [_account(row) for row in rows]


def updateAccount(
    name: str,
    now: float,
    role: str | None = None,
    passwordHash: str | None = None,
    disabled: bool | None = None,
) -> Op[ConsoleAccount | None]:
    """
    Change an account; a new password, a new role or disabling ends its sessions (whoever was
    logged in with the old ones must log in again).  C{None}: no such account.
    """
    sets: list[str] = ["updated_at = %s"]
    params: list[Any] = [now]
    for column, value in (("role", role), ("password_hash", passwordHash), ("disabled", disabled)):
        if value is not None:
            sets.append(f"{column} = %s")
            params.append(value)
    result = yield (
        f"UPDATE console_accounts SET {', '.join(sets)} WHERE name = %s",
        (*params, name),
    )
    if result.rowcount == 0:
        return None
    yield ("DELETE FROM console_sessions WHERE account = %s", (name,))
    return (yield from getAccount(name))


def createSession(session: ConsoleSession) -> Op[ConsoleSession]:
    """Store a new session (C{ValueError} when its account does not exist)."""
    yield (
        "INSERT INTO console_sessions (token_hash, account, csrf, created_at, last_seen)"
        " VALUES (%s, %s, %s, %s, %s)",
        (session.tokenHash, session.account, session.csrf, session.createdAt, session.lastSeen),
    )
    return session


def touchSession(
    tokenHash: str, now: float, idle: float
) -> Op[tuple[ConsoleSession, ConsoleAccount] | None]:
    """
    The session and its account when the session exists, has been used within C{idle} seconds
    and its account is enabled: its last use becomes C{now}.  An idle session is deleted (and
    so are every other idle session, which keeps the table small); C{None} then.
    """
    yield ("DELETE FROM console_sessions WHERE last_seen < %s", (now - idle,))
    rows = (
        yield (
            "SELECT s.token_hash, s.account, s.csrf, s.created_at AS s_created, s.last_seen,"
            " a.name, a.role, a.password_hash, a.disabled, a.created_at, a.updated_at"
            " FROM console_sessions s JOIN console_accounts a ON a.name = s.account"
            " WHERE s.token_hash = %s",
            (tokenHash,),
        )
    ).rows
    if not rows:
        return None
    row = rows[0]
    account = _account(row)
    if account.disabled:
        return None
    yield ("UPDATE console_sessions SET last_seen = %s WHERE token_hash = %s", (now, tokenHash))
    session = ConsoleSession(
        tokenHash=row["token_hash"],
        account=row["account"],
        csrf=row["csrf"],
        createdAt=float(row["s_created"]),
        lastSeen=now,
    )
    return session, account


def deleteSession(tokenHash: str) -> Op[bool]:
    result = yield ("DELETE FROM console_sessions WHERE token_hash = %s", (tokenHash,))
    return result.rowcount > 0
