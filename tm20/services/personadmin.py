"""
Persons and terminal groups as an operator changes them, for every door (the REST API, the
console): one shape for both kinds.

Each change is checked by L{tm20.services.persons.PersonService}'s rules (a refusal is a
L{tm20.services.errors.ServiceError} naming its field), then the doors decide on the new persons
and groups at once (access control), then the change is audited.  A person or group that is not
there is a 404, before and after the change (deleted meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from tm20.model import Person, TerminalGroup
from tm20.services.audit import Audit
from tm20.services.errors import ServiceError
from tm20.services.personcsv import CsvRow

__all__ = ["PersonAdmin", "redactedCredentials"]

K = TypeVar("K")
T = TypeVar("T")


def redactedCredentials(body: Mapping[str, Any]) -> dict[str, Any]:
    """A person or user change for the audit log, without credential records (templates,
    passwords): only their slots."""
    out = dict(body)
    if "credentials" in out:
        out["credentials"] = [{"backupnum": c.get("backupnum")} for c in out["credentials"]]
    return out


@attrs.frozen
class _Kind(Generic[K, T]):
    """What differs between persons and groups."""

    noun: str
    describe: Callable[[K], str]
    target: Callable[[K], str]
    get: Callable[[K], Any]
    create: Callable[[Mapping[str, Any]], Any]
    update: Callable[[K, Mapping[str, Any]], Any]
    delete: Callable[[K], Any]
    keyOf: Callable[[T], K]
    audited: Callable[[Mapping[str, Any]], dict[str, Any]]


class PersonAdmin:
    """
    @param context: the L{tm20.context.ServerContext} (its C{store}, C{persons} and C{access}).
    @param audit: writes an audit entry (L{tm20.services.terminals.TerminalService.audit}).
    """

    def __init__(self, context: Any, audit: Audit) -> None:
        self.context = context
        self._audit = audit
        store = context.store
        persons = context.persons
        self.persons: _Kind[int, Person] = _Kind(
            noun="person",
            describe=str,
            target=str,
            get=store.getPerson,
            create=persons.create,
            update=persons.update,
            delete=persons.delete,
            keyOf=lambda p: p.enrollid,
            audited=redactedCredentials,
        )
        self.groups: _Kind[str, TerminalGroup] = _Kind(
            noun="group",
            describe=repr,
            target=str,
            get=store.getGroup,
            create=persons.createGroup,
            update=persons.updateGroup,
            delete=persons.deleteGroup,
            keyOf=lambda g: g.name,
            audited=dict,
        )

    # -- one way for both kinds --------------------------------------------------------------------

    def _missing(self, kind: _Kind[K, T], key: K) -> ServiceError:
        return ServiceError(404, "not_found", f"no {kind.noun} {kind.describe(key)}")

    async def get(self, kind: _Kind[K, T], key: K) -> T:
        """The person or group C{key}; a 404 when there is none."""
        found: T | None = await kind.get(key)
        if found is None:
            raise self._missing(kind, key)
        return found

    async def _changed(
        self, actor: str, action: str, target: str | None, audited: Mapping[str, Any]
    ) -> None:
        """Persons or groups changed: the doors decide on the new ones at once; audited."""
        access = getattr(self.context, "access", None)
        if access is not None:
            await access.changed()
        await self._audit(actor, action, target, audited)

    async def create(self, actor: str, kind: _Kind[K, T], body: Mapping[str, Any]) -> T:
        """Create a person or group from a door's (checked) body."""
        created: T = await kind.create(body)
        await self._changed(
            actor, f"{kind.noun}.create", kind.target(kind.keyOf(created)), kind.audited(body)
        )
        return created

    async def update(self, actor: str, kind: _Kind[K, T], key: K, body: Mapping[str, Any]) -> T:
        """Change a person or group with what C{body} names."""
        await self.get(kind, key)
        updated: T | None = await kind.update(key, body)
        if updated is None:
            raise self._missing(kind, key)
        await self._changed(actor, f"{kind.noun}.update", kind.target(key), kind.audited(body))
        return updated

    async def delete(self, actor: str, kind: _Kind[K, T], key: K) -> None:
        """Delete a person or group (the reconciler takes it off the terminals)."""
        await self.get(kind, key)
        if not await kind.delete(key):
            raise self._missing(kind, key)
        await self._changed(actor, f"{kind.noun}.delete", kind.target(key), {})

    async def importRows(self, actor: str, rows: Sequence[CsvRow]) -> dict[str, Any]:
        """Import parsed CSV rows (L{tm20.services.persons.PersonService.importRows})."""
        result: dict[str, Any] = dict(await self.context.persons.importRows(rows))
        await self._changed(actor, "persons.import", None, result)
        return result
