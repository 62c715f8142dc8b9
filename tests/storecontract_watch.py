"""
The store contract of L{tm20.interfaces.IWatchStore} (what the server watches on each terminal),
mixed into L{tests.storecontract.StoreContractTests}, so it runs on every real backend.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from tm20.interfaces import IWatchStore
from tm20.model import TerminalWatch, WatchedTerminal
from tm20.protocol.messages import LogRecord

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object

_SN = "ZYTI25116685"
_OTHER = "ZX0006827500"


def _punch(enrollid: int, time: str) -> LogRecord:
    return LogRecord(enrollid=enrollid, time=time, mode=1, inout=0, event=0)


class WatchStoreContractTests(_Base):
    """Behaviour of L{IWatchStore}; needs C{self.store} and C{self.clock} (see the contract)."""

    store: Any
    clock: Clock

    def test_providesIWatchStore(self) -> None:
        """The store provides every method of L{IWatchStore}."""
        self.assertTrue(verifyObject(IWatchStore, self.store))

    @inlineCallbacks
    def test_watchDefaultsUntilWritten(self) -> Generator[Deferred[Any], Any, None]:
        """A terminal has no watch row until one is written; unknown terminals get none."""
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        self.assertIsNone((yield self.store.getWatch(_SN)))
        self.assertEqual((yield self.store.listWatches()), [])
        self.assertIsNone((yield self.store.updateWatch("NOSUCH", {"logGap": 3})))
        self.assertIsNone((yield self.store.getWatch("NOSUCH")))

    @inlineCallbacks
    def test_updateWatchRoundTrips(self) -> Generator[Deferred[Any], Any, None]:
        """Every field is written and read back as given (timestamps as aware UTC)."""
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        yield self.store.recordTerminalSeen(_OTHER, None, {}, True)
        when = datetime(2026, 4, 30, 11, 59, 37, 123456, tzinfo=UTC)
        changes = {
            "silentAfter": 900.5,
            "silentSince": when,
            "logGap": 500,
            "logGapSource": "usedlog",
            "logGapSince": when,
            "logGapFrom": "2026-04-01",
            "logGapTo": "2026-04-30",
            "logsRecovered": 12,
            "lastRecoveryAt": when,
            "clockDrift": -600.25,
            "clockCheckedAt": when,
            "clockCorrectedAt": when,
        }
        watch = yield self.store.updateWatch(_SN, changes)
        self.assertEqual(watch, TerminalWatch(sn=_SN, **changes))
        self.assertEqual((yield self.store.getWatch(_SN)), watch)
        # A partial update changes only what it names; None clears.
        watch = yield self.store.updateWatch(_SN, {"silentSince": None, "logGap": 0})
        self.assertIsNone(watch.silentSince)
        self.assertEqual(watch.logGap, 0)
        self.assertEqual(watch.clockDrift, -600.25)
        yield self.store.updateWatch(_OTHER, {"clockDrift": 1.0})
        self.assertEqual([w.sn for w in (yield self.store.listWatches())], [_OTHER, _SN])

    @inlineCallbacks
    def test_updateWatchRefusesUnknownFields(self) -> Generator[Deferred[Any], Any, None]:
        """Only L{TerminalWatch} fields may be written (the row's key is not one)."""
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        with self.assertRaises(ValueError):
            yield self.store.updateWatch(_SN, {"sn": "OTHER"})
        self.assertIsNone((yield self.store.getWatch(_SN)))

    @inlineCallbacks
    def test_deletingTerminalDeletesWatch(self) -> Generator[Deferred[Any], Any, None]:
        """Deleting a terminal deletes its watch row."""
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        yield self.store.updateWatch(_SN, {"logGap": 4})
        yield self.store.deleteTerminal(_SN)
        self.assertIsNone((yield self.store.getWatch(_SN)))
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        self.assertIsNone((yield self.store.getWatch(_SN)))

    @inlineCallbacks
    def test_countTerminalLogs(self) -> Generator[Deferred[Any], Any, None]:
        """Punches and door events of one terminal count together; duplicates once."""
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        yield self.store.recordTerminalSeen(_OTHER, None, {}, True)
        self.assertEqual((yield self.store.countTerminalLogs(_SN)), 0)
        batch = [
            _punch(1, "2026-04-30 08:00:00"),
            _punch(2, "2026-04-30 08:01:00"),
            _punch(0, "2026-04-30 08:02:00"),  # a door event
        ]
        yield self.store.addLogs(_SN, batch)
        yield self.store.addLogs(_SN, batch[:1])
        yield self.store.addLogs(_OTHER, batch[:1])
        self.assertEqual((yield self.store.countTerminalLogs(_SN)), 3)
        self.assertEqual((yield self.store.countTerminalLogs(_OTHER)), 1)

    @inlineCallbacks
    def test_countLogsOfTerminals(self) -> Generator[Deferred[Any], Any, None]:
        """The same counts as L{countTerminalLogs}, for many terminals in one query."""
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        yield self.store.recordTerminalSeen(_OTHER, None, {}, True)
        self.assertEqual((yield self.store.countLogsOfTerminals([])), {})
        batch = [
            _punch(1, "2026-04-30 08:00:00"),
            _punch(2, "2026-04-30 08:01:00"),
            _punch(0, "2026-04-30 08:02:00"),  # a door event
        ]
        yield self.store.addLogs(_SN, batch)
        yield self.store.addLogs(_OTHER, batch[2:])
        counts = yield self.store.countLogsOfTerminals([_SN, _OTHER, "NOSUCH"])
        self.assertEqual(counts, {_SN: 3, _OTHER: 1, "NOSUCH": 0})

    @inlineCallbacks
    def test_updateWatches(self) -> Generator[Deferred[Any], Any, None]:
        """
        Several terminals' changes in one call, as many L{updateWatch}: rows created or
        changed (only the fields named), changes of one terminal merged in order, events
        appended, nothing for an unknown terminal.
        """
        from tm20.events.model import EventQuery, NewEvent

        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        yield self.store.recordTerminalSeen(_OTHER, None, {}, True)
        when = datetime(2026, 4, 30, 11, 59, 37, tzinfo=UTC)
        yield self.store.updateWatch(_OTHER, {"logGap": 7, "clockDrift": 2.0})
        before = yield self.store.lastEventId()
        event = NewEvent("terminal.clock_drift", _SN, {"sn": _SN, "drift": 600.0})
        known = yield self.store.updateWatches(
            [
                (_SN, {"clockDrift": 5.0, "clockCheckedAt": when}, []),
                ("NOSUCH", {"clockDrift": 1.0}, [event]),
                (_OTHER, {"clockDrift": -3.5, "clockCheckedAt": when}, []),
                (_SN, {"clockDrift": 600.0, "clockCorrectedAt": when}, [event]),
            ]
        )
        self.assertEqual(known, [True, False, True, True])
        self.assertEqual(
            (yield self.store.getWatch(_SN)),
            TerminalWatch(sn=_SN, clockDrift=600.0, clockCheckedAt=when, clockCorrectedAt=when),
        )
        self.assertEqual(
            (yield self.store.getWatch(_OTHER)),
            TerminalWatch(sn=_OTHER, logGap=7, clockDrift=-3.5, clockCheckedAt=when),
        )
        self.assertIsNone((yield self.store.getWatch("NOSUCH")))
        found = yield self.store.listEvents(EventQuery(after=before))
        self.assertEqual([(e.type, e.sn) for e in found], [("terminal.clock_drift", _SN)])
        self.assertEqual((yield self.store.updateWatches([])), [])
        with self.assertRaises(ValueError):
            yield self.store.updateWatches([(_SN, {"sn": "X"}, [])])

    @inlineCallbacks
    def test_countPendingCommands(self) -> Generator[Deferred[Any], Any, None]:
        """Commands queued or sent, of every terminal, count; finished ones do not."""
        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        yield self.store.recordTerminalSeen(_OTHER, None, {}, True)
        self.assertEqual((yield self.store.countPendingCommands()), 0)
        first = yield self.store.enqueueCommand(_SN, "opendoor", {"cmd": "opendoor"}, "t", 3)
        second = yield self.store.enqueueCommand(_SN, "gettime", {"cmd": "gettime"}, "t", 3)
        yield self.store.enqueueCommand(_OTHER, "gettime", {"cmd": "gettime"}, "t", 3)
        self.assertEqual((yield self.store.countPendingCommands()), 3)
        yield self.store.updateCommand(first.id, "sent", None, True)
        self.assertEqual((yield self.store.countPendingCommands()), 3)
        yield self.store.updateCommand(first.id, "succeeded", {"result": True}, False)
        yield self.store.updateCommand(second.id, "failed", {"result": False}, True)
        self.assertEqual((yield self.store.countPendingCommands()), 1)

    @inlineCallbacks
    def test_watchPage(self) -> Generator[Deferred[Any], Any, None]:
        """Every terminal by sn, in pages, with its watch fields (defaults without a row)."""
        for sn in ("C", "A", "B", "D"):
            yield self.store.recordTerminalSeen(sn, None, {}, sn != "D")
        yield self.store.updateTerminal("C", {"active": False})
        when = datetime(2026, 4, 30, 12, 0, tzinfo=UTC)
        yield self.store.updateWatch(
            "B", {"silentAfter": 60.0, "silentSince": when, "logGap": 3, "clockDrift": -2.5}
        )
        first = yield self.store.watchPage(None, 2)
        self.assertEqual([t.sn for t in first], ["A", "B"])
        terminal = yield self.store.getTerminal("A")
        self.assertEqual(
            first[0],
            WatchedTerminal(sn="A", approved=True, active=True, lastSeen=terminal.lastSeen),
        )
        self.assertEqual(
            (first[1].silentAfter, first[1].silentSince, first[1].logGap, first[1].clockDrift),
            (60.0, when, 3, -2.5),
        )
        rest = yield self.store.watchPage("B", 2)
        self.assertEqual(
            [(t.sn, t.approved, t.active) for t in rest], [("C", True, False), ("D", False, True)]
        )
        self.assertEqual((yield self.store.watchPage("D", 2)), [])

    @inlineCallbacks
    def test_updateWatchAppendsItsEventsInTheSameTransaction(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """The events given with a change are in the event log with it; none without a row."""
        from tm20.events.model import EventQuery, NewEvent

        yield self.store.recordTerminalSeen(_SN, None, {}, True)
        before = yield self.store.lastEventId()
        event = NewEvent("terminal.silent", _SN, {"sn": _SN, "silentAfter": 60.0})
        yield self.store.updateWatch(
            _SN, {"silentSince": datetime(2026, 4, 30, tzinfo=UTC)}, [event]
        )
        yield self.store.updateWatch("NOSUCH", {"logGap": 1}, [event])
        found = yield self.store.listEvents(EventQuery(after=before, types=("terminal.silent",)))
        self.assertEqual(
            [(e.type, e.sn, dict(e.payload)) for e in found],
            [("terminal.silent", _SN, {"sn": _SN, "silentAfter": 60.0})],
        )
