"""
Fleet persons and terminal groups: the rules of the desired state, and what changes set the
reconciler (L{tm20.services.reconciler.Reconciler}) going.

  - A person's C{enrollid} is unique across the fleet; its credentials are checked as the
    terminals would take them (slots 0-9 fingerprints, 10 password, 11 card, 20-27 faces, 50
    photo, each at most once) and stored verbatim; its groups and terminals must exist; its
    validity window is terminal-local C{YYYY-MM-DD HH:MM:SS}, C{validFrom <= validUntil}.
  - Every change of a person reconciles that person on the terminals it was or is on; a change
    of a group's terminals reconciles the terminals that joined or left it.
  - B{Keypad adoption} (L{keypadEnrolled}): a user enrolled at the keypad of a terminal in a
    group with C{adoptKeypad} becomes (or, for a person already adopted from that terminal,
    updates) a fleet person of those groups, and so reaches their other terminals.  On a
    terminal in no such group, a keypad change to a fleet person is drift: it is corrected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from tm20.model import (
    SYNC_CONFLICT,
    SYNC_FAILED,
    SYNC_PENDING,
    SYNC_SYNCED,
    Credential,
    Person,
    PersonSync,
    StoredCommand,
    TerminalGroup,
)
from tm20.protocol.commands import buildCommand
from tm20.protocol.messages import ProtocolError
from tm20.protocol.timefmt import normaliseTime
from tm20.services.errors import ServiceError
from tm20.services.personcsv import CsvError, CsvRow

__all__ = ["PERSON_SLOTS", "CsvImportError", "PersonError", "PersonService", "SYNC_NOT_ASSIGNED"]

#: Credential slots a person may hold.
PERSON_SLOTS = frozenset([*range(10), 10, 11, *range(20, 28), 50])
#: The sync state of a terminal the person is not assigned to (and does not hold).
SYNC_NOT_ASSIGNED = "not_assigned"


class PersonError(ServiceError):
    """A person or group change refused; C{field} names the offending field."""

    def __init__(self, status: int, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(status, code, detail, field)


def _credentials(items: Sequence[Mapping[str, Any]], enrollid: int) -> tuple[Credential, ...]:
    seen: set[int] = set()
    out: list[Credential] = []
    for i, item in enumerate(items):
        backupnum = item["backupnum"]
        field = f"credentials[{i}]"
        if backupnum not in PERSON_SLOTS:
            raise PersonError(
                400,
                "invalid_body",
                "backupnum must be 0-9 (fingerprint), 10 (password), 11 (card), 20-27 (face)"
                " or 50 (photo)",
                f"{field}.backupnum",
            )
        if backupnum in seen:
            raise PersonError(400, "invalid_body", "slot given twice", f"{field}.backupnum")
        seen.add(backupnum)
        try:
            buildCommand(
                "setuserinfo",
                {"enrollid": enrollid, "backupnum": backupnum, "record": item["record"]},
            )
        except ProtocolError as e:
            raise PersonError(
                400, "invalid_body", e.problem, f"{field}.{e.field or 'record'}"
            ) from None
        out.append(Credential(backupnum, item["record"]))
    return tuple(sorted(out, key=lambda c: c.backupnum))


def _window(body: Mapping[str, Any], person: Person) -> tuple[str | None, str | None]:
    values: list[str | None] = []
    for key, current in (("validFrom", person.validFrom), ("validUntil", person.validUntil)):
        value = body.get(key, current)
        if value is not None:
            try:
                value = normaliseTime(value)
            except (TypeError, ValueError):
                raise PersonError(400, "invalid_body", "must be YYYY-MM-DD HH:MM:SS", key) from None
        values.append(value)
    first, last = values
    if first is not None and last is not None and first > last:
        raise PersonError(400, "invalid_body", "must not be before validFrom", "validUntil")
    return first, last


class CsvImportError(Exception):
    """A CSV import refused: C{errors} lists every problem (L{CsvError})."""

    def __init__(self, errors: Sequence[CsvError]) -> None:
        super().__init__(f"{len(errors)} problems")
        self.errors = list(errors)


class PersonService:
    """The rules of persons and groups; every change is handed to the reconciler."""

    log = Logger()

    def __init__(self, store: Any, reconciler: Any) -> None:
        self.store = store
        self.reconciler = reconciler

    # -- persons -------------------------------------------------------------------------------

    @inlineCallbacks
    def _checkAssignment(self, groups: Iterable[str], terminals: Iterable[str]) -> Any:
        for i, name in enumerate(groups):
            if (yield self.store.getGroup(name)) is None:
                raise PersonError(400, "invalid_body", f"no group {name!r}", f"groups[{i}]")
        for i, sn in enumerate(terminals):
            if (yield self.store.getTerminal(sn)) is None:
                raise PersonError(400, "invalid_body", f"no terminal {sn!r}", f"terminals[{i}]")

    def build(self, body: Mapping[str, Any], base: Person) -> Person:
        """C{base} changed by the fields of C{body} (validated; assignment not checked)."""
        validFrom, validUntil = _window(body, base)
        credentials = base.credentials
        if "credentials" in body:
            credentials = _credentials(body["credentials"], base.enrollid)
        return attrs.evolve(
            base,
            name=body.get("name", base.name),
            admin=body.get("admin", base.admin),
            enabled=body.get("enabled", base.enabled),
            validFrom=validFrom,
            validUntil=validUntil,
            credentials=credentials,
            groups=tuple(body.get("groups", base.groups)),
            terminals=tuple(body.get("terminals", base.terminals)),
        )

    @inlineCallbacks
    def create(self, body: Mapping[str, Any]) -> Any:
        """Create a person from an API body; reconcile it.  @return: the L{Person}."""
        person = self.build(body, Person(enrollid=body["enrollid"]))
        yield self._checkAssignment(person.groups, person.terminals)
        if (yield self.store.getPerson(person.enrollid)) is not None:
            raise PersonError(409, "conflict", f"person {person.enrollid} exists", "enrollid")
        try:
            stored = yield self.store.putPerson(person, True)
        except ValueError:
            raise PersonError(409, "conflict", "changed meanwhile, try again") from None
        self._reconcile(person.enrollid)
        return stored

    @inlineCallbacks
    def update(self, enrollid: int, body: Mapping[str, Any]) -> Any:
        """Change a person (C{None} when there is none); reconcile it where it was and is."""
        current: Person | None = yield self.store.getPerson(enrollid)
        if current is None:
            return None
        person = self.build(body, current)
        yield self._checkAssignment(
            person.groups if "groups" in body else (),
            person.terminals if "terminals" in body else (),
        )
        before = yield self.reconciler.assignedTerminals(current)
        try:
            stored = yield self.store.putPerson(person, False)
        except ValueError:
            raise PersonError(409, "conflict", "changed meanwhile, try again") from None
        self._reconcile(enrollid, before)
        return stored

    @inlineCallbacks
    def delete(self, enrollid: int) -> Any:
        """Delete a person; the reconciler deletes it from the terminals holding it."""
        current: Person | None = yield self.store.getPerson(enrollid)
        if current is None:
            return False
        before = yield self.reconciler.assignedTerminals(current)
        deleted = yield self.store.deletePerson(enrollid)
        self._reconcile(enrollid, before)
        return deleted

    def _reconcile(self, enrollid: int, alsoOn: Iterable[str] = ()) -> None:
        self.reconciler.watch(
            self.reconciler.reconcilePerson(enrollid, alsoOn), f"person {enrollid}"
        )

    @inlineCallbacks
    def importRows(self, rows: Sequence[CsvRow]) -> Any:
        """
        Create or update the persons of a CSV import (L{tm20.services.personcsv}): every row is
        checked before any is written; then the terminals concerned are reconciled, each once.

        @return: C{{"created": n, "updated": n}}.
        @raise CsvImportError: listing every problem by line and column.
        """
        groups = {g.name for g in (yield self.store.listGroups())}
        terminals = {t.sn for t in (yield self.store.listTerminals(None))}
        errors: list[CsvError] = []
        planned: list[tuple[Person, Person | None]] = []
        for row in rows:
            current: Person | None = yield self.store.getPerson(row.enrollid)
            body = dict(row.body)
            if current is not None and "credentials" in body:
                merged = {
                    c.backupnum: {"backupnum": c.backupnum, "record": c.record}
                    for c in current.credentials
                }
                for item in body["credentials"]:
                    merged[item["backupnum"]] = item
                body["credentials"] = [merged[b] for b in sorted(merged)]
            try:
                person = self.build(body, current or Person(enrollid=row.enrollid))
            except PersonError as e:
                field = e.field or "row"
                if field.startswith("credentials"):
                    field = "card/password"
                errors.append(CsvError(row.line, field, e.detail))
                continue
            for name in row.body.get("groups", ()):
                if name not in groups:
                    errors.append(CsvError(row.line, "groups", f"no group {name!r}"))
            for sn in row.body.get("terminals", ()):
                if sn not in terminals:
                    errors.append(CsvError(row.line, "terminals", f"no terminal {sn!r}"))
            planned.append((person, current))
        if errors:
            raise CsvImportError(errors)
        affected: set[str] = set()
        created = updated = 0
        for person, current in planned:
            if current is not None:
                affected |= yield self.reconciler.assignedTerminals(current)
            try:
                yield self.store.putPerson(person, current is None)
            except ValueError:
                raise PersonError(409, "conflict", "changed meanwhile, try again") from None
            affected |= yield self.reconciler.assignedTerminals(person)
            if current is None:
                created += 1
            else:
                updated += 1
        self._reconcileTerminals(affected)
        return {"created": created, "updated": updated}

    # -- groups --------------------------------------------------------------------------------

    @inlineCallbacks
    def createGroup(self, body: Mapping[str, Any]) -> Any:
        group = TerminalGroup(
            name=body["name"],
            description=body.get("description"),
            adoptKeypad=body.get("adoptKeypad", False),
            terminals=tuple(body.get("terminals", ())),
        )
        yield self._checkAssignment((), group.terminals)
        if (yield self.store.getGroup(group.name)) is not None:
            raise PersonError(409, "conflict", f"group {group.name!r} exists", "name")
        try:
            stored = yield self.store.putGroup(group, True)
        except ValueError:
            raise PersonError(409, "conflict", "changed meanwhile, try again") from None
        self._reconcileTerminals(group.terminals)
        return stored

    @inlineCallbacks
    def updateGroup(self, name: str, body: Mapping[str, Any]) -> Any:
        current: TerminalGroup | None = yield self.store.getGroup(name)
        if current is None:
            return None
        group = attrs.evolve(
            current,
            description=body.get("description", current.description),
            adoptKeypad=body.get("adoptKeypad", current.adoptKeypad),
            terminals=tuple(body.get("terminals", current.terminals)),
        )
        yield self._checkAssignment((), group.terminals if "terminals" in body else ())
        try:
            stored = yield self.store.putGroup(group, False)
        except ValueError:
            raise PersonError(409, "conflict", "changed meanwhile, try again") from None
        self._reconcileTerminals(set(current.terminals) ^ set(group.terminals))
        return stored

    @inlineCallbacks
    def deleteGroup(self, name: str) -> Any:
        current: TerminalGroup | None = yield self.store.getGroup(name)
        if current is None:
            return False
        deleted = yield self.store.deleteGroup(name)
        self._reconcileTerminals(current.terminals)
        return deleted

    def _reconcileTerminals(self, terminals: Iterable[str]) -> None:
        for sn in sorted(set(terminals)):
            self.reconciler.watch(self.reconciler.reconcileTerminal(sn), sn)

    # -- sync ----------------------------------------------------------------------------------

    @inlineCallbacks
    def personSync(self, person: Person) -> Any:
        """
        Per terminal of the fleet: the person's state there (C{synced}, C{pending} with its
        queued commands, C{failed} with the terminal's reply, C{conflict}, C{not_assigned}).

        @return: a list of C{(sn, state, PersonSync or None, [StoredCommand])}.
        """
        assigned = yield self.reconciler.assignedTerminals(person)
        syncs = {s.sn: s for s in (yield self.store.listPersonSync(None, person.enrollid))}
        out = []
        for terminal in (yield self.store.listTerminals(None)):
            sn = terminal.sn
            sync = syncs.get(sn)
            commands: list[StoredCommand] = []
            if sync is None:
                state = SYNC_PENDING if sn in assigned else SYNC_NOT_ASSIGNED
            else:
                state = sync.state
                if state == SYNC_PENDING:
                    for commandId in sync.commands:
                        command = yield self.store.getCommand(commandId)
                        if command is not None:
                            commands.append(command)
            out.append((sn, state, sn in assigned, sync, commands))
        return out

    @inlineCallbacks
    def claim(self, person: Person, sn: str) -> Any:
        """
        Resolve a conflict: the terminal's user with the person's C{enrollid} is to be
        overwritten by the person.  Only where the person is assigned (claiming elsewhere would
        delete someone else's user).
        """
        if sn not in (yield self.reconciler.assignedTerminals(person)):
            raise PersonError(
                409, "not_assigned", f"person {person.enrollid} is not assigned to {sn!r}", "sn"
            )
        yield self.reconciler.claim(person.enrollid, sn)

    @inlineCallbacks
    def terminalCounts(self, sn: str) -> Any:
        """How many persons are synced, pending, failed and in conflict on C{sn}."""
        counts = {SYNC_SYNCED: 0, SYNC_PENDING: 0, SYNC_FAILED: 0, SYNC_CONFLICT: 0}
        syncs = yield self.store.listPersonSync(sn, None)
        for sync in syncs:
            counts[sync.state] += 1
        known = {s.enrollid for s in syncs}
        for person in (yield self.store.personsForTerminal(sn)):
            if person.enrollid not in known:
                counts[SYNC_PENDING] += 1
        return counts

    # -- keypad --------------------------------------------------------------------------------

    def keypadReported(self, sn: str, enrollid: int) -> None:
        """
        L{keypadEnrolled}, not waited for (the C{senduser} handler acknowledges at once); its
        failure is logged (a store outage as a warning).
        """
        self.reconciler.watch(self.keypadEnrolled(sn, enrollid), f"keypad user {enrollid} of {sn}")

    @inlineCallbacks
    def keypadEnrolled(self, sn: str, enrollid: int) -> Any:
        """
        A terminal pushed a user enrolled at its keypad (C{senduser}, already stored as the
        terminal's user): adopt it where its groups say so, else correct any drift.
        """
        adopting = [g.name for g in (yield self.store.groupsOfTerminal(sn)) if g.adoptKeypad]
        person: Person | None = yield self.store.getPerson(enrollid)
        user = yield self.store.getUser(sn, enrollid)
        if user is None:
            return None
        if adopting and person is None:
            person = Person(
                enrollid=enrollid,
                name=user.name,
                admin=user.admin,
                enabled=user.enabled,
                credentials=tuple(Credential(c.backupnum, c.record) for c in user.credentials),
                groups=tuple(adopting),
            )
            yield self.store.putPerson(person, True)
            yield self.store.savePersonSync(PersonSync(sn, enrollid, SYNC_SYNCED, owned=True))
            self.log.info(
                "user {enrollid} enrolled at {sn}'s keypad adopted as a fleet person of {groups}",
                enrollid=enrollid,
                sn=sn,
                groups=adopting,
            )
        elif adopting and person is not None:
            syncs = yield self.store.listPersonSync(sn, enrollid)
            if syncs and syncs[0].owned:
                merged = {c.backupnum: c for c in person.credentials}
                for c in user.credentials:
                    if c.backupnum in PERSON_SLOTS:
                        merged[c.backupnum] = Credential(c.backupnum, c.record)
                person = attrs.evolve(
                    person,
                    name=user.name or person.name,
                    credentials=tuple(merged[b] for b in sorted(merged)),
                )
                yield self.store.putPerson(person, False)
        if person is not None:
            yield self.reconciler.reconcilePerson(enrollid)
        return person
