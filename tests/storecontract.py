"""
The behaviour every L{tm20.interfaces.IStore} implementation must have, as a mixin.

Use it as::

    class MyStoreTests(StoreContractTests, twisted.trial.unittest.TestCase):
        def createStore(self) -> Deferred[IStore]:
            # a started store on an EMPTY database, using self.clock for "now";
            # register its cleanup with self.addCleanup
            ...

        def reopenStore(self) -> Deferred[IStore]:   # optional
            # a new, started store on the same database as the last createStore/reopenStore
            ...

C{setUp} creates C{self.clock} (a L{Clock} set to L{T0}) before calling C{createStore}: the store
must read "now" from it, so the tests can check the server's timestamps exactly.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from tm20.events.model import EventQuery
from tm20.interfaces import (
    IAuditStore,
    ICommandStore,
    ILogBatchWriter,
    ILogStore,
    IPersonStore,
    IStore,
    IStoreLifecycle,
    ITerminalStore,
    ITokenStore,
    IUserStore,
    IWatchStore,
)
from tm20.model import (
    COMMAND_CANCELLED,
    COMMAND_EXPIRED,
    COMMAND_FAILED,
    COMMAND_QUEUED,
    COMMAND_SENT,
    COMMAND_SUCCEEDED,
    COMMAND_TIMED_OUT,
    SYNC_CONFLICT,
    SYNC_PENDING,
    SYNC_SYNCED,
    ApiToken,
    AuditEntry,
    Credential,
    LogInsertResult,
    LogQuery,
    Person,
    PersonSync,
    StoredCommand,
    StoredLog,
    Terminal,
    TerminalGroup,
    User,
)
from tm20.protocol.messages import LogRecord, RejectedRecord
from tm20.protocol.storable import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    checkLogRecord,
    checkUserFields,
)
from tm20.store._ops import BrokenConstraint
from tm20.store._rows import StagedBatch
from tm20.store._terminals import (
    REGISTRATION_BATCHES_AT_ONCE,
    registrationParams,
    writeSightings,
)

from . import captures
from .storecontract_watch import WatchStoreContractTests

#: The clock's time when a test starts: 2026-04-30 11:59:37 UTC.
T0 = 1_777_550_377.0


def loadCapture() -> list[dict[str, Any]]:
    """The frames of the TH900 capture (a real terminal's C{reg} and two fingerprints)."""
    return captures.frames()


def at(seconds: float) -> datetime:
    """The aware UTC datetime of a POSIX time."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def punch(
    enrollid: int,
    time: str,
    mode: int = 0,
    inout: int = 0,
    event: int = 0,
    **kwargs: Any,
) -> LogRecord:
    """A log record (a door event when C{enrollid} is 0)."""
    return LogRecord(enrollid=enrollid, time=time, mode=mode, inout=inout, event=event, **kwargs)


if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object

SN = "ZYTI25116685"
OTHER_SN = "ZX0006827500"


class StoreContractTests(WatchStoreContractTests, _Base):
    """
    Behaviour tests of every L{IStore} method; mix into a C{twisted.trial.unittest.TestCase}.
    """

    store: Any
    clock: Clock

    # -- hooks -------------------------------------------------------------------------------------

    def createStore(self) -> Deferred[Any]:
        """A started store on an empty database, reading "now" from C{self.clock}."""
        raise NotImplementedError("subclasses implement createStore")

    def reopenStore(self) -> Deferred[Any]:
        """Optional: a new started store on the same database (the old one is stopped first)."""
        raise NotImplementedError

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.clock = Clock()
        self.clock.advance(T0)

        def created(store: Any) -> None:
            self.store = store

        return self.createStore().addCallback(created)

    # -- helpers -----------------------------------------------------------------------------------

    @inlineCallbacks
    def _terminal(self, sn: str = SN) -> Generator[Deferred[Any], Any, Terminal]:
        terminal: Terminal = yield self.store.recordTerminalSeen(
            sn, None, {"modelname": "tfs30"}, True
        )
        return terminal

    @inlineCallbacks
    def _allLogs(
        self, sn: str | None = SN, door: bool = False
    ) -> Generator[Deferred[Any], Any, list[StoredLog]]:
        query = self.store.queryDoorEvents if door else self.store.queryLogs
        rows: list[StoredLog] = yield query(LogQuery(sn=sn, limit=100_000))
        return rows

    # -- interface ---------------------------------------------------------------------------------

    def test_providesIStore(self) -> None:
        """The store provides every method of L{IStore}."""
        self.assertTrue(verifyObject(IStore, self.store))

    @inlineCallbacks
    def test_writeLogBatches(self) -> Generator[Deferred[Any], Any, None]:
        """
        L{ILogBatchWriter}, the store's one log operation under the ingest service's group
        commit: several batches in one call, each with its own result, in order; a record held
        by an earlier batch of the call counts as a duplicate of the later one; a batch holding
        a record that can never be stored fails alone, the others are written.
        """
        self.assertTrue(verifyObject(ILogBatchWriter, self.store))
        self.assertGreaterEqual(self.store.logFlushPolicy.maxConcurrentFlushes, 1)
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 07:00:00")])  # an old row
        results = yield self.store.writeLogBatches(
            [
                StagedBatch(SN, [punch(1, "2026-04-30 08:00:00"), punch(1, "2026-04-30 07:00:00")]),
                StagedBatch(
                    OTHER_SN,
                    [punch(2, "2026-04-30 08:00:00"), punch(2, "2026-04-30 08:00:01", mode=2**64)],
                ),
                StagedBatch(SN, [punch(1, "2026-04-30 08:00:00"), punch(3, "2026-04-30 08:00:00")]),
            ]
        )
        self.assertEqual(len(results), 3)
        self.assertEqual(results[0], LogInsertResult(1, 1))
        self.assertIsInstance(results[1], Failure)
        self.assertTrue(results[1].check(ValueError))
        self.assertEqual(results[2], LogInsertResult(1, 1))
        self.assertEqual((yield self.store.countLogs(SN)), 3)
        self.assertEqual((yield self.store.countLogs(OTHER_SN)), 0)

    def test_providesEveryRole(self) -> None:
        """
        One store object provides each role on its own, so a caller may ask for just the role
        it uses; L{IStore} is their union.
        """
        roles = (
            IStoreLifecycle,
            ITerminalStore,
            IUserStore,
            ILogStore,
            ICommandStore,
            ITokenStore,
            IAuditStore,
        )
        for role in roles:
            self.assertTrue(role.providedBy(self.store), role)
            self.assertTrue(verifyObject(role, self.store))
            self.assertTrue(IStore.isOrExtends(role), role)
        self.assertTrue(IWatchStore.providedBy(self.store))
        self.assertTrue(IPersonStore.providedBy(self.store))

    @inlineCallbacks
    def test_ping(self) -> Generator[Deferred[Any], Any, None]:
        """C{ping} answers C{True}."""
        self.assertIs((yield self.store.ping()), True)

    # -- terminals ---------------------------------------------------------------------------------

    @inlineCallbacks
    def test_recordTerminalSeenCreatesApproved(self) -> Generator[Deferred[Any], Any, None]:
        """A new terminal is created from C{reg}, C{devinfo} fields copied into their own fields."""
        reg = loadCapture()[0]
        terminal = yield self.store.recordTerminalSeen(reg["sn"], None, reg["devinfo"], True)
        self.assertIsInstance(terminal, Terminal)
        self.assertEqual(terminal.sn, "ZYTI25116685")
        self.assertIsNone(terminal.cpusn)
        self.assertEqual(terminal.mac, "00-01-F5-02-7D-5F")
        self.assertEqual(terminal.modelname, "tfs30")
        self.assertEqual(terminal.firmware, "TH900_click V5.0")
        self.assertEqual(dict(terminal.devinfo), reg["devinfo"])
        self.assertIs(terminal.approved, True)
        self.assertIs(terminal.active, True)
        self.assertEqual(terminal.firstSeen, at(T0))
        self.assertEqual(terminal.lastSeen, at(T0))
        self.assertEqual(terminal.firstSeen.utcoffset(), timedelta(0))
        self.assertEqual((yield self.store.getTerminal(reg["sn"])), terminal)

    @inlineCallbacks
    def test_recordTerminalSeenCreatesPending(self) -> Generator[Deferred[Any], Any, None]:
        """With C{approvedIfNew} false a new terminal is pending, listed apart from approved ones."""
        pending = yield self.store.recordTerminalSeen("PENDING1", "CPU1", {}, False)
        self.assertIs(pending.approved, False)
        self.assertEqual(pending.cpusn, "CPU1")
        yield self.store.recordTerminalSeen("APPROVED1", None, {}, True)
        self.assertEqual([t.sn for t in (yield self.store.listTerminals(False))], ["PENDING1"])
        self.assertEqual([t.sn for t in (yield self.store.listTerminals(True))], ["APPROVED1"])
        self.assertEqual(
            [t.sn for t in (yield self.store.listTerminals(None))], ["APPROVED1", "PENDING1"]
        )

    @inlineCallbacks
    def test_recordTerminalSeenUpdates(self) -> Generator[Deferred[Any], Any, None]:
        """
        Seen again: C{cpusn} is set only while it has none, C{devinfo} and its fields are
        replaced, C{lastSeen} moves, C{firstSeen} and the approval stay.
        """
        yield self.store.recordTerminalSeen(
            SN, None, {"mac": "AA", "modelname": "tfs30", "firmware": "v1"}, False
        )
        self.clock.advance(60)
        second = yield self.store.recordTerminalSeen(
            SN, "CPU-A", {"mac": "BB", "modelname": "tfs30", "firmware": "v2", "useduser": 3}, True
        )
        self.assertEqual(second.cpusn, "CPU-A")
        self.assertEqual(second.mac, "BB")
        self.assertEqual(second.firmware, "v2")
        self.assertEqual(dict(second.devinfo)["useduser"], 3)
        self.assertIs(second.approved, False, "approvedIfNew applies to new terminals only")
        self.assertEqual(second.firstSeen, at(T0))
        self.assertEqual(second.lastSeen, at(T0 + 60))
        self.clock.advance(30)
        third = yield self.store.recordTerminalSeen(SN, "CPU-B", {"firmware": "v3"}, True)
        self.assertEqual(third.cpusn, "CPU-A", "a cpusn once set is kept")
        self.assertEqual(third.firmware, "v3")
        self.assertEqual(third.lastSeen, at(T0 + 90))
        self.assertEqual(third.firstSeen, at(T0))
        self.assertEqual((yield self.store.getTerminal(SN)), third)
        self.assertEqual(len((yield self.store.listTerminals(None))), 1)

    @inlineCallbacks
    def test_recordTerminalSeenKeepsOperatorFields(self) -> Generator[Deferred[Any], Any, None]:
        """A pre-registered terminal keeps its name, time zone and approval when it connects."""
        created = yield self.store.createTerminal(SN, "Front door", False, "Europe/Paris")
        self.assertIsNone(created.firstSeen)
        self.assertIsNone(created.lastSeen)
        self.clock.advance(5)
        seen = yield self.store.recordTerminalSeen(SN, None, {"modelname": "tfs30"}, True)
        self.assertEqual(seen.name, "Front door")
        self.assertEqual(seen.timezone, "Europe/Paris")
        self.assertIs(seen.approved, False)
        self.assertEqual(seen.modelname, "tfs30")
        self.assertEqual(seen.firstSeen, at(T0 + 5))
        self.assertEqual(seen.lastSeen, at(T0 + 5))

    @inlineCallbacks
    def test_createTerminal(self) -> Generator[Deferred[Any], Any, None]:
        """C{createTerminal} stores the operator's fields; the terminal is then listed."""
        terminal = yield self.store.createTerminal("T1", "Gate", True, "Africa/Abidjan")
        self.assertEqual(
            (terminal.sn, terminal.name, terminal.approved, terminal.timezone, terminal.active),
            ("T1", "Gate", True, "Africa/Abidjan", True),
        )
        self.assertIsNone(terminal.cpusn)
        self.assertEqual(dict(terminal.devinfo), {})
        self.assertEqual((yield self.store.listTerminals(True)), [terminal])
        self.assertEqual((yield self.store.getTerminal("T1")), terminal)

    @inlineCallbacks
    def test_createTerminalDuplicate(self) -> Generator[Deferred[Any], Any, None]:
        """Creating a terminal that exists (created or seen) fails with C{ValueError}."""
        yield self.store.createTerminal("T1", "Gate", True, None)
        yield self.assertFailure(self.store.createTerminal("T1", "Other", False, None), ValueError)
        yield self._terminal("T2")
        yield self.assertFailure(self.store.createTerminal("T2", None, True, None), ValueError)
        self.assertEqual((yield self.store.getTerminal("T1")).name, "Gate")

    @inlineCallbacks
    def test_getTerminalUnknown(self) -> Generator[Deferred[Any], Any, None]:
        """An unknown C{sn} gives C{None}."""
        self.assertIsNone((yield self.store.getTerminal("NOPE")))

    @inlineCallbacks
    def test_listTerminalsSorted(self) -> Generator[Deferred[Any], Any, None]:
        """Terminals are listed by C{sn}, whatever the creation order."""
        for sn in ["M", "A", "Z", "B"]:
            yield self._terminal(sn)
        self.assertEqual([t.sn for t in (yield self.store.listTerminals(None))], list("ABMZ"))
        self.assertEqual((yield self.store.listTerminals(False)), [])

    @inlineCallbacks
    def test_updateTerminal(self) -> Generator[Deferred[Any], Any, None]:
        """C{updateTerminal} changes exactly the fields given, durably."""
        yield self.store.recordTerminalSeen(SN, None, {"modelname": "tfs30"}, False)
        updated = yield self.store.updateTerminal(
            SN, {"name": "Lobby", "approved": True, "timezone": "Asia/Kuala_Lumpur"}
        )
        self.assertEqual(updated.name, "Lobby")
        self.assertIs(updated.approved, True)
        self.assertEqual(updated.timezone, "Asia/Kuala_Lumpur")
        self.assertIs(updated.active, True)
        self.assertEqual(updated.modelname, "tfs30")
        again = yield self.store.updateTerminal(SN, {"active": False, "name": None})
        self.assertIs(again.active, False)
        self.assertIsNone(again.name)
        self.assertEqual(again.timezone, "Asia/Kuala_Lumpur")
        self.assertEqual((yield self.store.getTerminal(SN)), again)
        self.assertEqual((yield self.store.updateTerminal(SN, {})), again)

    @inlineCallbacks
    def test_updateTerminalRejectsUnknownFields(self) -> Generator[Deferred[Any], Any, None]:
        """A field outside C{TERMINAL_EDITABLE_FIELDS} is a C{ValueError}; nothing changes."""
        before = yield self._terminal()
        yield self.assertFailure(
            self.store.updateTerminal(SN, {"name": "X", "cpusn": "forged"}), ValueError
        )
        yield self.assertFailure(self.store.updateTerminal(SN, {"sn": "OTHER"}), ValueError)
        self.assertEqual((yield self.store.getTerminal(SN)), before)

    @inlineCallbacks
    def test_updateTerminalUnknown(self) -> Generator[Deferred[Any], Any, None]:
        """Updating an unknown terminal gives C{None} and creates nothing."""
        self.assertIsNone((yield self.store.updateTerminal("NOPE", {"name": "x"})))
        self.assertEqual((yield self.store.listTerminals(None)), [])

    @inlineCallbacks
    def test_deleteTerminalCascades(self) -> Generator[Deferred[Any], Any, None]:
        """Deleting a terminal removes its users, credentials, logs, door events and commands."""
        for sn in (SN, OTHER_SN):
            yield self._terminal(sn)
            yield self.store.saveCredential(sn, 1, 0, "abcd", "Ben", 0)
            yield self.store.addLogs(
                sn, [punch(1, "2026-04-30 08:00:00"), punch(0, "2026-04-30 08:00:01", event=3)]
            )
            yield self.store.enqueueCommand(sn, "opendoor", {"cmd": "opendoor"}, "ops", 3)
            yield self.store.quarantineRecords(sn, "sendlog", [RejectedRecord("[1]", "bad")])
        command = (yield self.store.pendingCommands(SN))[0]
        self.assertIs((yield self.store.deleteTerminal(SN)), True)
        self.assertIsNone((yield self.store.getTerminal(SN)))
        self.assertIsNone((yield self.store.getUser(SN, 1)))
        self.assertEqual((yield self.store.listUsers(SN, 10, None)), [])
        self.assertEqual((yield self._allLogs(SN)), [])
        self.assertEqual((yield self._allLogs(SN, door=True)), [])
        self.assertEqual((yield self.store.countLogs(SN)), 0)
        self.assertEqual((yield self.store.pendingCommands(SN)), [])
        self.assertIsNone((yield self.store.getCommand(command.id)))
        self.assertEqual((yield self.store.listQuarantine(SN, 10, None)), [])
        # the other terminal keeps everything
        self.assertEqual(len((yield self.store.listQuarantine(OTHER_SN, 10, None))), 1)
        self.assertIsNotNone((yield self.store.getTerminal(OTHER_SN)))
        self.assertEqual(len((yield self.store.getUser(OTHER_SN, 1)).credentials), 1)
        self.assertEqual(len((yield self._allLogs(OTHER_SN))), 1)
        self.assertEqual(len((yield self._allLogs(OTHER_SN, door=True))), 1)
        self.assertEqual(len((yield self.store.pendingCommands(OTHER_SN))), 1)
        self.assertIs((yield self.store.deleteTerminal(SN)), False)

    @inlineCallbacks
    def test_deletedTerminalStartsAfresh(self) -> Generator[Deferred[Any], Any, None]:
        """A terminal seen again after deletion is new again (new C{firstSeen}, no old users)."""
        yield self._terminal()
        yield self.store.saveUser(SN, 7, "Ann", 0, True)
        yield self.store.deleteTerminal(SN)
        self.clock.advance(100)
        terminal = yield self.store.recordTerminalSeen(SN, None, {}, False)
        self.assertEqual(terminal.firstSeen, at(T0 + 100))
        self.assertIs(terminal.approved, False)
        self.assertIsNone((yield self.store.getUser(SN, 7)))

    # -- terminal identity -------------------------------------------------------------------------

    @inlineCallbacks
    def test_bindTerminalIdentityFirstBindingWins(self) -> Generator[Deferred[Any], Any, None]:
        """C{bindTerminalIdentity} binds an unbound terminal once; later bindings change nothing."""
        terminal = yield self._terminal()
        self.assertEqual((terminal.boundCpusn, terminal.boundMac, terminal.boundAt), (None,) * 3)
        self.clock.advance(5)
        bound = yield self.store.bindTerminalIdentity(SN, "CPU-A", "00-01-F5-02-7D-5F")
        self.assertEqual(
            (bound.boundCpusn, bound.boundMac, bound.boundAt),
            ("CPU-A", "00-01-F5-02-7D-5F", at(T0 + 5)),
        )
        again = yield self.store.bindTerminalIdentity(SN, "CPU-B", None)
        self.assertEqual(again, bound)
        self.assertEqual((yield self.store.getTerminal(SN)), bound)
        self.assertIsNone((yield self.store.bindTerminalIdentity("NOPE", "C", None)))
        macOnly = yield self._terminal("TH900")
        macOnly = yield self.store.bindTerminalIdentity("TH900", None, "AA-BB")
        self.assertEqual((macOnly.boundCpusn, macOnly.boundMac), (None, "AA-BB"))

    @inlineCallbacks
    def test_registerTerminalRecordsAndBinds(self) -> Generator[Deferred[Any], Any, None]:
        """
        C{registerTerminal} records a sighting as C{recordTerminalSeen} does and binds an
        approved, active, unbound terminal in the same call; the first binding wins.
        """
        seen: list[Any] = []

        def check(known: Any) -> None:
            seen.append(known)

        terminal, refusal, bound = yield self.store.registerTerminal(
            SN, "CPU-A", {"mac": "AA-BB", "modelname": "tfs30"}, True, check, ("CPU-A", "AA-BB")
        )
        self.assertEqual(seen, [None])
        self.assertIsNone(refusal)
        self.assertIs(bound, True)
        self.assertEqual(
            (terminal.cpusn, terminal.mac, terminal.modelname, terminal.approved),
            ("CPU-A", "AA-BB", "tfs30", True),
        )
        self.assertEqual(
            (terminal.boundCpusn, terminal.boundMac, terminal.boundAt),
            ("CPU-A", "AA-BB", at(T0)),
        )
        self.assertEqual(terminal.firstSeen, at(T0))
        self.assertEqual((yield self.store.getTerminal(SN)), terminal)
        self.clock.advance(5)
        again, refusal, bound = yield self.store.registerTerminal(
            SN, "CPU-B", {"firmware": "v2"}, True, check, ("CPU-B", None)
        )
        self.assertEqual(seen[1], terminal)
        self.assertEqual((refusal, bound), (None, False))
        self.assertEqual((again.boundCpusn, again.boundMac), ("CPU-A", "AA-BB"))
        self.assertEqual((again.firmware, again.lastSeen), ("v2", at(T0 + 5)))
        # Without a check or a binding: a heartbeat's sighting.
        self.clock.advance(5)
        beat, refusal, bound = yield self.store.registerTerminal(SN, None, {}, True, None, None)
        self.assertEqual((refusal, bound, beat.lastSeen), (None, False, at(T0 + 10)))
        self.assertEqual(beat.devinfo, again.devinfo)

    @inlineCallbacks
    def test_registerTerminalBindsWithoutCheck(self) -> Generator[Deferred[Any], Any, None]:
        """
        Without a check, a binding is made and reported the same way: the first registration of
        an approved terminal binds it (C{bound} true), a later claim does not (C{bound} false).
        """
        first, refusal, bound = yield self.store.registerTerminal(
            SN, "CPU-A", {"mac": "AA-BB"}, True, None, ("CPU-A", "AA-BB")
        )
        self.assertEqual((refusal, bound), (None, True))
        self.assertEqual(
            (first.boundCpusn, first.boundMac, first.boundAt), ("CPU-A", "AA-BB", at(T0))
        )
        self.clock.advance(5)
        again, refusal, bound = yield self.store.registerTerminal(
            SN, "CPU-A", {"mac": "AA-BB"}, True, None, ("CPU-A", "AA-BB")
        )
        self.assertEqual((refusal, bound), (None, False))
        self.assertEqual((again.boundAt, again.lastSeen), (at(T0), at(T0 + 5)))

    @inlineCallbacks
    def test_registerTerminalCountsRegistrations(self) -> Generator[Deferred[Any], Any, None]:
        """
        Each accepted registration counts itself (which connection of a terminal is the
        newest); a refused one does not, nor does an operator's change.
        """
        first, _, _ = yield self.store.registerTerminal(SN, None, {}, True, None, None)
        self.assertEqual(first.registrations, 1)
        second, _, _ = yield self.store.registerTerminal(SN, None, {}, True, None, None)
        self.assertEqual(second.registrations, 2)
        refused, refusal, _ = yield self.store.registerTerminal(
            SN, None, {}, True, lambda known: "no", None
        )
        self.assertEqual((refused.registrations, refusal), (2, "no"))
        yield self.store.updateTerminal(SN, {"name": "door"})
        self.assertEqual((yield self.store.getTerminal(SN)).registrations, 2)
        created = yield self.store.createTerminal("NEW1", None, True, None)
        self.assertEqual(created.registrations, 0)

    @inlineCallbacks
    def test_registerTerminalRefusedWritesNothing(self) -> Generator[Deferred[Any], Any, None]:
        """A refusal from C{check} is returned with the stored terminal; nothing is written."""
        before = yield self.store.recordTerminalSeen(SN, "CPU-A", {"modelname": "tfs30"}, True)
        self.clock.advance(5)
        terminal, refusal, bound = yield self.store.registerTerminal(
            SN, "CPU-X", {"modelname": "other"}, True, lambda known: ("no", known.sn), ("X", None)
        )
        self.assertEqual((terminal, refusal, bound), (before, ("no", SN), False))
        self.assertEqual((yield self.store.getTerminal(SN)), before)
        nobody, refusal, bound = yield self.store.registerTerminal(
            "NEW1", None, {}, True, lambda known: "no", None
        )
        self.assertEqual((nobody, refusal, bound), (None, "no", False))
        self.assertIsNone((yield self.store.getTerminal("NEW1")))

    @inlineCallbacks
    def test_registerTerminalBindsOnlyApprovedActive(self) -> Generator[Deferred[Any], Any, None]:
        """A pending (or disabled) terminal is recorded but not bound."""
        pending, _, bound = yield self.store.registerTerminal(
            "PENDING1", "CPU1", {}, False, None, ("CPU1", None)
        )
        self.assertEqual((pending.approved, pending.boundCpusn, bound), (False, None, False))
        pending, _, bound = yield self.store.registerTerminal(
            "PENDING1", "CPU1", {}, True, None, ("CPU1", None)
        )
        self.assertEqual((pending.approved, pending.boundCpusn, bound), (False, None, False))
        yield self.store.updateTerminal("PENDING1", {"approved": True, "active": False})
        off, _, bound = yield self.store.registerTerminal(
            "PENDING1", "CPU1", {}, True, lambda known: None, ("CPU1", None)
        )
        self.assertEqual((off.boundCpusn, bound), (None, False))
        yield self.store.updateTerminal("PENDING1", {"active": True})
        on, _, bound = yield self.store.registerTerminal(
            "PENDING1", "CPU1", {}, True, lambda known: None, ("CPU1", None)
        )
        self.assertEqual((on.boundCpusn, on.boundMac, bound), ("CPU1", None, True))

    def _countWrites(self) -> list[int]:
        """Count the store's write transactions from now on (its own C{_runOp}, still run)."""
        writes: list[int] = []
        runOp = self.store._runOp

        def counted(write: bool, op: Any, single: bool = False) -> Deferred[Any]:
            if write:
                writes.append(1)
            return runOp(write, op, single)

        self.store._runOp = counted  # type: ignore[method-assign]
        return writes

    def _fillRegistrationSlots(self) -> list[Deferred[Any]]:
        """Registrations that take every slot for one (the next wait for one to end)."""
        return [
            self.store.registerTerminal(f"LONE{i}", None, {}, True, None, None)
            for i in range(REGISTRATION_BATCHES_AT_ONCE)
        ]

    @inlineCallbacks
    def test_registerTerminalTogether(self) -> Generator[Deferred[Any], Any, None]:
        """
        Registrations asked while one is written go together in the next transaction, each
        answered as if alone: two of the same C{sn} in one batch, the later sees the earlier's
        row (the first binds, the second does not; one C{terminal.registered} event).
        """
        writes = self._countWrites()
        busy = self._fillRegistrationSlots()
        asked = [
            self.store.registerTerminal("BATCH2", "C2", {}, True, None, ("C2", None)),
            self.store.registerTerminal("BATCH1", "C1", {"mac": "AA"}, True, None, ("C1", None)),
            self.store.registerTerminal("BATCH2", "C9", {}, True, lambda known: None, ("C9", None)),
            self.store.registerTerminal("BATCH3", None, {}, True, lambda known: "no", None),
        ]
        yield gatherResults(busy)
        answers = []
        for d in asked:
            answers.append((yield d))
        # one transaction for each that found a free slot, one for the four that did not
        self.assertEqual(len(writes), len(busy) + 1)
        (two, _, twoBound), (one, _, oneBound) = answers[:2]
        self.assertEqual((two.sn, two.boundCpusn, twoBound), ("BATCH2", "C2", True))
        self.assertEqual((one.sn, one.mac, one.boundCpusn, oneBound), ("BATCH1", "AA", "C1", True))
        again, refusal, bound = answers[2]
        self.assertEqual((again.sn, again.cpusn, again.boundCpusn), ("BATCH2", "C2", "C2"))
        self.assertEqual((refusal, bound), (None, False))
        self.assertEqual(answers[3], (None, "no", False))
        self.assertIsNone((yield self.store.getTerminal("BATCH3")))
        self.assertEqual((yield self.store.getTerminal("BATCH2")), again)
        events = yield self.store.listEvents(EventQuery(limit=100))
        self.assertEqual(
            sorted((e.type, e.sn) for e in events),
            sorted(
                [("terminal.registered", sn) for sn in ("BATCH1", "BATCH2")]
                + [("terminal.registered", f"LONE{i}") for i in range(len(busy))]
            ),
        )

    def _countStatements(self) -> list[str]:
        """The statements of the store's operations from now on (each still run)."""
        statements: list[str] = []
        runOp = self.store._runOp

        def counting(op: Any) -> Any:
            sent = None
            while True:
                try:
                    asked = op.send(sent)
                except StopIteration as stop:
                    return stop.value
                if isinstance(asked, tuple):
                    statements.append(" ".join(asked[0].split()))
                sent = yield asked

        def counted(write: bool, op: Any, single: bool = False) -> Deferred[Any]:
            return runOp(write, counting(op), single)

        self.store._runOp = counted  # type: ignore[method-assign]
        return statements

    @inlineCallbacks
    def test_registrationBatchStatements(self) -> Generator[Deferred[Any], Any, None]:
        """
        A batch of registrations is one statement per kind of work, however many it holds: the
        read of their terminals, one update of the known ones, one insert of the new ones, one
        append of the first registrations' events; a second registration of the same C{sn}
        starts another turn (checked against the first one's row, then written with those after
        it).
        """
        for sn in ("KNOWN1", "KNOWN2"):
            yield self.store.registerTerminal(sn, None, {}, True, None, None)
        statements = self._countStatements()
        now = self.store._now()
        asked = [
            ("KNOWN1", "CK1", {"mac": "AA"}),
            ("NEW1", "CN1", {}),
            ("KNOWN2", None, {}),
            ("NEW2", None, {"firmware": "v2"}),
            ("NEW1", "CN9", {}),
        ]
        answers = yield self.store._writeRegistrations(
            [
                (registrationParams(sn, cpusn, devinfo, True, (cpusn, None), now), None)
                for sn, cpusn, devinfo in asked
            ]
        )
        self.assertEqual(
            [(t.sn, t.cpusn, t.registrations, bound) for t, _, bound in answers],
            [
                ("KNOWN1", "CK1", 2, True),
                ("NEW1", "CN1", 1, True),
                ("KNOWN2", None, 2, False),
                ("NEW2", None, 1, False),
                ("NEW1", "CN1", 2, False),
            ],
        )
        self.assertEqual((answers[0][0].mac, answers[3][0].firmware), ("AA", "v2"))
        kinds = {
            "SELECT * FROM terminals WHERE sn IN": "read",
            "UPDATE terminals SET": "update",
            "INSERT INTO terminals": "insert",
        }
        self.assertEqual(
            [
                next((kinds[k] for k in kinds if k in statement), statement)
                for statement in statements
            ],
            # the second NEW1 is checked against the first one's row: a second turn from there
            ["read", "update", "insert", "update", "insert"],
        )
        for sn in ("NEW1", "NEW2", "KNOWN1"):
            self.assertEqual(
                (yield self.store.getTerminal(sn)),
                [t for t, _, _ in answers if t.sn == sn][-1],
            )
        events = yield self.store.listEvents(EventQuery(types=("terminal.registered",), limit=100))
        self.assertEqual(sorted(e.sn for e in events), ["KNOWN1", "KNOWN2", "NEW1", "NEW2"])

    @inlineCallbacks
    def test_sightingInsertedMeanwhile(self) -> Generator[Deferred[Any], Any, None]:
        """
        A terminal another transaction inserted after the batch read its terminals (the
        batch's insert finds it there) is recorded as a sighting of the row that is there.
        """
        yield self.store.registerTerminal("RACED", "C1", {"mac": "AA"}, True, None, None)
        params = registrationParams(
            "RACED", "C2", {"firmware": "v3"}, True, None, self.store._now()
        )

        def op() -> Any:
            # as if the read had found nothing: the row was inserted since
            return (yield from writeSightings(self.store.dialect, [(0, params, None)], {}))

        after = yield self.store._runOp(True, op())
        raced = after["RACED"]
        self.assertEqual(
            (raced.cpusn, raced.mac, raced.firmware, raced.registrations), ("C1", "AA", "v3", 2)
        )
        self.assertEqual((yield self.store.getTerminal("RACED")), raced)

    @inlineCallbacks
    def test_registerTerminalTogetherFailsAlone(self) -> Generator[Deferred[Any], Any, None]:
        """
        A registration that fails in a batch fails alone: the batch is written again one
        registration at a time, and the others are recorded and answered.
        """

        def broken(known: Any) -> None:
            raise RuntimeError("check failed")

        writes = self._countWrites()
        busy = self._fillRegistrationSlots()
        bad = self.store.registerTerminal("BAD1", None, {}, True, broken, None)
        good = self.store.registerTerminal("GOOD1", "C1", {}, True, None, ("C1", None))
        yield gatherResults(busy)
        yield self.assertFailure(bad, RuntimeError)
        terminal, refusal, bound = yield good
        self.assertEqual(
            (terminal.sn, terminal.boundCpusn, refusal, bound), ("GOOD1", "C1", None, True)
        )
        self.assertEqual((yield self.store.getTerminal("GOOD1")), terminal)
        self.assertIsNone((yield self.store.getTerminal("BAD1")))
        # those that found a free slot alone, the two together, then each alone again
        self.assertEqual(len(writes), len(busy) + 3)

    @inlineCallbacks
    def test_flagAndResetTerminalIdentity(self) -> Generator[Deferred[Any], Any, None]:
        """A flag keeps its JSON record; a reset clears the binding and the flag, not the secret."""
        yield self._terminal()
        yield self.store.bindTerminalIdentity(SN, "CPU-A", None)
        yield self.store.setTerminalSecret(SN, "ab" * 32)
        record = {"problem": "cpusn differs", "claimedCpusn": "X", "claimedMac": None, "n": 1}
        flagged = yield self.store.flagTerminal(SN, record)
        self.assertEqual(flagged.identityMismatch, record)
        self.assertTrue(flagged.flagged)
        self.assertEqual((yield self.store.getTerminal(SN)).identityMismatch, record)
        reset = yield self.store.resetTerminalIdentity(SN)
        self.assertEqual((reset.boundCpusn, reset.boundMac, reset.boundAt), (None, None, None))
        self.assertIsNone(reset.identityMismatch)
        self.assertFalse(reset.flagged)
        self.assertEqual(reset.secretHash, "ab" * 32)
        # recordTerminalSeen leaves identity fields alone.
        seen = yield self.store.recordTerminalSeen(SN, "CPU-Z", {"mac": "11-22"}, True)
        self.assertEqual((seen.boundCpusn, seen.secretHash), (None, "ab" * 32))
        self.assertIsNone((yield self.store.flagTerminal("NOPE", record)))
        self.assertIsNone((yield self.store.resetTerminalIdentity("NOPE")))

    @inlineCallbacks
    def test_setTerminalSecret(self) -> Generator[Deferred[Any], Any, None]:
        """The secret is stored as given (its hash) and removed with C{None}."""
        terminal = yield self._terminal()
        self.assertIsNone(terminal.secretHash)
        updated = yield self.store.setTerminalSecret(SN, "0f" * 32)
        self.assertEqual(updated.secretHash, "0f" * 32)
        self.assertEqual((yield self.store.getTerminal(SN)).secretHash, "0f" * 32)
        cleared = yield self.store.setTerminalSecret(SN, None)
        self.assertIsNone(cleared.secretHash)
        self.assertIsNone((yield self.store.setTerminalSecret("NOPE", "0f" * 32)))

    # -- users and credentials ---------------------------------------------------------------------

    @inlineCallbacks
    def test_capturedFingerprintsVerbatim(self) -> Generator[Deferred[Any], Any, None]:
        """Templates read from a real terminal come back as the very same strings."""
        frames = loadCapture()
        templates = [f for f in frames if f.get("ret") == "getuserinfo"]
        self.assertEqual(len(templates), 2)
        yield self._terminal(frames[0]["sn"])
        for frame in templates:
            yield self.store.saveCredential(
                frame["sn"],
                frame["enrollid"],
                frame["backupnum"],
                frame["record"],
                frame["name"],
                frame["admin"],
            )
        for frame in templates:
            user = yield self.store.getUser(frame["sn"], frame["enrollid"])
            self.assertEqual(user.name, frame["name"])
            self.assertEqual(user.admin, frame["admin"])
            self.assertEqual(len(user.credentials), 1)
            credential = user.credentials[0]
            self.assertEqual(credential.backupnum, 0)
            self.assertIs(type(credential.record), str)
            self.assertEqual(credential.record, frame["record"])
            self.assertEqual(credential.updatedAt, at(T0))

    @inlineCallbacks
    def test_credentialTypesRoundTrip(self) -> Generator[Deferred[Any], Any, None]:
        """Int records stay ints, digit strings stay strings, and odd text is kept exactly."""
        yield self._terminal()
        values: dict[int, str | int | None] = {
            1: "0123",
            2: "",
            3: "  spaced \n\t",
            4: "ünïcødé 指纹 \u2028",
            5: '{"json": "looking", "a": [1, 2]}',
            6: "null",
            10: 123456,
            11: 2**53 + 1,
            20: "A" * 200_000,
            50: None,
        }
        for backupnum, record in values.items():
            yield self.store.saveCredential(SN, 5, backupnum, record, None, None)
        user = yield self.store.getUser(SN, 5)
        self.assertEqual([c.backupnum for c in user.credentials], sorted(values))
        for credential in user.credentials:
            expected = values[credential.backupnum]
            self.assertEqual(credential.record, expected)
            self.assertIs(type(credential.record), type(expected), credential.backupnum)

    @inlineCallbacks
    def test_saveCredentialUserFields(self) -> Generator[Deferred[Any], Any, None]:
        """
        C{saveCredential} creates the user; C{None} name/admin keep the stored ones; C{backupnum}
        C{None} stores only the user; the same slot again replaces its record.
        """
        yield self._terminal()
        yield self.store.saveCredential(SN, 9, None, None, "Carol", 1)
        user = yield self.store.getUser(SN, 9)
        self.assertEqual(
            (user.name, user.admin, user.enabled, user.credentials), ("Carol", 1, True, ())
        )
        self.assertEqual(user.updatedAt, at(T0))
        self.clock.advance(10)
        yield self.store.saveCredential(SN, 9, 11, 987654, None, None)
        user = yield self.store.getUser(SN, 9)
        self.assertEqual((user.name, user.admin), ("Carol", 1))
        self.assertEqual(user.credentials, (Credential(11, 987654, at(T0 + 10)),))
        self.clock.advance(10)
        yield self.store.saveCredential(SN, 9, 11, 111, "Caroline", 0)
        user = yield self.store.getUser(SN, 9)
        self.assertEqual((user.name, user.admin), ("Caroline", 0))
        self.assertEqual(user.credentials, (Credential(11, 111, at(T0 + 20)),))

    @inlineCallbacks
    def test_saveUser(self) -> Generator[Deferred[Any], Any, None]:
        """C{saveUser} creates, then updates every field, keeping the credentials."""
        yield self._terminal()
        user = yield self.store.saveUser(SN, 3, "Dan", 0, True)
        self.assertEqual(user, User(SN, 3, "Dan", 0, True, (), at(T0)))
        yield self.store.saveCredential(SN, 3, 10, 4321, None, None)
        self.clock.advance(1)
        user = yield self.store.saveUser(SN, 3, None, 2, False)
        self.assertEqual((user.name, user.admin, user.enabled), (None, 2, False))
        self.assertEqual(user.updatedAt, at(T0 + 1))
        self.assertEqual([c.record for c in user.credentials], [4321])
        self.assertEqual((yield self.store.getUser(SN, 3)), user)

    @inlineCallbacks
    def test_usersNeedTheirTerminal(self) -> Generator[Deferred[Any], Any, None]:
        """Users of an unknown terminal are refused with C{ValueError}, nothing stored."""
        yield self.assertFailure(self.store.saveUser("NOPE", 1, "x", 0, True), ValueError)
        yield self.assertFailure(
            self.store.saveCredential("NOPE", 1, 0, "abcd", "x", 0), ValueError
        )
        self.assertIsNone((yield self.store.getUser("NOPE", 1)))

    @inlineCallbacks
    def test_usersArePerTerminal(self) -> Generator[Deferred[Any], Any, None]:
        """The same C{enrollid} on two terminals is two users."""
        yield self._terminal(SN)
        yield self._terminal(OTHER_SN)
        yield self.store.saveCredential(SN, 1, 0, "aa", "On SN", 0)
        yield self.store.saveCredential(OTHER_SN, 1, 0, "bb", "On other", 0)
        self.assertEqual((yield self.store.getUser(SN, 1)).credentials[0].record, "aa")
        self.assertEqual((yield self.store.getUser(OTHER_SN, 1)).name, "On other")

    @inlineCallbacks
    def test_getUserUnknown(self) -> Generator[Deferred[Any], Any, None]:
        """An unknown user is C{None}."""
        yield self._terminal()
        self.assertIsNone((yield self.store.getUser(SN, 404)))

    @inlineCallbacks
    def test_listUsersPaging(self) -> Generator[Deferred[Any], Any, None]:
        """Users come by ascending C{enrollid}, strictly after the cursor, with credentials."""
        yield self._terminal(SN)
        yield self._terminal(OTHER_SN)
        enrollids = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 99999999]
        shuffled = list(enrollids)
        random.Random(4).shuffle(shuffled)
        for enrollid in shuffled:
            yield self.store.saveCredential(SN, enrollid, 0, f"fp{enrollid}", f"u{enrollid}", 0)
            yield self.store.saveCredential(SN, enrollid, 11, enrollid * 10, None, None)
        yield self.store.saveUser(OTHER_SN, 4, "elsewhere", 0, True)
        pages: list[list[User]] = []
        after = None
        while True:
            page = yield self.store.listUsers(SN, 6, after)
            if not page:
                break
            pages.append(page)
            after = page[-1].enrollid
        self.assertEqual([len(p) for p in pages], [6, 6, 4])
        users = [u for p in pages for u in p]
        self.assertEqual([u.enrollid for u in users], enrollids)
        for user in users:
            self.assertEqual(user.sn, SN)
            self.assertEqual(
                user.credentials,
                (
                    Credential(0, f"fp{user.enrollid}", at(T0)),
                    Credential(11, user.enrollid * 10, at(T0)),
                ),
            )
        self.assertEqual([u.enrollid for u in (yield self.store.listUsers(SN, 3, 6))], [8, 13, 21])
        self.assertEqual((yield self.store.listUsers(SN, 10, 99999999)), [])
        self.assertEqual((yield self.store.listUsers("NOPE", 10, None)), [])

    @inlineCallbacks
    def test_deleteUser(self) -> Generator[Deferred[Any], Any, None]:
        """C{deleteUser} removes the user and its credentials, and says whether it existed."""
        yield self._terminal()
        yield self.store.saveCredential(SN, 1, 0, "aa", "Ben", 0)
        yield self.store.saveCredential(SN, 1, 1, "bb", None, None)
        yield self.store.saveCredential(SN, 2, 0, "cc", "Lw", 0)
        self.assertIs((yield self.store.deleteUser(SN, 1)), True)
        self.assertIs((yield self.store.deleteUser(SN, 1)), False)
        self.assertIsNone((yield self.store.getUser(SN, 1)))
        recreated = yield self.store.saveUser(SN, 1, "Ben", 0, True)
        self.assertEqual(recreated.credentials, ())
        self.assertEqual(len((yield self.store.getUser(SN, 2)).credentials), 1)

    @inlineCallbacks
    def test_deleteCredential(self) -> Generator[Deferred[Any], Any, None]:
        """One slot, 12 for all fingerprints (0-9), 13 for the whole user; counts returned."""
        yield self._terminal()
        for backupnum in [0, 1, 2, 9, 10, 11, 20, 50]:
            yield self.store.saveCredential(SN, 1, backupnum, f"r{backupnum}", "Ben", 0)
        self.assertEqual((yield self.store.deleteCredential(SN, 1, 10)), 1)
        self.assertEqual((yield self.store.deleteCredential(SN, 1, 10)), 0)
        self.assertEqual((yield self.store.deleteCredential(SN, 1, 12)), 4)
        user = yield self.store.getUser(SN, 1)
        self.assertEqual([c.backupnum for c in user.credentials], [11, 20, 50])
        self.assertEqual((yield self.store.deleteCredential(SN, 1, 12)), 0)
        self.assertEqual((yield self.store.deleteCredential(SN, 1, 13)), 3)
        self.assertIsNone((yield self.store.getUser(SN, 1)))
        self.assertEqual((yield self.store.deleteCredential(SN, 1, 13)), 0)
        self.assertEqual((yield self.store.deleteCredential(SN, 77, 0)), 0)

    # -- logs --------------------------------------------------------------------------------------

    @inlineCallbacks
    def test_addLogsStoresEveryField(self) -> Generator[Deferred[Any], Any, None]:
        """A stored punch keeps every field; C{receivedAt} is the store's "now"."""
        yield self._terminal()
        record = punch(
            1,
            "2026-04-30 12:00:00",
            mode=8,
            inout=1,
            event=2,
            temp=36.6,
            verifymode=20,
            image="aGVsbG8=",
            extra={"name": "Ben", "aliasid": "A-1", "nested": {"k": [1, "2"]}},
        )
        result = yield self.store.addLogs(SN, [record])
        self.assertEqual(result, LogInsertResult(inserted=1, duplicates=0))
        [stored] = yield self._allLogs()
        self.assertIsInstance(stored, StoredLog)
        self.assertEqual(
            (stored.sn, stored.enrollid, stored.time, stored.mode, stored.inout, stored.event),
            (SN, 1, "2026-04-30 12:00:00", 8, 1, 2),
        )
        self.assertAlmostEqual(stored.temp, 36.6)
        self.assertEqual(stored.verifymode, 20)
        self.assertEqual(stored.image, "aGVsbG8=")
        self.assertEqual(
            dict(stored.extra), {"name": "Ben", "aliasid": "A-1", "nested": {"k": [1, "2"]}}
        )
        self.assertEqual(stored.receivedAt, at(T0))
        self.assertIsInstance(stored.id, int)

    @inlineCallbacks
    def test_addLogsOptionalFieldsAbsent(self) -> Generator[Deferred[Any], Any, None]:
        """Records without temp, verifymode, image or extra come back with C{None} and C{{}}."""
        yield self._terminal()
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 12:00:00")])
        [stored] = yield self._allLogs()
        self.assertEqual((stored.temp, stored.verifymode, stored.image), (None, None, None))
        self.assertEqual(dict(stored.extra), {})

    @inlineCallbacks
    def test_addLogsDeduplicates(self) -> Generator[Deferred[Any], Any, None]:
        """A resent batch inserts nothing; a partly new batch inserts only the new records."""
        yield self._terminal()
        batch = [punch(i, f"2026-04-30 09:00:{i:02d}") for i in range(1, 6)]
        self.assertEqual((yield self.store.addLogs(SN, batch)), LogInsertResult(5, 0))
        self.assertEqual((yield self.store.addLogs(SN, batch)), LogInsertResult(0, 5))
        mixed = batch[:2] + [punch(6, "2026-04-30 09:00:06"), punch(7, "2026-04-30 09:00:07")]
        self.assertEqual((yield self.store.addLogs(SN, mixed)), LogInsertResult(2, 2))
        self.assertEqual((yield self.store.countLogs(SN)), 7)

    @inlineCallbacks
    def test_addLogsDuplicatesWithinBatch(self) -> Generator[Deferred[Any], Any, None]:
        """Repeats inside one batch are stored once and counted as duplicates."""
        yield self._terminal()
        a = punch(1, "2026-04-30 09:00:00")
        b = punch(0, "2026-04-30 09:00:01", event=5)
        result = yield self.store.addLogs(SN, [a, a, b, a, b])
        self.assertEqual(result, LogInsertResult(inserted=2, duplicates=3))
        self.assertEqual(len((yield self._allLogs())), 1)
        self.assertEqual(len((yield self._allLogs(door=True))), 1)

    @inlineCallbacks
    def test_logIdentity(self) -> Generator[Deferred[Any], Any, None]:
        """
        The identity is (sn, enrollid, time, mode, inout, event): any of them different makes a
        new record; other fields do not.
        """
        yield self._terminal(SN)
        yield self._terminal(OTHER_SN)
        base = punch(1, "2026-04-30 09:00:00")
        variants = [
            base,
            punch(2, "2026-04-30 09:00:00"),
            punch(1, "2026-04-30 09:00:01"),
            punch(1, "2026-04-30 09:00:00", mode=1),
            punch(1, "2026-04-30 09:00:00", inout=1),
            punch(1, "2026-04-30 09:00:00", event=1),
        ]
        self.assertEqual((yield self.store.addLogs(SN, variants)), LogInsertResult(6, 0))
        self.assertEqual((yield self.store.addLogs(OTHER_SN, [base])), LogInsertResult(1, 0))
        sameKey = punch(1, "2026-04-30 09:00:00", temp=37.0, verifymode=1, extra={"x": 1})
        self.assertEqual((yield self.store.addLogs(SN, [sameKey])), LogInsertResult(0, 1))
        self.assertEqual((yield self.store.countLogs(None)), 7)

    @inlineCallbacks
    def test_addLogsEmpty(self) -> Generator[Deferred[Any], Any, None]:
        """An empty batch stores nothing."""
        self.assertEqual((yield self.store.addLogs(SN, [])), LogInsertResult(0, 0))
        self.assertEqual((yield self.store.countLogs(None)), 0)

    @inlineCallbacks
    def test_addLogsBeforeTerminalKnown(self) -> Generator[Deferred[Any], Any, None]:
        """Logs are stored even for a terminal not (yet) in the terminals table."""
        result = yield self.store.addLogs("UNSEEN", [punch(1, "2026-04-30 09:00:00")])
        self.assertEqual(result, LogInsertResult(1, 0))
        self.assertEqual((yield self.store.countLogs("UNSEEN")), 1)

    @inlineCallbacks
    def test_doorEventsSeparated(self) -> Generator[Deferred[Any], Any, None]:
        """Records of C{enrollid} 0 are door events: never punches, never counted."""
        yield self._terminal()
        result = yield self.store.addLogs(
            SN,
            [
                punch(0, "2026-04-30 10:00:00", event=3),
                punch(1, "2026-04-30 10:00:01"),
                punch(0, "2026-04-30 10:00:02", event=4, extra={"door": 1}),
            ],
        )
        self.assertEqual(result, LogInsertResult(3, 0))
        logs = yield self._allLogs()
        self.assertEqual([(r.enrollid, r.time) for r in logs], [(1, "2026-04-30 10:00:01")])
        self.assertEqual((yield self.store.queryLogs(LogQuery(enrollid=0))), [])
        doors = yield self._allLogs(door=True)
        self.assertEqual(
            [(d.enrollid, d.time, d.event) for d in doors],
            [(0, "2026-04-30 10:00:02", 4), (0, "2026-04-30 10:00:00", 3)],
        )
        self.assertEqual(dict(doors[0].extra), {"door": 1})
        self.assertEqual((yield self.store.countLogs(SN)), 1)
        self.assertEqual(
            len((yield self.store.queryDoorEvents(LogQuery(sn=SN, since="2026-04-30 10:00:01")))),
            1,
        )

    @inlineCallbacks
    def test_countLogs(self) -> Generator[Deferred[Any], Any, None]:
        """C{countLogs} counts punches of one terminal, or of all with C{None}."""
        yield self.store.addLogs(SN, [punch(i, "2026-04-30 10:00:00") for i in range(1, 4)])
        yield self.store.addLogs(OTHER_SN, [punch(i, "2026-04-30 10:00:00") for i in range(1, 3)])
        self.assertEqual((yield self.store.countLogs(SN)), 3)
        self.assertEqual((yield self.store.countLogs(OTHER_SN)), 2)
        self.assertEqual((yield self.store.countLogs(None)), 5)
        self.assertEqual((yield self.store.countLogs("NOPE")), 0)

    @inlineCallbacks
    def test_queryLogsOrder(self) -> Generator[Deferred[Any], Any, None]:
        """Newest first by time, then by id for equal times (later insert first)."""
        yield self.store.addLogs(
            SN,
            [
                punch(1, "2026-04-30 09:00:00"),
                punch(2, "2026-04-30 11:00:00"),
                punch(3, "2026-04-29 23:59:59"),
            ],
        )
        yield self.store.addLogs(
            SN, [punch(4, "2026-04-30 09:00:00"), punch(5, "2026-04-30 09:00:00")]
        )
        logs = yield self._allLogs()
        self.assertEqual([r.enrollid for r in logs], [2, 5, 4, 1, 3])
        tied = [r for r in logs if r.time == "2026-04-30 09:00:00"]
        self.assertEqual([r.id for r in tied], sorted((r.id for r in tied), reverse=True))
        self.assertEqual(len({r.id for r in logs}), 5)

    @inlineCallbacks
    def test_queryLogsFilters(self) -> Generator[Deferred[Any], Any, None]:
        """C{sn}, C{enrollid}, inclusive C{since}/C{until} and C{limit} filter the rows."""
        yield self.store.addLogs(
            SN, [punch(e, f"2026-04-{d:02d} 08:00:00") for e in (1, 2) for d in range(1, 11)]
        )
        yield self.store.addLogs(OTHER_SN, [punch(1, "2026-04-05 08:00:00")])
        q = self.store.queryLogs
        self.assertEqual(len((yield q(LogQuery(limit=1000)))), 21)
        self.assertEqual(len((yield q(LogQuery(sn=SN, limit=1000)))), 20)
        self.assertEqual(len((yield q(LogQuery(sn=OTHER_SN, limit=1000)))), 1)
        mine = yield q(LogQuery(sn=SN, enrollid=2, limit=1000))
        self.assertEqual({(r.sn, r.enrollid) for r in mine}, {(SN, 2)})
        self.assertEqual(len(mine), 10)
        window = yield q(
            LogQuery(sn=SN, enrollid=1, since="2026-04-03 08:00:00", until="2026-04-05 08:00:00")
        )
        self.assertEqual(
            [r.time for r in window],
            ["2026-04-05 08:00:00", "2026-04-04 08:00:00", "2026-04-03 08:00:00"],
        )
        everywhere = yield q(LogQuery(since="2026-04-05 00:00:00", until="2026-04-05 23:59:59"))
        self.assertEqual(
            sorted((r.sn, r.enrollid) for r in everywhere), [(OTHER_SN, 1), (SN, 1), (SN, 2)]
        )
        limited = yield q(LogQuery(sn=SN, limit=3))
        self.assertEqual(
            [r.time for r in limited], ["2026-04-10 08:00:00"] * 2 + ["2026-04-09 08:00:00"]
        )
        self.assertEqual((yield q(LogQuery(sn=SN, since="2026-05-01 00:00:00"))), [])
        self.assertEqual((yield q(LogQuery(sn=SN, limit=0))), [])
        self.assertEqual(len((yield q(LogQuery(sn=SN)))), 20, "the default limit is 50")

    @inlineCallbacks
    def test_queryLogsModeAndInout(self) -> Generator[Deferred[Any], Any, None]:
        """C{mode} and C{inout} filter too (the console's log search)."""
        yield self.store.addLogs(
            SN,
            [
                punch(1, f"2026-04-01 08:0{m}:0{io}", mode=m, inout=io)
                for m in (0, 1, 2)
                for io in (0, 1)
            ],
        )
        q = self.store.queryLogs
        fingers = yield q(LogQuery(mode=1, limit=100))
        self.assertEqual({(r.mode, r.inout) for r in fingers}, {(1, 0), (1, 1)})
        out = yield q(LogQuery(inout=1, limit=100))
        self.assertEqual({(r.mode, r.inout) for r in out}, {(0, 1), (1, 1), (2, 1)})
        both = yield q(LogQuery(sn=SN, mode=2, inout=0, limit=100))
        self.assertEqual([(r.mode, r.inout) for r in both], [(2, 0)])

    @inlineCallbacks
    def test_queryLogsCursorPaging(self) -> Generator[Deferred[Any], Any, None]:
        """
        Paging with C{before=(time, id)} of the last row walks every row exactly once, in order,
        even when many rows share a time and a page boundary falls inside such a tie.
        """
        times = ["2026-04-30 09:00:00"] * 4 + ["2026-04-30 08:00:00"] * 3 + ["2026-04-30 10:00:00"]
        records = [punch(i + 1, t) for i, t in enumerate(times)]
        yield self.store.addLogs(SN, records[:5])
        yield self.store.addLogs(SN, records[5:])
        yield self.store.addLogs(OTHER_SN, [punch(1, "2026-04-30 09:00:00")])
        everything = yield self.store.queryLogs(LogQuery(sn=SN, limit=1000))
        pages: list[list[StoredLog]] = []
        before = None
        for _ in range(10):
            page = yield self.store.queryLogs(LogQuery(sn=SN, limit=3, before=before))
            if not page:
                break
            pages.append(page)
            before = (page[-1].time, page[-1].id)
        self.assertEqual([len(p) for p in pages], [3, 3, 2])
        walked = [r for p in pages for r in p]
        self.assertEqual(walked, everything)
        self.assertEqual(len({r.id for r in walked}), 8)
        keys = [(r.time, r.id) for r in walked]
        self.assertEqual(keys, sorted(keys, reverse=True))
        # with filters too
        page = yield self.store.queryLogs(
            LogQuery(
                sn=SN, until="2026-04-30 09:00:00", limit=2, before=(walked[2].time, walked[2].id)
            )
        )
        self.assertEqual(page, walked[3:5])

    @inlineCallbacks
    def test_queryDoorEventsPaging(self) -> Generator[Deferred[Any], Any, None]:
        """Door events page with the same cursor rule."""
        yield self.store.addLogs(SN, [punch(0, "2026-04-30 07:00:00", event=e) for e in range(5)])
        first = yield self.store.queryDoorEvents(LogQuery(sn=SN, limit=3))
        rest = yield self.store.queryDoorEvents(
            LogQuery(sn=SN, limit=3, before=(first[-1].time, first[-1].id))
        )
        self.assertEqual([e.event for e in first + rest], [4, 3, 2, 1, 0])

    @inlineCallbacks
    def test_largeBatch(self) -> Generator[Deferred[Any], Any, None]:
        """Ten thousand records in one call are committed together, and deduplicated together."""
        yield self._terminal()
        start = datetime(2026, 1, 1, 8, 0, 0)
        batch = [
            punch(
                1 + i % 50,
                (start + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S"),
                extra={"i": i},
            )
            for i in range(10_000)
        ]
        batch[7] = punch(0, batch[7].time, event=2)
        self.assertEqual((yield self.store.addLogs(SN, batch)), LogInsertResult(10_000, 0))
        self.assertEqual((yield self.store.countLogs(SN)), 9_999)
        self.assertEqual(len((yield self._allLogs(door=True))), 1)
        self.assertEqual((yield self.store.addLogs(SN, batch)), LogInsertResult(0, 10_000))
        newest = yield self.store.queryLogs(LogQuery(sn=SN, limit=1))
        self.assertEqual(dict(newest[0].extra), {"i": 9_999})

    # -- what a store can hold ---------------------------------------------------------------------

    @inlineCallbacks
    def test_logValueRangesAsTheProtocolDecides(self) -> Generator[Deferred[Any], Any, None]:
        """
        A log record is stored exactly when L{checkLogRecord} accepts it, field by field; one
        it refuses fails C{addLogs} with C{ValueError} and nothing of its batch is written.
        """
        rng = random.Random(20260430)
        edges = [INT64_MAX, INT64_MIN, INT64_MAX + 1, INT64_MIN - 1, INT32_MAX + 1, 10**39, 0]
        edges += [rng.randint(-(2**70), 2**70) for _ in range(6)]
        second = 0
        expected: dict[str, LogRecord] = {}
        for field in ("enrollid", "mode", "inout", "event", "verifymode"):
            for value in edges:
                if field == "enrollid" and value <= 0:
                    continue  # the parser refuses those for their sign; 0 is a door event
                second += 1
                record = punch(
                    **{
                        "enrollid": 1,
                        "time": f"2026-04-30 08:{second // 60:02d}:{second % 60:02d}",
                        field: value,
                    }
                )
                storable = (
                    checkLogRecord(
                        record.enrollid,
                        record.mode,
                        record.inout,
                        record.event,
                        record.verifymode,
                        None,
                    )
                    is None
                )
                if storable:
                    result = yield self.store.addLogs(SN, [punch(2, record.time), record])
                    self.assertEqual(result, LogInsertResult(inserted=2, duplicates=0))
                    expected[record.time] = record
                else:
                    with self.assertRaises(ValueError, msg=(field, value)):
                        yield self.store.addLogs(SN, [punch(2, record.time), record])
        # the in-range edges and none of the others, each with its enrollid-2 companion
        self.assertEqual(
            len(expected),
            sum(
                INT64_MIN <= v <= INT64_MAX and not (f == "enrollid" and v <= 0)
                for f in ("enrollid", "mode", "inout", "event", "verifymode")
                for v in edges
            ),
        )
        stored = yield self._allLogs()
        self.assertEqual(len(stored), 2 * len(expected))
        for log in stored:
            if log.enrollid == 2:
                continue
            record = expected[log.time]
            self.assertEqual(
                (log.enrollid, log.mode, log.inout, log.event, log.verifymode),
                (record.enrollid, record.mode, record.inout, record.event, record.verifymode),
            )

    @inlineCallbacks
    def test_logTextAsTheProtocolDecides(self) -> Generator[Deferred[Any], Any, None]:
        """A NUL in C{image} is refused alike; in C{extra} (JSON) it round-trips."""
        with self.assertRaises(ValueError):
            yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00", image="A\x00B")])
        extra = {"name": "a\x00b", "\x00": 10**30, "note": {"x": [INT64_MAX + 1]}}
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:01", extra=extra)])
        (log,) = yield self._allLogs()
        self.assertEqual(dict(log.extra), extra)

    @inlineCallbacks
    def test_userValueRangesAsTheProtocolDecides(self) -> Generator[Deferred[Any], Any, None]:
        """
        A credential is stored exactly when L{checkUserFields} accepts it: 64-bit C{enrollid},
        32-bit C{backupnum} and C{admin} (PostgreSQL's C{integer}), no NUL in the name.
        """
        yield self._terminal()
        cases: list[tuple[int, str | None, int | None, int | None]] = [
            (INT64_MAX, None, 0, 0),
            (INT64_MAX + 1, None, 0, 0),
            (2, None, INT32_MAX, 0),
            (3, None, INT32_MAX + 1, 0),
            (4, None, 0, INT32_MIN),
            (5, None, 0, INT32_MIN - 1),
            (6, None, 0, INT32_MAX + 1),
            (7, "Ann\x00", 0, 0),
            (8, "Ann", 0, 0),
        ]
        for enrollid, name, backupnum, admin in cases:
            if checkUserFields(enrollid, name, backupnum, admin) is None:
                yield self.store.saveCredential(SN, enrollid, backupnum, 2**70, name, admin)
                user = yield self.store.getUser(SN, enrollid)
                self.assertEqual(
                    (
                        user.name,
                        user.admin,
                        user.credentials[0].backupnum,
                        user.credentials[0].record,
                    ),
                    (name, admin, backupnum, 2**70),
                )
            else:
                with self.assertRaises(ValueError, msg=enrollid):
                    yield self.store.saveCredential(SN, enrollid, backupnum, 1, name, admin)
        users = yield self.store.listUsers(SN, 100, None)
        self.assertEqual([u.enrollid for u in users], [2, 4, 8, INT64_MAX])

    # -- quarantine --------------------------------------------------------------------------------

    @inlineCallbacks
    def test_quarantineHoldsVerbatim(self) -> Generator[Deferred[Any], Any, None]:
        """Held records come back exactly as given, newest first, with the server's time."""
        raws = [
            '{ "enrollid" : 1E0, "time":"2024-02-30 00:00:00", "x":"\\u00e9é指" }',
            '{"enrollid":1,"time":"2024-01-01 00:00:00","mode":' + "9" * 40 + "}",
            "[1,\n 2]",
            '{"image":"' + "A" * 150_000 + '"}',
        ]
        held = yield self.store.quarantineRecords(
            SN,
            "sendlog",
            [RejectedRecord(raw, f"problem {i}", f"record[{i}]") for i, raw in enumerate(raws)],
        )
        self.assertEqual(held, 4)
        self.clock.advance(5)
        frame = '{"cmd":"senduser","enrollid":1,"backupnum":2147483648}'
        held = yield self.store.quarantineRecords(
            SN, "senduser", [RejectedRecord(frame, "out of range", "backupnum")]
        )
        self.assertEqual(held, 1)
        rows = yield self.store.listQuarantine(SN, 10, None)
        self.assertEqual(
            [(r.sn, r.source, r.raw, r.problem, r.field, r.receivedAt) for r in rows],
            [(SN, "senduser", frame, "out of range", "backupnum", at(T0 + 5))]
            + [
                (SN, "sendlog", raw, f"problem {i}", f"record[{i}]", at(T0))
                for i, raw in reversed(list(enumerate(raws)))
            ],
        )
        self.assertEqual(rows[0].reason, "backupnum: out of range")
        self.assertEqual([r.id for r in rows], sorted((r.id for r in rows), reverse=True))

    @inlineCallbacks
    def test_quarantineResentRecordHeldOnce(self) -> Generator[Deferred[Any], Any, None]:
        """The same raw text (a resent batch, or twice in one) is held once per terminal and source."""
        bad = RejectedRecord('{"time":"x"}', "is required", "record[0].enrollid")
        self.assertEqual((yield self.store.quarantineRecords(SN, "sendlog", [bad, bad])), 1)
        self.assertEqual((yield self.store.quarantineRecords(SN, "sendlog", [bad])), 0)
        moved = RejectedRecord('{"time":"x"}', "is required", "record[5].enrollid")
        self.assertEqual((yield self.store.quarantineRecords(SN, "sendlog", [moved])), 0)
        self.assertEqual((yield self.store.quarantineRecords(OTHER_SN, "sendlog", [bad])), 1)
        self.assertEqual((yield self.store.quarantineRecords(SN, "senduser", [bad])), 1)
        self.assertEqual((yield self.store.quarantineRecords(SN, "sendlog", [])), 0)
        self.assertEqual(len((yield self.store.listQuarantine(SN, 10, None))), 2)
        self.assertEqual(len((yield self.store.listQuarantine(None, 10, None))), 3)

    @inlineCallbacks
    def test_quarantineUnstorableTextsEscaped(self) -> Generator[Deferred[Any], Any, None]:
        """A NUL or a lone surrogate in what the server writes about a record is escaped alike."""
        odd = RejectedRecord("[\x00]", "bad \ud800", "record[0].\x00")
        self.assertEqual((yield self.store.quarantineRecords(SN, "sendlog", [odd])), 1)
        (row,) = yield self.store.listQuarantine(SN, 10, None)
        self.assertEqual(
            (row.raw, row.problem, row.field), ("[\\u0000]", "bad \\ud800", "record[0].\\u0000")
        )

    @inlineCallbacks
    def test_quarantinePaging(self) -> Generator[Deferred[Any], Any, None]:
        """Pages newest first, by terminal or for all, with C{beforeId}."""
        for i in range(5):
            for sn in (SN, OTHER_SN):
                yield self.store.quarantineRecords(sn, "sendlog", [RejectedRecord(f"[{i}]", "p")])
        everything = yield self.store.listQuarantine(None, 100, None)
        self.assertEqual(len(everything), 10)
        mine = yield self.store.listQuarantine(SN, 100, None)
        self.assertEqual([r.raw for r in mine], ["[4]", "[3]", "[2]", "[1]", "[0]"])
        self.assertEqual(mine, [r for r in everything if r.sn == SN])
        page1 = yield self.store.listQuarantine(SN, 2, None)
        page2 = yield self.store.listQuarantine(SN, 2, page1[-1].id)
        page3 = yield self.store.listQuarantine(SN, 2, page2[-1].id)
        page4 = yield self.store.listQuarantine(SN, 2, page3[-1].id)
        self.assertEqual(page1 + page2 + page3, mine)
        self.assertEqual([len(p) for p in (page1, page2, page3, page4)], [2, 2, 1, 0])
        allPage = yield self.store.listQuarantine(None, 3, everything[2].id)
        self.assertEqual(allPage, everything[3:6])

    # -- commands ----------------------------------------------------------------------------------

    @inlineCallbacks
    def test_commandLifecycle(self) -> Generator[Deferred[Any], Any, None]:
        """Queued, sent (attempt counted), then succeeded with its reply, and no longer pending."""
        payload = {"cmd": "setuserinfo", "enrollid": 1, "record": "c5236a01(200)fe"}
        command = yield self.store.enqueueCommand(SN, "setuserinfo", payload, "admin-token", 5)
        self.assertIsInstance(command, StoredCommand)
        self.assertEqual(
            (command.sn, command.name, dict(command.payload), command.status),
            (SN, "setuserinfo", payload, COMMAND_QUEUED),
        )
        self.assertEqual(
            (command.attempts, command.maxAttempts, command.actor), (0, 5, "admin-token")
        )
        self.assertEqual(command.createdAt, at(T0))
        self.assertIsNone(command.sentAt)
        self.assertIsNone(command.finishedAt)
        self.assertIsNone(command.reply)
        self.assertEqual((yield self.store.getCommand(command.id)), command)

        self.clock.advance(2)
        sent = yield self.store.updateCommand(command.id, COMMAND_SENT, None, True)
        self.assertEqual((sent.status, sent.attempts, sent.sentAt), (COMMAND_SENT, 1, at(T0 + 2)))
        self.assertIsNone(sent.finishedAt)
        self.assertEqual((yield self.store.pendingCommands(SN)), [sent])

        self.clock.advance(3)
        reply = {"ret": "setuserinfo", "result": True, "enrollid": 1}
        done = yield self.store.updateCommand(command.id, COMMAND_SUCCEEDED, reply, False)
        self.assertEqual(
            (done.status, dict(done.reply), done.attempts), (COMMAND_SUCCEEDED, reply, 1)
        )
        self.assertEqual(done.sentAt, at(T0 + 2))
        self.assertEqual(done.finishedAt, at(T0 + 5))
        self.assertEqual(done.createdAt, at(T0))
        self.assertEqual((yield self.store.pendingCommands(SN)), [])
        self.assertEqual((yield self.store.getCommand(command.id)), done)

    @inlineCallbacks
    def test_commandRetriesAndFinalStatuses(self) -> Generator[Deferred[Any], Any, None]:
        """Each attempt counts; a kept reply is not erased by C{None}; every final status ends it."""
        for final in (COMMAND_FAILED, COMMAND_TIMED_OUT):
            command = yield self.store.enqueueCommand(SN, "reboot", {"cmd": "reboot"}, None, 3)
            self.assertIsNone(command.actor)
            yield self.store.updateCommand(command.id, COMMAND_SENT, None, True)
            yield self.store.updateCommand(command.id, COMMAND_QUEUED, {"why": "gone"}, False)
            again = yield self.store.updateCommand(command.id, COMMAND_SENT, None, True)
            self.assertEqual(again.attempts, 2)
            self.assertEqual(dict(again.reply), {"why": "gone"})
            ended = yield self.store.updateCommand(command.id, final, None, False)
            self.assertEqual((ended.status, ended.attempts), (final, 2))
            self.assertEqual(ended.finishedAt, at(T0))
        self.assertEqual((yield self.store.pendingCommands(SN)), [])

    @inlineCallbacks
    def test_pendingCommandsOrder(self) -> Generator[Deferred[Any], Any, None]:
        """Pending commands of one terminal, queued or sent, oldest first."""
        ids = []
        for i in range(5):
            command = yield self.store.enqueueCommand(SN, f"c{i}", {"i": i}, "ops", 3)
            ids.append(command.id)
            yield self.store.enqueueCommand(OTHER_SN, f"o{i}", {}, "ops", 3)
        self.assertEqual(ids, sorted(ids))
        yield self.store.updateCommand(ids[1], COMMAND_SENT, None, True)
        yield self.store.updateCommand(ids[3], COMMAND_SUCCEEDED, {}, False)
        pending = yield self.store.pendingCommands(SN)
        self.assertEqual([c.id for c in pending], [ids[0], ids[1], ids[2], ids[4]])
        self.assertEqual([c.status for c in pending], ["queued", "sent", "queued", "queued"])
        self.assertEqual({c.sn for c in pending}, {SN})
        self.assertEqual((yield self.store.pendingCommands("NOPE")), [])

    @inlineCallbacks
    def test_claimCommand(self) -> Generator[Deferred[Any], Any, None]:
        """
        The oldest pending command of a terminal, marked sent in the same transaction (a sent
        one is claimed again, one attempt more); an expired one is left as it is; final ones
        and other terminals' are never claimed.
        """
        first = yield self.store.enqueueCommand(SN, "a", {"cmd": "a"}, "ops", 3)
        second = yield self.store.enqueueCommand(SN, "b", {"cmd": "b"}, "ops", 3)
        yield self.store.enqueueCommand(OTHER_SN, "o", {"cmd": "o"}, "ops", 3)
        self.clock.advance(2)
        claimed, sent = yield self.store.claimCommand(SN, lambda command: False)
        self.assertIs(sent, True)
        self.assertEqual(
            (claimed.id, claimed.status, claimed.attempts, claimed.sentAt),
            (first.id, COMMAND_SENT, 1, at(T0 + 2)),
        )
        self.assertEqual((yield self.store.getCommand(first.id)), claimed)
        again, sent = yield self.store.claimCommand(SN, lambda command: False)
        self.assertEqual((again.id, again.attempts, sent), (first.id, 2, True))
        yield self.store.updateCommand(first.id, COMMAND_SUCCEEDED, {}, False)
        seen: list[int] = []

        def expired(command: StoredCommand) -> bool:
            seen.append(command.id)
            return True

        left, sent = yield self.store.claimCommand(SN, expired)
        self.assertEqual((left, sent, seen), (second, False, [second.id]))
        self.assertEqual((yield self.store.getCommand(second.id)), second)
        yield self.store.updateCommand(second.id, COMMAND_CANCELLED, None, False)
        self.assertIsNone((yield self.store.claimCommand(SN, lambda command: False)))
        self.assertIsNone((yield self.store.claimCommand("NOPE", lambda command: False)))
        other, sent = yield self.store.claimCommand(OTHER_SN, lambda command: False)
        self.assertEqual((other.sn, other.name, sent), (OTHER_SN, "o", True))

    @inlineCallbacks
    def test_terminalsWithPendingCommands(self) -> Generator[Deferred[Any], Any, None]:
        """Of many terminals, those with a command queued or sent; finished ones do not count."""
        self.assertEqual((yield self.store.terminalsWithPendingCommands([])), set())
        self.assertEqual((yield self.store.terminalsWithPendingCommands([SN, OTHER_SN])), set())
        first = yield self.store.enqueueCommand(SN, "a", {"cmd": "a"}, "ops", 3)
        other = yield self.store.enqueueCommand(OTHER_SN, "o", {"cmd": "o"}, "ops", 3)
        yield self.store.updateCommand(other.id, COMMAND_SENT, None, True)
        found = yield self.store.terminalsWithPendingCommands([SN, OTHER_SN, "NOPE", SN])
        self.assertEqual(found, {SN, OTHER_SN})
        yield self.store.updateCommand(first.id, COMMAND_SUCCEEDED, {}, False)
        yield self.store.updateCommand(other.id, COMMAND_CANCELLED, None, False)
        self.assertEqual((yield self.store.terminalsWithPendingCommands([SN, OTHER_SN])), set())

    @inlineCallbacks
    def test_submitCommand(self) -> Generator[Deferred[Any], Any, None]:
        """
        A command and its audit entry in one call; with C{claim}, it is stored C{sent} (one
        attempt) when nothing older of its terminal is pending, C{queued} behind them otherwise.
        """
        self.clock.advance(1)
        first = yield self.store.submitCommand(
            SN,
            "opendoor",
            {"cmd": "opendoor"},
            "ops",
            3,
            at(T0 + 60),
            [{"field": "x", "detail": "y"}],
            audit=("ops", "command.submit", SN, {"command": "opendoor"}),
            claim=True,
        )
        self.assertEqual(
            (first.sn, first.status, first.attempts, first.sentAt, first.actor, first.maxAttempts),
            (SN, COMMAND_SENT, 1, at(T0 + 1), "ops", 3),
        )
        self.assertEqual(first.expiresAt, at(T0 + 60))
        self.assertEqual((yield self.store.getCommand(first.id)), first)
        (entry,) = yield self.store.listAuditEntries(10, None)
        self.assertEqual(
            (entry.actor, entry.action, entry.target, entry.detail),
            ("ops", "command.submit", SN, {"command": "opendoor"}),
        )
        # the first is still pending: the second waits behind it
        second = yield self.store.submitCommand(
            SN, "gettime", {"cmd": "gettime"}, "ops", 3, claim=True
        )
        self.assertEqual((second.status, second.attempts, second.sentAt), (COMMAND_QUEUED, 0, None))
        # no claim: queued even with nothing pending; another terminal's are not in the way
        plain = yield self.store.submitCommand(OTHER_SN, "gettime", {"cmd": "gettime"}, None, 3)
        self.assertEqual((plain.status, plain.attempts), (COMMAND_QUEUED, 0))
        other = yield self.store.submitCommand(
            OTHER_SN, "opendoor", {"cmd": "opendoor"}, None, 3, claim=True
        )
        self.assertEqual(other.status, COMMAND_QUEUED)
        yield self.store.updateCommand(first.id, COMMAND_SUCCEEDED, {}, False)
        yield self.store.updateCommand(second.id, COMMAND_CANCELLED, None, False)
        third = yield self.store.submitCommand(SN, "gettime", {}, "ops", 3, claim=True)
        self.assertEqual((third.status, third.attempts), (COMMAND_SENT, 1))
        self.assertEqual(len((yield self.store.listAuditEntries(10, None))), 1)

    @inlineCallbacks
    def test_finishAndClaimCommand(self) -> Generator[Deferred[Any], Any, None]:
        """
        The outcome of one command and the claim of the next, as L{updateCommand} then
        L{claimCommand} answer them.
        """
        first = yield self.store.enqueueCommand(SN, "a", {"cmd": "a"}, "ops", 3)
        second = yield self.store.enqueueCommand(SN, "b", {"cmd": "b"}, "ops", 3)
        claimed, _ = yield self.store.claimCommand(SN, lambda command: False)
        self.assertEqual(claimed.id, first.id)
        self.clock.advance(3)
        done, (next_, sent) = yield self.store.finishAndClaimCommand(
            first.id, COMMAND_SUCCEEDED, {"result": True}, False, SN, lambda command: False
        )
        self.assertEqual(
            (done.id, done.status, done.reply, done.finishedAt),
            (first.id, COMMAND_SUCCEEDED, {"result": True}, at(T0 + 3)),
        )
        self.assertEqual(
            (next_.id, next_.status, next_.attempts, sent), (second.id, "sent", 1, True)
        )
        self.assertEqual((yield self.store.getCommand(second.id)), next_)
        # not final: claimed again at once (a retry)
        again, (retry, sent) = yield self.store.finishAndClaimCommand(
            second.id, COMMAND_QUEUED, None, False, SN, lambda command: False
        )
        self.assertEqual(
            (again.status, retry.id, retry.attempts, sent), ("queued", second.id, 2, True)
        )
        # an expired next one is left as it is
        third = yield self.store.enqueueCommand(SN, "c", {"cmd": "c"}, "ops", 3)
        done, (left, sent) = yield self.store.finishAndClaimCommand(
            second.id, COMMAND_FAILED, None, False, SN, lambda command: True
        )
        self.assertEqual((done.status, left, sent), (COMMAND_FAILED, third, False))
        yield self.store.updateCommand(third.id, COMMAND_CANCELLED, None, False)
        # nothing left to claim; an unknown id is None
        done, claimedNone = yield self.store.finishAndClaimCommand(
            third.id, COMMAND_SUCCEEDED, None, False, SN, lambda command: False
        )
        self.assertEqual((done.status, claimedNone), (COMMAND_CANCELLED, None))
        unknown, nothing = yield self.store.finishAndClaimCommand(
            12345, COMMAND_SUCCEEDED, None, False, SN, lambda command: False
        )
        self.assertEqual((unknown, nothing), (None, None))
        yield self.assertFailure(
            self.store.finishAndClaimCommand(
                third.id, "exploded", None, False, SN, lambda command: False
            ),
            ValueError,
        )

    @inlineCallbacks
    def test_commandUnknownAndBadStatus(self) -> Generator[Deferred[Any], Any, None]:
        """Unknown ids give C{None}; an unknown status is a C{ValueError} and changes nothing."""
        self.assertIsNone((yield self.store.getCommand(12345)))
        self.assertIsNone((yield self.store.updateCommand(12345, COMMAND_SENT, None, True)))
        command = yield self.store.enqueueCommand(SN, "reboot", {}, None, 3)
        yield self.assertFailure(
            self.store.updateCommand(command.id, "exploded", None, True), ValueError
        )
        self.assertEqual((yield self.store.getCommand(command.id)), command)

    @inlineCallbacks
    def test_commandExpiryAndWarningsAreStored(self) -> Generator[Deferred[Any], Any, None]:
        """C{expiresAt} and C{warnings} come back as given; both default to nothing."""
        warnings = [{"field": "params.delay", "detail": "not sent"}]
        command = yield self.store.enqueueCommand(
            SN, "opendoor", {"cmd": "opendoor"}, "ops", 3, at(T0 + 60), warnings
        )
        self.assertEqual(command.expiresAt, at(T0 + 60))
        self.assertEqual([dict(w) for w in command.warnings], warnings)
        self.assertEqual((yield self.store.getCommand(command.id)), command)
        plain = yield self.store.enqueueCommand(SN, "gettime", {"cmd": "gettime"}, None, 3)
        self.assertIsNone(plain.expiresAt)
        self.assertEqual(plain.warnings, ())

    @inlineCallbacks
    def test_settleCommandOnlyFromTheGivenStatuses(self) -> Generator[Deferred[Any], Any, None]:
        """Cancel a queued command; a sent one is left alone; a settled one is final."""
        queued = yield self.store.enqueueCommand(SN, "opendoor", {}, "ops", 3, at(T0 + 60))
        sent = yield self.store.enqueueCommand(SN, "opendoor", {}, "ops", 3, at(T0 + 60))
        yield self.store.updateCommand(sent.id, COMMAND_SENT, None, True)
        self.clock.advance(5)
        cancelled, changed = yield self.store.settleCommand(
            queued.id, COMMAND_CANCELLED, [COMMAND_QUEUED]
        )
        self.assertTrue(changed)
        self.assertEqual((cancelled.status, cancelled.finishedAt), (COMMAND_CANCELLED, at(T0 + 5)))
        refused, changed = yield self.store.settleCommand(
            sent.id, COMMAND_CANCELLED, [COMMAND_QUEUED]
        )
        self.assertFalse(changed)
        self.assertEqual((refused.status, refused.finishedAt), (COMMAND_SENT, None))
        self.assertEqual([c.id for c in (yield self.store.pendingCommands(SN))], [sent.id])
        # a final status is never changed again, by settleCommand or by updateCommand
        self.assertEqual(
            (yield self.store.settleCommand(queued.id, COMMAND_EXPIRED, [COMMAND_QUEUED])),
            (cancelled, False),
        )
        after = yield self.store.updateCommand(queued.id, COMMAND_SENT, None, True)
        self.assertEqual(after, cancelled)
        # expired, with the moment it expired as its end
        expired, changed = yield self.store.settleCommand(
            sent.id, COMMAND_EXPIRED, [COMMAND_QUEUED, COMMAND_SENT], at(T0 + 60)
        )
        self.assertTrue(changed)
        self.assertEqual((expired.status, expired.finishedAt), (COMMAND_EXPIRED, at(T0 + 60)))
        self.assertEqual((yield self.store.getCommand(sent.id)), expired)
        self.assertEqual((yield self.store.pendingCommands(SN)), [])
        self.assertIsNone((yield self.store.settleCommand(12345, COMMAND_CANCELLED, ["queued"])))
        yield self.assertFailure(
            self.store.settleCommand(queued.id, COMMAND_QUEUED, [COMMAND_SENT]), ValueError
        )
        yield self.assertFailure(
            self.store.settleCommand(queued.id, "exploded", [COMMAND_QUEUED]), ValueError
        )

    # -- API tokens --------------------------------------------------------------------------------

    @inlineCallbacks
    def test_apiTokens(self) -> Generator[Deferred[Any], Any, None]:
        """Add, find by hash, list by name, refuse a taken name, delete."""
        hashA, hashB = "a" * 64, "b" * 64
        tokenB = yield self.store.addApiToken("zeta", hashB, ("read",))
        self.assertEqual(tokenB, ApiToken("zeta", hashB, ("read",), at(T0)))
        tokenA = yield self.store.addApiToken("alpha", hashA, ("read", "write", "admin"))
        self.assertEqual(tokenA.scopes, ("read", "write", "admin"))
        yield self.assertFailure(self.store.addApiToken("alpha", "c" * 64, ("read",)), ValueError)
        self.assertEqual((yield self.store.findApiToken(hashA)), tokenA)
        self.assertEqual((yield self.store.findApiToken(hashB)), tokenB)
        self.assertIsNone((yield self.store.findApiToken("c" * 64)))
        self.assertEqual((yield self.store.listApiTokens()), [tokenA, tokenB])
        self.assertIs((yield self.store.deleteApiToken("alpha")), True)
        self.assertIs((yield self.store.deleteApiToken("alpha")), False)
        self.assertIsNone((yield self.store.findApiToken(hashA)))
        self.assertEqual((yield self.store.listApiTokens()), [tokenB])
        again = yield self.store.addApiToken("alpha", hashA, [])
        self.assertEqual(again.scopes, ())

    # -- audit -------------------------------------------------------------------------------------

    @inlineCallbacks
    def test_auditEntries(self) -> Generator[Deferred[Any], Any, None]:
        """Entries are listed newest first and paged with C{beforeId}."""
        entries: list[AuditEntry] = []
        for i in range(7):
            self.clock.advance(1)
            entry = yield self.store.addAuditEntry(
                "ops", f"action{i}", None if i == 0 else f"T{i}", {"i": i, "l": [i]}
            )
            entries.append(entry)
        first = entries[0]
        self.assertEqual(
            (first.actor, first.action, first.target, dict(first.detail), first.at),
            ("ops", "action0", None, {"i": 0, "l": [0]}, at(T0 + 1)),
        )
        self.assertEqual([e.id for e in entries], sorted(e.id for e in entries))
        newestFirst = list(reversed(entries))
        self.assertEqual((yield self.store.listAuditEntries(100, None)), newestFirst)
        page1 = yield self.store.listAuditEntries(3, None)
        page2 = yield self.store.listAuditEntries(3, page1[-1].id)
        page3 = yield self.store.listAuditEntries(3, page2[-1].id)
        page4 = yield self.store.listAuditEntries(3, page3[-1].id)
        self.assertEqual(page1 + page2 + page3, newestFirst)
        self.assertEqual([len(p) for p in (page1, page2, page3, page4)], [3, 3, 1, 0])

    # -- persons, groups, sync state ---------------------------------------------------------------

    def test_providesIPersonStore(self) -> None:
        """The store provides every method of L{IPersonStore}."""
        self.assertTrue(verifyObject(IPersonStore, self.store))

    @inlineCallbacks
    def test_personsRoundTrip(self) -> Generator[Deferred[Any], Any, None]:
        """A person is stored whole: fields, credentials verbatim with their type, assignment."""
        yield self._terminal("T1")
        yield self._terminal("T2")
        fingerprint = loadCapture()[1]["record"]
        yield self.store.putGroup(TerminalGroup("hq", "Head office", True, ("T1",)), True)
        person = Person(
            enrollid=7,
            name="Zoë",
            admin=1,
            enabled=False,
            validFrom="2026-01-01 00:00:00",
            validUntil="2026-12-31 23:59:59",
            credentials=(
                Credential(0, fingerprint),
                Credential(10, 1234),
                Credential(11, 2**40),
                Credential(20, "face=="),
            ),
            groups=("hq",),
            terminals=("T2",),
        )
        stored = yield self.store.putPerson(person, True)
        expected = attrs.evolve(
            person,
            credentials=tuple(attrs.evolve(c, updatedAt=at(T0)) for c in person.credentials),
            createdAt=at(T0),
            updatedAt=at(T0),
        )
        self.assertEqual(stored, expected)
        self.assertEqual((yield self.store.getPerson(7)), expected)
        self.assertIsNone((yield self.store.getPerson(8)))
        with self.assertRaises(ValueError):
            yield self.store.putPerson(Person(enrollid=7), True)
        self.clock.advance(5)
        replaced = yield self.store.putPerson(
            Person(enrollid=7, name="Z", terminals=("T1",)), False
        )
        self.assertEqual(replaced.credentials, ())
        self.assertEqual((replaced.groups, replaced.terminals), ((), ("T1",)))
        self.assertEqual((replaced.createdAt, replaced.updatedAt), (at(T0), at(T0 + 5)))
        self.assertIsNone((yield self.store.putPerson(Person(enrollid=9), False)))
        self.assertTrue((yield self.store.deletePerson(7)))
        self.assertFalse((yield self.store.deletePerson(7)))
        self.assertIsNone((yield self.store.getPerson(7)))

    @inlineCallbacks
    def test_personsNeedKnownGroupsAndTerminals(self) -> Generator[Deferred[Any], Any, None]:
        """Assigning a person to an unknown group or terminal stores nothing."""
        yield self._terminal("T1")
        with self.assertRaises(ValueError):
            yield self.store.putPerson(Person(enrollid=1, groups=("nowhere",)), True)
        with self.assertRaises(ValueError):
            yield self.store.putPerson(Person(enrollid=1, terminals=("T9",)), True)
        self.assertIsNone((yield self.store.getPerson(1)))
        with self.assertRaises(ValueError):
            yield self.store.putGroup(TerminalGroup("g", terminals=("T9",)), True)
        self.assertIsNone((yield self.store.getGroup("g")))

    @inlineCallbacks
    def test_terminalsWithPersons(self) -> Generator[Deferred[Any], Any, None]:
        """Of many terminals, those with a person (directly, through a group) or a sync state."""
        for sn in ("T1", "T2", "T3", "T4", "T5"):
            yield self._terminal(sn)
        self.assertEqual((yield self.store.terminalsWithPersons(["T1", "T2"])), set())
        self.assertEqual((yield self.store.terminalsWithPersons([])), set())
        yield self.store.putGroup(TerminalGroup("a", terminals=("T1",)), True)
        yield self.store.putGroup(TerminalGroup("empty", terminals=("T4",)), True)
        yield self.store.putPerson(Person(enrollid=3, groups=("a",)), True)
        yield self.store.putPerson(Person(enrollid=1, terminals=("T2",)), True)
        yield self.store.savePersonSync(PersonSync("T3", 1, SYNC_SYNCED, True))
        found = yield self.store.terminalsWithPersons(["T1", "T2", "T3", "T4", "T5", "T9"])
        self.assertEqual(found, {"T1", "T2", "T3"})

    @inlineCallbacks
    def test_personsForTerminalAndPaging(self) -> Generator[Deferred[Any], Any, None]:
        """A terminal's persons are those assigned directly or through any of its groups."""
        for sn in ("T1", "T2", "T3"):
            yield self._terminal(sn)
        yield self.store.putGroup(TerminalGroup("a", terminals=("T1", "T2")), True)
        yield self.store.putGroup(TerminalGroup("b", terminals=("T2",)), True)
        yield self.store.putPerson(Person(enrollid=3, groups=("a", "b")), True)
        yield self.store.putPerson(Person(enrollid=1, terminals=("T3", "T2")), True)
        yield self.store.putPerson(Person(enrollid=2, groups=("b",), terminals=("T3",)), True)
        ids = {}
        for sn in ("T1", "T2", "T3"):
            ids[sn] = [p.enrollid for p in (yield self.store.personsForTerminal(sn))]
        self.assertEqual(ids, {"T1": [3], "T2": [1, 2, 3], "T3": [1, 2]})
        page1 = yield self.store.listPersons(2, None)
        page2 = yield self.store.listPersons(2, page1[-1].enrollid)
        self.assertEqual([p.enrollid for p in page1 + page2], [1, 2, 3])
        self.assertEqual([g.name for g in (yield self.store.groupsOfTerminal("T2"))], ["a", "b"])
        # a deleted group leaves its persons; a deleted terminal leaves groups and persons
        self.assertTrue((yield self.store.deleteGroup("b")))
        self.assertEqual((yield self.store.getPerson(2)).groups, ())
        yield self.store.deleteTerminal("T1")
        self.assertEqual((yield self.store.getGroup("a")).terminals, ("T2",))

    @inlineCallbacks
    def test_groupsRoundTrip(self) -> Generator[Deferred[Any], Any, None]:
        """Groups are created once, replaced whole, listed by name."""
        yield self._terminal("T1")
        group = yield self.store.putGroup(TerminalGroup("z", "Zone", False, ("T1",)), True)
        self.assertEqual(group, TerminalGroup("z", "Zone", False, ("T1",), at(T0), at(T0)))
        with self.assertRaises(ValueError):
            yield self.store.putGroup(TerminalGroup("z"), True)
        yield self.store.putGroup(TerminalGroup("a"), True)
        replaced = yield self.store.putGroup(TerminalGroup("z", None, True, ()), False)
        self.assertEqual((replaced.adoptKeypad, replaced.terminals), (True, ()))
        self.assertIsNone((yield self.store.putGroup(TerminalGroup("q"), False)))
        self.assertEqual([g.name for g in (yield self.store.listGroups())], ["a", "z"])
        self.assertFalse((yield self.store.deleteGroup("q")))

    @inlineCallbacks
    def test_personSync(self) -> Generator[Deferred[Any], Any, None]:
        """Sync states are upserted per (sn, enrollid), outlive the person, not the terminal."""
        yield self._terminal("T1")
        yield self._terminal("T2")
        first = yield self.store.savePersonSync(PersonSync("T1", 5, SYNC_PENDING, True, {}, (1, 2)))
        self.assertEqual(first, PersonSync("T1", 5, SYNC_PENDING, True, {}, (1, 2), at(T0)))
        yield self.store.savePersonSync(
            PersonSync("T1", 5, SYNC_CONFLICT, False, {"terminalName": "Ann"})
        )
        yield self.store.savePersonSync(PersonSync("T2", 5, SYNC_SYNCED, True))
        yield self.store.savePersonSync(PersonSync("T1", 4, SYNC_SYNCED, True))
        everything = yield self.store.listPersonSync(None, None)
        self.assertEqual(
            [(s.sn, s.enrollid) for s in everything], [("T1", 4), ("T1", 5), ("T2", 5)]
        )
        self.assertEqual(everything[1].detail, {"terminalName": "Ann"})
        self.assertEqual((everything[1].state, everything[1].owned), (SYNC_CONFLICT, False))
        self.assertEqual(len((yield self.store.listPersonSync("T1", None))), 2)
        self.assertEqual(len((yield self.store.listPersonSync(None, 5))), 2)
        self.assertEqual(len((yield self.store.listPersonSync("T2", 5))), 1)
        with self.assertRaises(ValueError):
            yield self.store.savePersonSync(PersonSync("T1", 5, "bogus"))
        self.assertTrue((yield self.store.deletePersonSync("T1", 5)))
        self.assertFalse((yield self.store.deletePersonSync("T1", 5)))
        yield self.store.deleteTerminal("T2")
        self.assertEqual([s.sn for s in (yield self.store.listPersonSync(None, None))], ["T1"])

    # -- operations written once (tm20.store._ops) ---------------------------------------------------

    def _runOp(self, op: Any) -> Deferred[Any]:
        d: Deferred[Any] = self.store._runOp(True, op)
        return d

    @inlineCallbacks
    def test_opMarkersRowsAndCounts(self) -> Generator[Deferred[Any], Any, None]:
        """
        An operation's statements take C{%s} or C{%(name)s} markers on both databases, and get
        their rows back as mappings by column name, with the count of rows changed.
        """
        yield self._terminal(SN)

        def op() -> Any:
            inserted = yield (
                "INSERT INTO users (sn, enrollid, name, admin, enabled, updated_at)"
                " VALUES (%(sn)s, %(enrollid)s, %(name)s, 0, true, %(now)s)",
                {"sn": SN, "enrollid": 7, "name": "Ana", "now": self.store._now()},
            )
            selected = yield (
                "SELECT enrollid, name, enabled FROM users WHERE sn = %s AND enrollid = %s",
                (SN, 7),
            )
            updated = yield ("UPDATE users SET name = %s WHERE sn = %s", ("Bea", SN))
            return inserted.rowcount, [dict(row) for row in selected.rows], updated.rowcount

        inserted, rows, updated = yield self._runOp(op())
        self.assertEqual((inserted, updated), (1, 1))
        self.assertEqual(len(rows), 1)
        self.assertEqual(
            (rows[0]["enrollid"], rows[0]["name"], bool(rows[0]["enabled"])), (7, "Ana", True)
        )

    @inlineCallbacks
    def test_opBrokenConstraintThrownIntoTheOp(self) -> Generator[Deferred[Any], Any, None]:
        """
        A broken unique or foreign key is thrown into the operation, at its statement, as a
        L{BrokenConstraint} (a C{ValueError}) saying which kind; what the operation raises then
        fails the call, and what it wrote before is rolled back.
        """
        yield self.store.addApiToken("ops", "hash-1", ["read"])
        caught: list[str] = []

        def taken() -> Any:
            yield (
                "INSERT INTO audit_log (actor, action, target, detail, at)"
                " VALUES (%s, %s, %s, %s, %s)",
                ("t", "a", None, "{}", self.store._now()),
            )
            try:
                yield (
                    "INSERT INTO api_tokens (name, token_hash, scopes, created_at)"
                    " VALUES (%s, %s, %s, %s)",
                    ("ops", "hash-2", "[]", self.store._now()),
                )
            except BrokenConstraint as e:
                caught.append(e.kind)
                raise LookupError("the name is taken") from e

        yield self.assertFailure(self._runOp(taken()), LookupError)
        self.assertEqual(caught, ["unique"])
        self.assertEqual((yield self.store.listAuditEntries(10, None)), [])

        def orphan() -> Any:
            yield (
                "INSERT INTO users (sn, enrollid, name, admin, enabled, updated_at)"
                " VALUES (%s, %s, %s, 0, true, %s)",
                ("NOPE", 1, "x", self.store._now()),
            )

        failure = yield self.assertFailure(self._runOp(orphan()), BrokenConstraint)
        self.assertEqual(failure.kind, "foreign key")
        self.assertIsInstance(failure, ValueError)

    # -- durability --------------------------------------------------------------------------------

    @inlineCallbacks
    def test_dataSurvivesRestart(self) -> Generator[Deferred[Any], Any, None]:
        """After stopping and opening the same database again, everything is still there."""
        yield self.store.recordTerminalSeen(SN, "CPU", {"modelname": "tfs30"}, True)
        fingerprint = loadCapture()[1]["record"]
        yield self.store.saveCredential(SN, 1, 0, fingerprint, "Ben", 0)
        yield self.store.saveCredential(SN, 1, 11, 4242, None, None)
        yield self.store.addLogs(
            SN, [punch(1, "2026-04-30 09:00:00"), punch(0, "2026-04-30 09:00:01")]
        )
        command = yield self.store.enqueueCommand(SN, "reboot", {"cmd": "reboot"}, "ops", 3)
        token = yield self.store.addApiToken("ops", "f" * 64, ("read",))
        entry = yield self.store.addAuditEntry("ops", "reboot", SN, {})
        terminal = yield self.store.getTerminal(SN)
        user = yield self.store.getUser(SN, 1)
        logs = yield self._allLogs()
        try:
            self.store = yield self.reopenStore()
        except NotImplementedError:
            self.skipTest("this store has no reopenStore hook")
        self.assertEqual((yield self.store.getTerminal(SN)), terminal)
        self.assertEqual((yield self.store.getUser(SN, 1)), user)
        self.assertEqual((yield self._allLogs()), logs)
        self.assertEqual(len((yield self._allLogs(door=True))), 1)
        self.assertEqual((yield self.store.pendingCommands(SN)), [command])
        self.assertEqual((yield self.store.findApiToken("f" * 64)), token)
        self.assertEqual((yield self.store.listAuditEntries(10, None)), [entry])
        # and the dedupe keys too
        result = yield self.store.addLogs(SN, [punch(1, "2026-04-30 09:00:00")])
        self.assertEqual(result, LogInsertResult(0, 1))
        # ids keep increasing across restarts
        second = yield self.store.enqueueCommand(SN, "reboot", {}, None, 3)
        self.assertGreater(second.id, command.id)
