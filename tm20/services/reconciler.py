"""
The reconciler: keeps every terminal holding the fleet persons assigned to it, as desired.

Per terminal, it compares the persons assigned to it (directly or through its groups) with what
the server knows the terminal holds (the per-terminal users and credentials, kept current by the
terminal's own C{senduser}, by pulls, and by the commands the reconciler saw succeed), and queues
the commands of L{tm20.services.persondiff} through the durable command queue
(L{tm20.services.queue.CommandQueue}, actor C{reconciler}).

  - B{When.}  A pass over one person runs when it changes (L{reconcilePerson}); a pass over a
    whole terminal when it registers, when it joins or leaves a group (L{reconcileTerminal}),
    and every C{interval} seconds for each connected terminal holding fleet persons, after a
    cheap check of what it holds (L{tm20.services.pulls.PullService.refreshUsers}), so that
    users deleted or credentials added at its keypad are seen and corrected.  Passes of one
    terminal never overlap: one asked for while another runs is run once after it.
  - B{Paced.}  At most C{maxOutstanding} commands of the reconciler are queued for a terminal at
    once; the rest of the plan is queued as they finish.  Only connected terminals get
    commands: an offline one is marked pending and reconciled when it registers.  The periodic
    checks go through the connected terminals one after the other.
  - B{Capacity.}  Before a new user or new credential slots are pushed, what they take is
    compared with the terminal's C{usersize}, C{fpsize}, C{cardsize}, C{pwdsize} and C{facesize}
    (from its last C{reg}) less its C{used*} counters and what the reconciler has added since
    that registration; a person that does not fit is marked failed (C{reason: capacity}),
    nothing is sent.
  - B{Conflicts.}  A terminal user with the person's C{enrollid} that is not the fleet's (see
    L{tm20.services.persondiff}) is reported (state C{conflict}) and never overwritten, until
    an operator claims it (L{claim}) or deletes it.
  - B{Outcome.}  A person on a terminal is C{pending} while its commands are queued, C{synced}
    when all succeeded, C{failed} with the terminal's reply when one failed (tried again at the
    next pass).  The store writes C{person.synced} / C{person.sync_failed} events with the state
    (L{tm20.interfaces.IPersonStore.savePersonSync}).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredLock, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tm20.errors import StoreUnavailable
from tm20.interfaces import IReconciler
from tm20.lanes import inBackground
from tm20.model import (
    COMMAND_SUCCEEDED,
    SYNC_CONFLICT,
    SYNC_FAILED,
    SYNC_PENDING,
    SYNC_SYNCED,
    Person,
    PersonSync,
    StoredCommand,
    Terminal,
    User,
)
from tm20.services.persondiff import diffPerson
from tm20.services.queue import FINAL_STATUSES

__all__ = ["ACTOR", "DEFAULT_INTERVAL", "DEFAULT_MAX_OUTSTANDING", "Reconciler"]

#: The actor of the reconciler's commands in the durable queue.
ACTOR = "reconciler"
#: Seconds between periodic checks of the connected terminals.
DEFAULT_INTERVAL = 3600.0
#: Commands of the reconciler queued for one terminal at once.
DEFAULT_MAX_OUTSTANDING = 20

#: Persons diffed between two turns of the reactor (about 5 ms of work).
_DIFF_SLICE = 250

#: Up to this many persons, a pass reads the terminal's users one by one, else all of them.
_READ_ONE_BY_ONE = 50
#: Most registered terminals looked at in one query (L{Reconciler.terminalRegistered}).
_REGISTERED_BATCH = 500

#: Batches a person may be re-checked into in a row before it is failed as not converging.
_MAX_RECHECKS = 5

#: devinfo capacity key -> its "used" counter.
_USED = {
    "usersize": "useduser",
    "fpsize": "usedfp",
    "cardsize": "usedcard",
    "pwdsize": "usedpwd",
    "facesize": "usedface",
}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _alreadyGone(command: StoredCommand) -> bool:
    """
    A C{deleteuser} refused because the terminal no longer holds it (TopData answers
    C{result:false} with C{"msg": "have no data"}): what was asked is the case, so it is done.
    """
    if command.name != "deleteuser" or command.reply is None:
        return False
    message = str(command.reply.get("msg", "")).strip().lower()
    return message in ("have no data", "can not find the user")


def commandEnrollid(payload: Mapping[str, Any]) -> int | None:
    """The user a reconciler command is about."""
    if payload.get("cmd") == "setusername":
        records = payload.get("record") or [{}]
        return _int(records[0].get("enrollid"))
    return _int(payload.get("enrollid"))


@attrs.define
class _Terminal:
    """The reconciler's work on one terminal."""

    lock: DeferredLock = attrs.field(factory=DeferredLock)
    #: persons whose commands wait to be queued: (enrollid, commands)
    plan: deque[tuple[int, tuple[tuple[str, dict[str, Any]], ...]]] = attrs.field(factory=deque)
    #: enrollid -> ids of its queued commands not finished yet
    outstanding: dict[int, set[int]] = attrs.field(factory=dict)
    #: enrollid -> the first failed command of its current batch (name and reply)
    failures: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    #: what the reconciler added since the terminal's last registration, by capacity key
    added: dict[str, int] = attrs.field(factory=dict)
    #: enrollid -> batches queued in a row by re-checks after a batch (not by a change)
    rechecks: dict[int, int] = attrs.field(factory=dict)
    #: enrollid -> its commands finished whose outcome is not applied yet (waiting for the lock)
    unapplied: dict[int, int] = attrs.field(factory=dict)


@implementer(IReconciler)
class Reconciler:
    """Keeps terminals holding their fleet persons (see the module's description)."""

    log = Logger()

    def __init__(
        self,
        store: Any,
        queue: Any,
        commands: Any,
        registration: Any,
        pulls: Any,
        clock: IReactorTime,
        registry: Any = None,
        interval: float = DEFAULT_INTERVAL,
        maxOutstanding: int = DEFAULT_MAX_OUTSTANDING,
    ) -> None:
        """
        @param store: an L{tm20.interfaces.IStore} that is also an L{IPersonStore}.
        @param queue: the L{tm20.services.queue.CommandQueue}.
        @param commands: the L{tm20.services.commands.CommandService} (who is connected).
        @param registration: the registration service (terminals' local time).
        @param pulls: the L{tm20.services.pulls.PullService} (periodic checks).
        @param registry: the terminal registry (connected terminals, for periodic checks).
        @param interval: seconds between periodic checks (0: none).
        @param maxOutstanding: commands queued per terminal at once (at least 1).
        """
        self.store = store
        self.queue = queue
        self.commands = commands
        self.registration = registration
        self.pulls = pulls
        self.clock = clock
        self.registry = registry
        self.interval = interval
        self.maxOutstanding = max(1, maxOutstanding)
        self._terminals: dict[str, _Terminal] = {}
        self._loop: LoopingCall | None = None
        self._checking: Deferred[Any] | None = None
        #: Terminals registered and not yet looked at; the look in progress (L{terminalRegistered}).
        self._registered: set[str] = set()
        self._sorting: Deferred[set[str]] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def hook(self) -> None:
        """Follow registrations and the queue's deliveries."""
        self.registration.observers.append(self.terminalRegistered)
        self.queue.observers.append(self.commandFinished)

    def start(self) -> None:
        """Start the periodic checks (every C{interval} seconds, the first after one)."""
        if self.interval <= 0 or self._loop is not None:
            return
        self._loop = LoopingCall(self.checkConnected)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("periodic reconciliation stopped", f)
        )

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _work(self, sn: str) -> _Terminal:
        work = self._terminals.get(sn)
        if work is None:
            work = self._terminals[sn] = _Terminal()
        return work

    def outstanding(self, sn: str) -> int:
        """Commands of the reconciler queued for C{sn} and not finished."""
        work = self._terminals.get(sn)
        return 0 if work is None else sum(len(ids) for ids in work.outstanding.values())

    def backlog(self) -> int:
        """Persons waiting to be queued plus commands outstanding, over all terminals."""
        return sum(len(w.plan) + self.outstanding(sn) for sn, w in self._terminals.items())

    # -- triggers ------------------------------------------------------------------------------

    def terminalRegistered(self, sn: str) -> None:
        """
        A registration observer: reconcile the terminal (its capacity counters are fresh) if it
        has persons.  Which of the terminals registered meanwhile have any is read in one query
        while the previous one runs (a storm: one query per batch, not two per terminal).
        """
        self._work(sn).added.clear()
        self._registered.add(sn)
        if self._sorting is None:
            self._sortRegistered()

    def _sortRegistered(self) -> None:
        batch = sorted(self._registered)[:_REGISTERED_BATCH]
        self._registered.difference_update(batch)
        if not batch:
            self._sorting = None
            return
        # bookkeeping after registrations: the background lane, whoever fired the last look
        d: Deferred[set[str]] = inBackground(self.store.terminalsWithPersons, batch)
        self._sorting = d

        def sorted_(withPersons: set[str]) -> None:
            for sn in batch:
                if sn in withPersons:
                    inBackground(self._reconcileRegistered, sn)
                else:
                    self._forgetIfIdle(None, sn)  # nothing to do there

        def failed(f: Failure) -> None:
            for sn in batch:  # each looks for itself (and fails or not on its own)
                inBackground(self._reconcileRegistered, sn)

        d.addCallbacks(sorted_, failed)
        d.addBoth(lambda _: self._sortRegistered())

    def _reconcileRegistered(self, sn: str) -> None:
        d = self.reconcileTerminal(sn)
        d.addBoth(self._forgetIfIdle, sn)
        self.watch(d, sn)

    def _forgetIfIdle(self, result: object, sn: str) -> object:
        """Keep no state for a terminal with nothing going on (most terminals of a fleet)."""
        work = self._terminals.get(sn)
        if (
            work is not None
            and not work.lock.locked
            and not work.plan
            and not work.outstanding
            and not work.unapplied
            and not work.failures
            and not any(work.added.values())
        ):
            del self._terminals[sn]
        return result

    def watch(self, d: Deferred[Any], what: str) -> None:
        """
        Log the failure of work nobody waits for (a pass started by a change): a store outage
        as a warning (the next pass retries), anything else with its traceback.
        """

        def failed(f: Failure) -> None:
            if f.check(ValueError):
                # a terminal or person deleted while the pass ran: nothing left to do there
                self.log.info(
                    "reconciling {what} stopped: {error}", what=what, error=f.getErrorMessage()
                )
            elif f.check(StoreUnavailable):
                self.log.warn(
                    "reconciling {what} paused, the store is unavailable: {error}",
                    what=what,
                    error=f.getErrorMessage(),
                )
            else:
                self.log.failure("reconciling {what} failed", f, what=what)

        d.addErrback(failed)

    def reconcileTerminal(self, sn: str) -> Deferred[None]:
        """A pass over every person of C{sn} (and every person it holds for the fleet)."""
        return self._work(sn).lock.run(self._pass, sn, None)

    @inlineCallbacks
    def reconcilePerson(self, enrollid: int, alsoOn: Iterable[str] = ()) -> Any:
        """
        A pass over one person on every terminal it is assigned to, holds it, or C{alsoOn}.
        """
        person: Person | None = yield self.store.getPerson(enrollid)
        targets = set(alsoOn)
        if person is not None:
            targets |= yield self.assignedTerminals(person)
        for sync in (yield self.store.listPersonSync(None, enrollid)):
            targets.add(sync.sn)
        for sn in sorted(targets):
            yield self._work(sn).lock.run(self._pass, sn, {enrollid})

    @inlineCallbacks
    def assignedTerminals(self, person: Person) -> Any:
        """The terminals C{person} is assigned to, directly or through its groups."""
        terminals = set(person.terminals)
        for name in person.groups:
            group = yield self.store.getGroup(name)
            if group is not None:
                terminals |= set(group.terminals)
        return terminals

    @inlineCallbacks
    def claim(self, enrollid: int, sn: str) -> Any:
        """An operator says the user C{enrollid} on C{sn} is the fleet person's: overwrite it."""
        yield self.store.savePersonSync(PersonSync(sn, enrollid, SYNC_PENDING, owned=True))
        yield self._work(sn).lock.run(self._pass, sn, {enrollid})

    @inlineCallbacks
    def checkConnected(self) -> Any:
        """
        The periodic check: each connected terminal holding fleet persons, one after the other,
        has its user list checked, then is reconciled.  Skipped while the previous one runs.
        """
        if self._checking is not None or self.registry is None:
            return
        done: Deferred[None] = Deferred()
        self._checking = done
        try:
            for sn in list(self.registry.connected()):
                yield self.checkTerminal(sn)
        finally:
            self._checking = None
            done.callback(None)

    @inlineCallbacks
    def checkTerminal(self, sn: str) -> Any:
        """Check what C{sn} holds (user list) and reconcile it, unless it is busy."""
        if not self.commands.isConnected(sn) or self.pulls.busy(sn) or self.outstanding(sn):
            return
        syncs = yield self.store.listPersonSync(sn, None)
        if not syncs:
            return
        try:
            yield self.pulls.refreshUsers(sn)
        except Exception as e:
            self.log.warn("{sn}: user list check failed: {error}", sn=sn, error=str(e))
            return
        yield self.reconcileTerminal(sn)

    # -- a pass --------------------------------------------------------------------------------

    @inlineCallbacks
    def _pass(self, sn: str, only: set[int] | None, recheck: bool = False) -> Any:
        """
        Diff and plan (under the terminal's lock).  C{recheck}: after a person's batch finished
        (a change made meanwhile is pushed now); a person re-checked into a new batch more than
        L{_MAX_RECHECKS} times in a row is failed (C{not converging}) instead.
        """
        work = self._work(sn)
        syncs: dict[int, PersonSync] = {}
        if only is None:
            syncs = {s.enrollid: s for s in (yield self.store.listPersonSync(sn, None))}
        else:
            for enrollid in only:
                for sync in (yield self.store.listPersonSync(sn, enrollid)):
                    syncs[sync.enrollid] = sync
        desired: dict[int, Person] = {}
        known: dict[int, User] = {}
        if only is None:
            for person in (yield self.store.personsForTerminal(sn)):
                desired[person.enrollid] = person
            candidates = sorted(set(desired) | set(syncs))
            if not candidates:
                # no fleet person here (a registration costs these two reads, nothing more)
                return
            if len(candidates) <= _READ_ONE_BY_ONE:
                for enrollid in candidates:
                    user = yield self.store.getUser(sn, enrollid)
                    if user is not None:
                        known[enrollid] = user
            else:
                after: int | None = None
                while True:
                    users = yield self.store.listUsers(sn, 1000, after)
                    if not users:
                        break
                    after = users[-1].enrollid
                    known.update((u.enrollid, u) for u in users)
        else:
            for enrollid in only:
                person = yield self.store.getPerson(enrollid)
                if person is not None and sn in (yield self.assignedTerminals(person)):
                    desired[enrollid] = person
                user = yield self.store.getUser(sn, enrollid)
                if user is not None:
                    known[enrollid] = user
            candidates = sorted(only)
        terminal: Terminal | None = yield self.store.getTerminal(sn)
        if terminal is None:
            return
        if only is None:
            work.plan.clear()
            yield self._adoptQueued(sn, work)
        else:
            work.plan = deque(item for item in work.plan if item[0] not in only)
        connected = self.commands.isConnected(sn)
        localNow = self.registration.cloudTimeFor(terminal)
        for index, enrollid in enumerate(candidates):
            if index and index % _DIFF_SLICE == 0:
                # a big terminal's diff is cut in slices: the reactor serves others in between
                yield deferLater(self.clock, 0, lambda: None)
            if work.outstanding.get(enrollid) or work.unapplied.get(enrollid):
                continue  # its commands finish first; their outcome re-checks it
            person = desired.get(enrollid)
            sync = syncs.get(enrollid)
            outcome = diffPerson(
                enrollid, person, known.get(enrollid), sync is not None and sync.owned, localNow
            )
            if outcome.conflict is not None:
                yield self._save(sn, enrollid, SYNC_CONFLICT, False, outcome.conflict, sync)
                continue
            if not outcome.commands:
                if person is None:
                    if sync is not None:
                        yield self.store.deletePersonSync(sn, enrollid)
                else:
                    yield self._save(sn, enrollid, SYNC_SYNCED, True, {}, sync)
                continue
            if not connected:
                yield self._save(
                    sn, enrollid, SYNC_PENDING, outcome.owned, {"waiting": "terminal offline"}, sync
                )
                continue
            if recheck:
                work.rechecks[enrollid] = work.rechecks.get(enrollid, 0) + 1
                if work.rechecks[enrollid] > _MAX_RECHECKS:
                    names = [name for name, _ in outcome.commands]
                    yield self._save(
                        sn,
                        enrollid,
                        SYNC_FAILED,
                        outcome.owned,
                        {"reason": "not converging", "commands": names},
                        sync,
                    )
                    continue
            else:
                work.rechecks.pop(enrollid, None)
            if any(outcome.needs.values()):
                full = self._capacityProblem(terminal, work, outcome.needs)
                if full is not None:
                    yield self._save(sn, enrollid, SYNC_FAILED, False, full, sync)
                    continue
            yield self._save(sn, enrollid, SYNC_PENDING, outcome.owned, {}, sync)
            work.plan.append((enrollid, outcome.commands))
        yield self._feed(sn, work)

    @inlineCallbacks
    def _adoptQueued(self, sn: str, work: _Terminal) -> Any:
        """Commands of the reconciler already in the queue (a restart) count as outstanding."""
        work.outstanding.clear()
        for command in (yield self.store.pendingCommands(sn)):
            if command.actor != ACTOR:
                continue
            enrollid = commandEnrollid(command.payload)
            if enrollid is not None:
                work.outstanding.setdefault(enrollid, set()).add(command.id)

    def _capacityProblem(
        self, terminal: Terminal, work: _Terminal, needs: Mapping[str, int]
    ) -> dict[str, Any] | None:
        devinfo = terminal.devinfo or {}
        for key, need in needs.items():
            size = _int(devinfo.get(key))
            if size is None or need == 0:
                continue
            used = (_int(devinfo.get(_USED[key])) or 0) + work.added.get(key, 0)
            if used + need > size:
                return {"reason": "capacity", "capacity": key, "size": size, "used": used}
        for key, need in needs.items():
            work.added[key] = work.added.get(key, 0) + need
        return None

    @inlineCallbacks
    def _feed(self, sn: str, work: _Terminal) -> Any:
        """Queue planned persons while fewer than C{maxOutstanding} commands are outstanding."""
        while work.plan and self.outstanding(sn) < self.maxOutstanding:
            if not self.commands.isConnected(sn):
                return
            enrollid, commands = work.plan.popleft()
            ids: set[int] = set()
            work.outstanding[enrollid] = ids
            work.failures.pop(enrollid, None)
            for name, params in commands:
                command: StoredCommand = yield self.queue.submit(
                    sn, name, params, ACTOR, wait=False
                )
                if command.status not in FINAL_STATUSES:
                    ids.add(command.id)
            previous = yield self._sync(sn, enrollid)
            yield self._save(sn, enrollid, SYNC_PENDING, True, {}, previous, tuple(sorted(ids)))
            if not ids:
                yield self._settle(sn, work, enrollid)

    # -- outcomes ------------------------------------------------------------------------------

    def commandFinished(self, command: StoredCommand) -> None:
        """A queue observer: one of the reconciler's commands was delivered (or given up)."""
        if command.actor != ACTOR or command.status not in FINAL_STATUSES:
            return
        work = self._work(command.sn)
        enrollid = commandEnrollid(command.payload)
        if enrollid is not None:
            # known now, before any pass that might run first reads what the terminal holds
            work.unapplied[enrollid] = work.unapplied.get(enrollid, 0) + 1
        self.watch(work.lock.run(self._finished, command, work), command.sn)

    @inlineCallbacks
    def _finished(self, command: StoredCommand, work: _Terminal) -> Any:
        sn = command.sn
        enrollid = commandEnrollid(command.payload)
        if enrollid is None:
            return
        done = command.status == COMMAND_SUCCEEDED or _alreadyGone(command)
        try:
            if done:
                yield self._apply(sn, enrollid, command.payload)
        finally:
            left = work.unapplied.get(enrollid, 1) - 1
            if left > 0:
                work.unapplied[enrollid] = left
            else:
                work.unapplied.pop(enrollid, None)
        if not done and enrollid not in work.failures:
            work.failures[enrollid] = {
                "command": command.name,
                "commandId": command.id,
                "status": command.status,
                "reply": dict(command.reply or {}),
            }
        ids = work.outstanding.get(enrollid)
        if ids is not None:
            ids.discard(command.id)
            if not ids:
                yield self._settle(sn, work, enrollid)
        elif not work.unapplied.get(enrollid):
            # a command this process did not queue (before a restart): check the person again
            work.failures.pop(enrollid, None)
            yield self._pass(sn, {enrollid})
        yield self._feed(sn, work)

    @inlineCallbacks
    def _settle(self, sn: str, work: _Terminal, enrollid: int) -> Any:
        """Every command of C{enrollid}'s batch finished: synced, failed, or gone."""
        work.outstanding.pop(enrollid, None)
        failure = work.failures.pop(enrollid, None)
        previous = yield self._sync(sn, enrollid)
        if failure is not None:
            owned = previous.owned if previous is not None else False
            yield self._save(sn, enrollid, SYNC_FAILED, owned, failure, previous)
            return
        # what the terminal now holds is known: whatever changed meanwhile is pushed, or it is
        # synced (or, no longer assigned and deleted, forgotten)
        yield self._pass(sn, {enrollid}, recheck=True)

    @inlineCallbacks
    def _apply(self, sn: str, enrollid: int, payload: Mapping[str, Any]) -> Any:
        """What the terminal now holds, after a command succeeded."""
        name = payload.get("cmd")
        try:
            if name == "setuserinfo":
                yield self.store.saveCredential(
                    sn,
                    enrollid,
                    payload.get("backupnum"),
                    payload.get("record"),
                    payload.get("name"),
                    payload.get("admin"),
                )
                if "enable" in payload:
                    yield self._setEnabled(sn, enrollid, payload["enable"] == 1)
            elif name == "setusername":
                yield self.store.saveCredential(
                    sn, enrollid, None, None, payload["record"][0]["name"], None
                )
            elif name == "enableuser":
                yield self._setEnabled(sn, enrollid, payload.get("enflag") == 1)
            elif name == "deleteuser":
                if payload.get("backupnum") == 13:
                    yield self.store.deleteUser(sn, enrollid)
                else:
                    yield self.store.deleteCredential(sn, enrollid, payload["backupnum"])
        except ValueError:
            pass  # the terminal was deleted meanwhile

    @inlineCallbacks
    def _setEnabled(self, sn: str, enrollid: int, enabled: bool) -> Any:
        user: User | None = yield self.store.getUser(sn, enrollid)
        if user is not None and user.enabled != enabled:
            yield self.store.saveUser(sn, enrollid, user.name, user.admin, enabled)

    # -- state ---------------------------------------------------------------------------------

    @inlineCallbacks
    def _sync(self, sn: str, enrollid: int) -> Any:
        rows = yield self.store.listPersonSync(sn, enrollid)
        return rows[0] if rows else None

    def _save(
        self,
        sn: str,
        enrollid: int,
        state: str,
        owned: bool,
        detail: Mapping[str, Any],
        previous: PersonSync | None,
        commands: tuple[int, ...] = (),
    ) -> Deferred[Any]:
        sync = PersonSync(sn, enrollid, state, owned, dict(detail), commands)
        if previous is not None and attrs.evolve(previous, updatedAt=None) == sync:
            return succeed(None)
        d: Deferred[Any] = self.store.savePersonSync(sync)

        def saved(stored: PersonSync) -> None:
            before = None if previous is None else previous.state
            if before != state:
                self.log.info(
                    "person {enrollid} on {sn}: {state}",
                    enrollid=enrollid,
                    sn=sn,
                    state=state,
                    previous=before,
                )

        return d.addCallback(saved)
