"""
The L{tm20.interfaces.IPersonStore} methods, the same for both stores: each builds one operation
of L{tm20.store._personsql} and has the store run it in one transaction (L{OpStore._runOp}).
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail

from tm20.model import Person, PersonSync, TerminalGroup
from tm20.store import _personsql as sql
from tm20.store._ops import OpStore

__all__ = ["PersonStoreMixin"]


class PersonStoreMixin(OpStore):
    """L{tm20.interfaces.IPersonStore} for a store providing L{OpStore}."""

    # -- persons -------------------------------------------------------------------------------

    def putPerson(self, person: Person, create: bool) -> Deferred[Person | None]:
        """See L{tm20.interfaces.IPersonStore.putPerson}."""
        return self._runOp(True, sql.putPerson(person, create, self._now(), self.dialect.time))

    def getPerson(self, enrollid: int) -> Deferred[Person | None]:
        """See L{tm20.interfaces.IPersonStore.getPerson}."""
        return self._runOp(False, sql.getPerson(enrollid, self.dialect.time))

    def listPersons(self, limit: int, afterEnrollid: int | None) -> Deferred[list[Person]]:
        """See L{tm20.interfaces.IPersonStore.listPersons}."""
        return self._runOp(False, sql.listPersons(limit, afterEnrollid, self.dialect.time))

    def personsForTerminal(self, sn: str) -> Deferred[list[Person]]:
        """See L{tm20.interfaces.IPersonStore.personsForTerminal}."""
        return self._runOp(False, sql.personsForTerminal(sn, self.dialect.time))

    def terminalsWithPersons(self, sns: Sequence[str]) -> Deferred[set[str]]:
        """See L{tm20.interfaces.IPersonStore.terminalsWithPersons}."""
        return self._runOp(False, sql.terminalsWithPersons(list(sns)))

    def deletePerson(self, enrollid: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IPersonStore.deletePerson}."""
        return self._runOp(True, sql.deletePerson(enrollid))

    # -- groups --------------------------------------------------------------------------------

    def putGroup(self, group: TerminalGroup, create: bool) -> Deferred[TerminalGroup | None]:
        """See L{tm20.interfaces.IPersonStore.putGroup}."""
        return self._runOp(True, sql.putGroup(group, create, self._now(), self.dialect.time))

    def getGroup(self, name: str) -> Deferred[TerminalGroup | None]:
        """See L{tm20.interfaces.IPersonStore.getGroup}."""
        return self._runOp(False, sql.getGroup(name, self.dialect.time))

    def listGroups(self) -> Deferred[list[TerminalGroup]]:
        """See L{tm20.interfaces.IPersonStore.listGroups}."""
        return self._runOp(False, sql.listGroups(self.dialect.time))

    def groupsOfTerminal(self, sn: str) -> Deferred[list[TerminalGroup]]:
        """See L{tm20.interfaces.IPersonStore.groupsOfTerminal}."""
        return self._runOp(False, sql.groupsOfTerminal(sn, self.dialect.time))

    def deleteGroup(self, name: str) -> Deferred[bool]:
        """See L{tm20.interfaces.IPersonStore.deleteGroup}."""
        return self._runOp(True, sql.deleteGroup(name))

    # -- sync state ----------------------------------------------------------------------------

    def savePersonSync(self, sync: PersonSync) -> Deferred[PersonSync]:
        """See L{tm20.interfaces.IPersonStore.savePersonSync}."""
        try:
            op = sql.savePersonSync(sync, self._now(), self.dialect.time)
            if sync.state not in sql.SYNC_STATES:
                raise ValueError(f"unknown sync state {sync.state!r}")
        except ValueError as e:
            return fail(e)
        # a person.synced / person.sync_failed event may have been appended: wake the readers
        return self._runOpWithEvents(op)

    def deletePersonSync(self, sn: str, enrollid: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IPersonStore.deletePersonSync}."""
        return self._runOp(True, sql.deletePersonSync(sn, enrollid))

    def listPersonSync(
        self, sn: str | None = None, enrollid: int | None = None
    ) -> Deferred[list[PersonSync]]:
        """See L{tm20.interfaces.IPersonStore.listPersonSync}."""
        return self._runOp(False, sql.listPersonSync(sn, enrollid, self.dialect.time))
