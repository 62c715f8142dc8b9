"""
The L{tm20.interfaces.IAccountStore} methods, the same for both stores: each builds one
operation of L{tm20.store._accountsql} and has the store run it in one transaction.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from tm20.model import ConsoleAccount, ConsoleSession
from tm20.store import _accountsql as sql
from tm20.store._ops import OpStore

__all__ = ["AccountStoreMixin"]


class AccountStoreMixin(OpStore):
    """L{tm20.interfaces.IAccountStore} for a store providing L{OpStore}."""

    def createAccount(
        self, name: str, role: str, passwordHash: str, now: float
    ) -> Deferred[ConsoleAccount]:
        """See L{tm20.interfaces.IAccountStore.createAccount}."""
        return self._runOp(True, sql.createAccount(name, role, passwordHash, now))

    def getAccount(self, name: str) -> Deferred[ConsoleAccount | None]:
        """See L{tm20.interfaces.IAccountStore.getAccount}."""
        return self._runOp(False, sql.getAccount(name))

    def listAccounts(self) -> Deferred[list[ConsoleAccount]]:
        """See L{tm20.interfaces.IAccountStore.listAccounts}."""
        return self._runOp(False, sql.listAccounts())

    def updateAccount(
        self,
        name: str,
        now: float,
        role: str | None = None,
        passwordHash: str | None = None,
        disabled: bool | None = None,
    ) -> Deferred[ConsoleAccount | None]:
        """See L{tm20.interfaces.IAccountStore.updateAccount}."""
        return self._runOp(True, sql.updateAccount(name, now, role, passwordHash, disabled))

    def createSession(self, session: ConsoleSession) -> Deferred[ConsoleSession]:
        """See L{tm20.interfaces.IAccountStore.createSession}."""
        return self._runOp(True, sql.createSession(session))

    def touchSession(
        self, tokenHash: str, now: float, idle: float
    ) -> Deferred[tuple[ConsoleSession, ConsoleAccount] | None]:
        """See L{tm20.interfaces.IAccountStore.touchSession}."""
        return self._runOp(True, sql.touchSession(tokenHash, now, idle))

    def deleteSession(self, tokenHash: str) -> Deferred[bool]:
        """See L{tm20.interfaces.IAccountStore.deleteSession}."""
        return self._runOp(True, sql.deleteSession(tokenHash))
