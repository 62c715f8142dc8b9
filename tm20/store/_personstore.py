"""
The L{tm20.interfaces.IPersonStore} methods, the same for both stores: each builds one operation
of L{tm20.store._personsql} and has the store run it in one transaction (L{_runPersonOp}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail

from tm20.model import Person, PersonSync, TerminalGroup
from tm20.store import _personsql as sql

__all__ = ["PersonStoreMixin"]


class PersonStoreMixin:
    """Mixed into a store that defines L{_runPersonOp}, L{_now} and L{_personTime}."""

    def _runPersonOp(self, write: bool, op: sql.Op[Any]) -> Deferred[Any]:
        raise NotImplementedError

    def _now(self) -> Any:
        raise NotImplementedError

    def _personTime(self, value: Any) -> Any:
        raise NotImplementedError

    def _eventsCommitted(self, result: Any = None) -> Any:
        raise NotImplementedError

    # -- persons -------------------------------------------------------------------------------

    def putPerson(self, person: Person, create: bool) -> Deferred[Person | None]:
        """See L{tm20.interfaces.IPersonStore.putPerson}."""
        return self._runPersonOp(True, sql.putPerson(person, create, self._now(), self._personTime))

    def getPerson(self, enrollid: int) -> Deferred[Person | None]:
        """See L{tm20.interfaces.IPersonStore.getPerson}."""
        return self._runPersonOp(False, sql.getPerson(enrollid, self._personTime))

    def listPersons(self, limit: int, afterEnrollid: int | None) -> Deferred[list[Person]]:
        """See L{tm20.interfaces.IPersonStore.listPersons}."""
        return self._runPersonOp(False, sql.listPersons(limit, afterEnrollid, self._personTime))

    def personsForTerminal(self, sn: str) -> Deferred[list[Person]]:
        """See L{tm20.interfaces.IPersonStore.personsForTerminal}."""
        return self._runPersonOp(False, sql.personsForTerminal(sn, self._personTime))

    def deletePerson(self, enrollid: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IPersonStore.deletePerson}."""
        return self._runPersonOp(True, sql.deletePerson(enrollid))

    # -- groups --------------------------------------------------------------------------------

    def putGroup(self, group: TerminalGroup, create: bool) -> Deferred[TerminalGroup | None]:
        """See L{tm20.interfaces.IPersonStore.putGroup}."""
        return self._runPersonOp(True, sql.putGroup(group, create, self._now(), self._personTime))

    def getGroup(self, name: str) -> Deferred[TerminalGroup | None]:
        """See L{tm20.interfaces.IPersonStore.getGroup}."""
        return self._runPersonOp(False, sql.getGroup(name, self._personTime))

    def listGroups(self) -> Deferred[list[TerminalGroup]]:
        """See L{tm20.interfaces.IPersonStore.listGroups}."""
        return self._runPersonOp(False, sql.listGroups(self._personTime))

    def groupsOfTerminal(self, sn: str) -> Deferred[list[TerminalGroup]]:
        """See L{tm20.interfaces.IPersonStore.groupsOfTerminal}."""
        return self._runPersonOp(False, sql.groupsOfTerminal(sn, self._personTime))

    def deleteGroup(self, name: str) -> Deferred[bool]:
        """See L{tm20.interfaces.IPersonStore.deleteGroup}."""
        return self._runPersonOp(True, sql.deleteGroup(name))

    # -- sync state ----------------------------------------------------------------------------

    def savePersonSync(self, sync: PersonSync) -> Deferred[PersonSync]:
        """See L{tm20.interfaces.IPersonStore.savePersonSync}."""
        try:
            op = sql.savePersonSync(sync, self._now(), self._personTime)
            if sync.state not in sql.SYNC_STATES:
                raise ValueError(f"unknown sync state {sync.state!r}")
        except ValueError as e:
            return fail(e)
        # a person.synced / person.sync_failed event may have been appended: wake the readers
        return self._runPersonOp(True, op).addCallback(self._eventsCommitted)

    def deletePersonSync(self, sn: str, enrollid: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IPersonStore.deletePersonSync}."""
        return self._runPersonOp(True, sql.deletePersonSync(sn, enrollid))

    def listPersonSync(
        self, sn: str | None = None, enrollid: int | None = None
    ) -> Deferred[list[PersonSync]]:
        """See L{tm20.interfaces.IPersonStore.listPersonSync}."""
        return self._runPersonOp(False, sql.listPersonSync(sn, enrollid, self._personTime))
