"""
Operator accounts of the console and their sessions: the rules (names, roles, passwords hashed
with argon2, idle expiry), for every door that logs operators in (the console, C{tm20-admin}).

A session is a random token given to the browser once (its cookie); the store keeps only its
sha256, with a CSRF token and the time of its last use.  A session unused for C{idleTimeout}
seconds is gone; so are an account's sessions when its password or role changes or it is
disabled.  Hashing runs in a thread (argon2 costs tens of milliseconds on purpose): the reactor
never waits on it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Any

import attrs
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from tm20.model import CONSOLE_ROLES, ConsoleAccount, ConsoleSession
from tm20.services.errors import ServiceError

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "MIN_PASSWORD",
    "AccountService",
    "LoggedIn",
    "roleAllows",
    "sessionHash",
]

#: Seconds a console session lives without being used (the default of C{--console-idle}).
DEFAULT_IDLE_TIMEOUT = 30 * 60.0
#: The shortest password accepted.
MIN_PASSWORD = 10
#: The longest (argon2 takes any length; a cap keeps a login cheap to refuse).
MAX_PASSWORD = 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def roleAllows(role: str, needed: str) -> bool:
    """C{True} when C{role} is at least C{needed} (viewer < operator < admin)."""
    if role not in CONSOLE_ROLES or needed not in CONSOLE_ROLES:
        return False
    return CONSOLE_ROLES.index(role) >= CONSOLE_ROLES.index(needed)


def sessionHash(token: str) -> str:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def checkName(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ServiceError(
            400,
            "invalid_name",
            "an account name is 1 to 64 letters, digits or . _ @ - (starting with a letter or"
            " digit)",
            field="name",
        )
    return name


def checkRole(role: str) -> str:
    if role not in CONSOLE_ROLES:
        raise ServiceError(
            400, "invalid_role", f"role must be one of {', '.join(CONSOLE_ROLES)}", field="role"
        )
    return role


def checkPassword(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ServiceError(
            400,
            "weak_password",
            f"a password has at least {MIN_PASSWORD} characters",
            field="password",
        )
    if len(password) > MAX_PASSWORD:
        raise ServiceError(
            400,
            "invalid_password",
            f"a password has at most {MAX_PASSWORD} characters",
            field="password",
        )
    return password


@attrs.frozen
class LoggedIn:
    """A valid session: its cookie value (only right after login), the session and account."""

    session: ConsoleSession
    account: ConsoleAccount
    token: str | None = None

    @property
    def actor(self) -> str:
        """The audit trail's name for this operator."""
        return f"console:{self.account.name}"


class AccountService:
    """
    @param store: an L{tm20.interfaces.IAccountStore}.
    @param clock: the time source (C{seconds()}).
    @param idleTimeout: seconds a session lives unused.
    @param inThread: runs a blocking callable off the reactor (a L{Deferred} of its result).
    """

    log = Logger()

    def __init__(
        self,
        store: Any,
        clock: Any,
        idleTimeout: float = DEFAULT_IDLE_TIMEOUT,
        hasher: PasswordHasher | None = None,
        inThread: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.hasher = hasher if hasher is not None else PasswordHasher()
        self._inThread = inThread if inThread is not None else threads.deferToThread
        self._dummy: str | None = None

    async def _hash(self, password: str) -> str:
        result: str = await self._inThread(self.hasher.hash, password)
        return result

    async def _verify(self, passwordHash: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return bool(self.hasher.verify(passwordHash, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        result: bool = await self._inThread(verify)
        return result

    # -- accounts ----------------------------------------------------------------------------------

    async def create(self, name: str, role: str, password: str) -> ConsoleAccount:
        checkName(name)
        checkRole(role)
        checkPassword(password)
        digest = await self._hash(password)
        try:
            account: ConsoleAccount = await self.store.createAccount(
                name, role, digest, self.clock.seconds()
            )
        except ValueError:
            raise ServiceError(409, "conflict", f"an account named {name!r} exists") from None
        return account

    async def list(self) -> list[ConsoleAccount]:
        accounts: list[ConsoleAccount] = await self.store.listAccounts()
        return accounts

    async def _update(self, name: str, **changes: Any) -> ConsoleAccount:
        account: ConsoleAccount | None = await self.store.updateAccount(
            name, self.clock.seconds(), **changes
        )
        if account is None:
            raise ServiceError(404, "not_found", f"no account {name!r}")
        return account

    async def setPassword(self, name: str, password: str) -> ConsoleAccount:
        checkPassword(password)
        return await self._update(name, passwordHash=await self._hash(password))

    async def setRole(self, name: str, role: str) -> ConsoleAccount:
        return await self._update(name, role=checkRole(role))

    async def setDisabled(self, name: str, disabled: bool) -> ConsoleAccount:
        return await self._update(name, disabled=disabled)

    # -- sessions ----------------------------------------------------------------------------------

    async def login(self, name: str, password: str) -> LoggedIn | None:
        """
        A new session when C{name} is an enabled account and C{password} its password; C{None}
        otherwise (the same time is spent either way: an unknown name is checked against a
        dummy hash).
        """
        account: ConsoleAccount | None = None
        if _NAME.fullmatch(name) and len(password) <= MAX_PASSWORD:
            account = await self.store.getAccount(name)
        if account is None:
            if self._dummy is None:
                self._dummy = await self._hash(secrets.token_urlsafe(16))
            await self._verify(self._dummy, password[:MAX_PASSWORD])
            return None
        if not await self._verify(account.passwordHash, password) or account.disabled:
            return None
        if self.hasher.check_needs_rehash(account.passwordHash):
            account = await self._update(name, passwordHash=await self._hash(password))
        token = secrets.token_urlsafe(32)
        now = self.clock.seconds()
        session = ConsoleSession(sessionHash(token), name, secrets.token_urlsafe(32), now, now)
        await self.store.createSession(session)
        self.log.info("console: {account} logged in", account=name)
        return LoggedIn(session, account, token)

    async def session(self, token: str) -> LoggedIn | None:
        """The live session of cookie value C{token} (its idle clock restarts), or C{None}."""
        if not token or len(token) > 128:
            return None
        found = await self.store.touchSession(
            sessionHash(token), self.clock.seconds(), self.idleTimeout
        )
        if found is None:
            return None
        session, account = found
        return LoggedIn(session, account)

    async def logout(self, token: str) -> None:
        if token and len(token) <= 128:
            await self.store.deleteSession(sessionHash(token))
