"""
The behaviour every L{tm20.interfaces.IEventStore} must have (the event log written in the same
transaction as the facts, delivery streams, webhooks), as a mixin used with
L{tests.storecontract.StoreContractTests} (which provides C{self.store} and C{self.clock}).

Backends implement L{EventStoreContractTests.refuseLogsOf}: make the database itself refuse log
rows of one C{enrollid}, so that a batch fails inside the store's transaction.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from tests.storecontract import OTHER_SN, SN, T0, at, punch
from tm20.events.model import (
    STREAM_DISABLED,
    STREAM_FAILING,
    Event,
    EventQuery,
    NewEvent,
    SinkAttempt,
    webhookStreamKey,
)
from tm20.events.payloads import LOG_EVENT_FIELDS, logEvent
from tm20.interfaces import IEventStore
from tm20.model import (
    COMMAND_CANCELLED,
    COMMAND_QUEUED,
    COMMAND_SENT,
    COMMAND_SUCCEEDED,
    SYNC_CONFLICT,
    SYNC_FAILED,
    SYNC_PENDING,
    SYNC_SYNCED,
    LogQuery,
    PersonSync,
)
from tm20.protocol.messages import LogRecord, RejectedRecord
from tm20.services.ingest import LogIngest

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object


def _typed(value: Any) -> Any:
    """C{value} with its JSON types kept apart: C{true} is not C{1}, C{36} is C{36.0}."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, Mapping):
        return {k: _typed(v) for k, v in value.items()}
    return [_typed(v) for v in value]


class EventStoreContractTests(_Base):
    store: Any
    clock: Clock

    def refuseLogsOf(self, enrollid: int) -> Deferred[Any]:
        """Make the database refuse (raise on) any log row of C{enrollid}."""
        raise NotImplementedError

    def reopenStore(self) -> Deferred[Any]:
        raise NotImplementedError

    @inlineCallbacks
    def _events(self, **query: Any) -> Generator[Deferred[Any], Any, list[Event]]:
        events: list[Event] = yield self.store.listEvents(EventQuery(limit=10_000, **query))
        return events

    @inlineCallbacks
    def _types(self, after: int = 0) -> Generator[Deferred[Any], Any, list[str]]:
        events = yield self._events(after=after)
        return [e.type for e in events]

    # -- the log -----------------------------------------------------------------------------------

    def test_providesIEventStore(self) -> None:
        verifyObject(IEventStore, self.store)

    @inlineCallbacks
    def test_logEventsForInsertedRowsOnly(self) -> Generator[Deferred[Any], Any, None]:
        """Each inserted punch or door event has its event; duplicates (resends) have none."""
        yield self.store.createTerminal(SN, None, True, "Europe/Paris")
        first = [
            punch(7, "2026-04-30 13:00:00", extra={"name": "Ann"}),
            punch(0, "2026-04-30 13:00:01", event=3),
            punch(8, "2026-04-30 13:00:02", temp=36.6, image="QUJD"),
        ]
        yield self.store.addLogs(SN, first)
        again = [first[0], punch(9, "2026-04-30 13:05:00"), punch(9, "2026-04-30 13:05:00")]
        result = yield self.store.addLogs(SN, again)
        self.assertEqual(result.inserted, 1)
        events = yield self._events()
        self.assertEqual(
            [(e.type, e.payload["enrollid"]) for e in events],
            [("log.created", 7), ("door.event", 0), ("log.created", 8), ("log.created", 9)],
        )
        self.assertEqual([e.id for e in events], sorted({e.id for e in events}))
        stored = yield self.store.queryLogs(LogQuery(sn=SN, limit=10))
        ids = {log.enrollid: log.id for log in stored}
        ann = events[0]
        self.assertEqual(ann.sn, SN)
        self.assertEqual(ann.createdAt, at(T0))
        self.assertEqual(
            dict(ann.payload),
            {
                "sn": SN,
                "logId": ids[7],
                "enrollid": 7,
                "time": "2026-04-30 13:00:00",
                "timeUTC": "2026-04-30T11:00:00+00:00",
                "mode": 0,
                "inout": 0,
                "event": 0,
                "temp": None,
                "verifymode": None,
                "hasImage": False,
                "extra": {"name": "Ann"},
                "key": [SN, 7, "2026-04-30 13:00:00", 0, 0, 0],
                "receivedAt": "2026-04-30T11:59:37.000000+00:00",
            },
        )
        self.assertEqual(events[2].payload["temp"], 36.6)
        self.assertIs(events[2].payload["hasImage"], True)
        self.assertNotIn("image", events[2].payload)

    @inlineCallbacks
    def test_logEventPayloadIsLogEvents(self) -> Generator[Deferred[Any], Any, None]:
        """
        The payload each store writes for a stored log (built by the database from the row)
        is L{logEvent}'s for the same row, field by field and in the order of
        L{LOG_EVENT_FIELDS}: temperatures null, integer and real, with and without an image,
        empty and nested C{extra}, door events (C{enrollid} 0), terminals in different time
        zones (and one without a row: the default zone), times in a DST gap and overlap.
        Written through the ingest service's group commit (the server's road), one flush for
        all terminals.
        """
        self.store.defaultTimezone = "Asia/Kolkata"
        zones = {SN: "Europe/Paris", OTHER_SN: "America/New_York", "NOROW0001": None}
        yield self.store.createTerminal(SN, None, True, "Europe/Paris")
        yield self.store.createTerminal(OTHER_SN, None, True, "America/New_York")
        extras: list[dict[str, Any]] = [{}, {"name": "Zoë", "n": 3, "deep": {"a": [1, 2.5]}}]
        temps: list[float | None] = [None, 36, 36.6, -0.5]
        times = ["2026-04-30 13:00:00", "2026-03-29 02:30:00", "2026-10-25 02:30:00"]
        sent: dict[str, list[LogRecord]] = {}
        for n, sn in enumerate(zones):
            records = []
            for i in range(12):
                records.append(
                    punch(
                        0 if i % 4 == 3 else 10 + i,
                        times[i % 3][:-2] + f"{i:02d}",
                        mode=i % 3,
                        inout=i % 2,
                        event=3 if i % 4 == 3 else 0,
                        temp=temps[(i + n) % 4],
                        verifymode=None if i % 5 == 0 else i,
                        image="QUJD" if i % 2 else None,
                        extra=extras[(i + n) % 2],
                    )
                )
            sent[sn] = records
        ingest = LogIngest(self.store, reactor=reactor)
        self.addCleanup(ingest.stop)
        results = yield gatherResults([ingest.ingest(sn, sent[sn]) for sn in zones])
        self.assertEqual([r.inserted for r in results], [12, 12, 12])
        self.assertEqual(ingest.queue.flushes, 1)
        ids: dict[tuple[Any, ...], int] = {}
        for sn in zones:
            for query in (self.store.queryLogs, self.store.queryDoorEvents):
                for log in (yield query(LogQuery(sn=sn, limit=100))):
                    ids[(sn, log.enrollid, log.time, log.mode, log.inout, log.event)] = log.id
        self.assertEqual(len(ids), 36)
        events = yield self._events()
        self.assertEqual(len(events), 36)
        receivedAt = at(T0).isoformat(timespec="microseconds")
        rows = [(terminal, r) for terminal in zones for r in sent[terminal]]
        for event, (sn, record) in zip(events, rows, strict=True):
            key = (sn, record.enrollid, record.time, record.mode, record.inout, record.event)
            fields = {
                "enrollid": record.enrollid,
                "time": record.time,
                "mode": record.mode,
                "inout": record.inout,
                "event": record.event,
                "temp": record.temp,
                "verifymode": record.verifymode,
                "image": record.image,
                "extra": record.extra,
            }
            zone = zones[sn] or self.store.defaultTimezone
            expected = logEvent(sn, ids[key], fields, receivedAt, zone)
            self.assertEqual((event.type, event.sn), (expected.type, expected.sn), key)
            self.assertEqual(list(event.payload), [f.name for f in LOG_EVENT_FIELDS], key)
            self.assertEqual(_typed(event.payload), _typed(expected.payload), key)

    @inlineCallbacks
    def test_refusedBatchLeavesNoEvent(self) -> Generator[Deferred[Any], Any, None]:
        """
        A batch whose transaction is rolled back leaves no event; a concurrent one (merged into
        the same group commit of the ingest service, then written alone) does.
        """
        yield self.refuseLogsOf(666)
        ingest = LogIngest(self.store, reactor=reactor)
        self.addCleanup(ingest.stop)
        good = ingest.ingest(SN, [punch(1, "2026-04-30 08:00:00")])
        bad = ingest.ingest(
            OTHER_SN, [punch(2, "2026-04-30 08:00:00"), punch(666, "2026-04-30 08:00:01")]
        )
        yield good
        failure = yield bad.addCallbacks(lambda _: None, lambda f: f.value)
        self.assertIsNotNone(failure, "the refused batch was acknowledged")
        events = yield self._events()
        self.assertEqual([(e.sn, e.payload["enrollid"]) for e in events], [(SN, 1)])
        logs = yield self._allLogs(OTHER_SN)  # type: ignore[attr-defined]
        self.assertEqual(logs, [])

    @inlineCallbacks
    def test_logEventWithoutTimezoneUsesDefault(self) -> Generator[Deferred[Any], Any, None]:
        self.store.defaultTimezone = "Asia/Tokyo"
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 09:00:00")])
        (event,) = yield self._events()
        self.assertEqual(event.payload["timeUTC"], "2026-04-30T00:00:00+00:00")

    @inlineCallbacks
    def test_observersWokenAfterCommit(self) -> Generator[Deferred[Any], Any, None]:
        calls: list[int] = []

        def observer() -> None:
            calls.append(1)

        remove = self.store.addEventObserver(observer)
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 09:00:00")])
        self.assertTrue(calls)
        remove()
        del calls[:]
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 09:00:00")])
        self.assertEqual(calls, [])

    @inlineCallbacks
    def test_terminalEvents(self) -> Generator[Deferred[Any], Any, None]:
        yield self.store.recordTerminalSeen(SN, "cpu1", {"mac": "00:11"}, True)
        yield self.store.recordTerminalSeen(SN, "cpu1", {"mac": "00:11"}, True)
        yield self.store.recordTerminalSeen(OTHER_SN, None, {}, False)
        yield self.store.createTerminal("PRE1", "Gate", True, None)
        yield self.store.recordTerminalSeen("PRE1", None, {}, True)
        types = yield self._types()
        self.assertEqual(types, ["terminal.registered", "terminal.pending", "terminal.registered"])
        events = yield self._events()
        self.assertEqual(events[0].payload["sn"], SN)
        self.assertEqual(events[0].payload["cpusn"], "cpu1")
        self.assertEqual(events[2].payload["name"], "Gate")
        last = events[-1].id

        yield self.store.updateTerminal(SN, {"name": "Front", "active": False})
        yield self.store.flagTerminal(SN, {"problem": "cpusn differs", "peer": "10.0.0.9"})
        yield self.store.setTerminalSecret(SN, "ab" * 32)
        yield self.store.resetTerminalIdentity(SN)
        yield self.store.updateTerminal("NOPE", {"name": "x"})
        yield self.store.deleteTerminal(OTHER_SN)
        yield self.store.deleteTerminal("NOPE")
        events = yield self._events(after=last)
        self.assertEqual(
            [e.type for e in events],
            [
                "terminal.updated",
                "terminal.flagged",
                "terminal.updated",
                "terminal.updated",
                "terminal.deleted",
            ],
        )
        self.assertEqual(events[0].payload["changed"], ["active", "name"])
        self.assertEqual(events[0].payload["name"], "Front")
        self.assertEqual(events[1].payload["mismatch"]["problem"], "cpusn differs")
        self.assertEqual(events[2].payload["changed"], ["secret"])
        self.assertEqual(events[3].payload["changed"], ["identity"])
        self.assertEqual(events[4].sn, OTHER_SN)
        for event in events:
            self.assertNotIn("secretHash", event.payload)
            self.assertNotIn("ab" * 32, repr(event.payload))

    @inlineCallbacks
    def test_userEvents(self) -> Generator[Deferred[Any], Any, None]:
        yield self.store.recordTerminalSeen(SN, None, {}, True)
        start = yield self.store.lastEventId()
        yield self.store.saveCredential(SN, 5, 0, "TEMPLATE-SECRET", "Bob", 0, enrolled=True)
        yield self.store.saveCredential(SN, 5, 11, 123456, None, None)  # a pull: no event
        yield self.store.saveUser(SN, 5, "Bobby", 1, False)
        yield self.store.deleteCredential(SN, 5, 12)
        yield self.store.deleteCredential(SN, 5, 11)
        yield self.store.deleteUser(SN, 5)
        yield self.store.deleteUser(SN, 5)
        yield self.store.saveCredential(SN, 6, 0, "T", None, None)
        yield self.store.deleteCredential(SN, 6, 13)
        events = yield self._events(after=start)
        self.assertEqual(
            [(e.type, e.payload["enrollid"]) for e in events],
            [
                ("user.enrolled", 5),
                ("user.changed", 5),
                ("user.changed", 5),
                ("user.changed", 5),
                ("user.deleted", 5),
                ("user.deleted", 6),
            ],
        )
        self.assertEqual(
            dict(events[0].payload),
            {"sn": SN, "enrollid": 5, "name": "Bob", "backupnum": 0, "admin": 0},
        )
        self.assertEqual(events[1].payload["name"], "Bobby")
        self.assertIs(events[1].payload["enabled"], False)
        self.assertEqual(events[2].payload["removedBackupnum"], 12)
        for event in events:
            self.assertNotIn("TEMPLATE-SECRET", repr(event.payload))

    @inlineCallbacks
    def test_commandFinished(self) -> Generator[Deferred[Any], Any, None]:
        command = yield self.store.enqueueCommand(SN, "getuserinfo", {"enrollid": 1}, "ops", 3)
        yield self.store.updateCommand(command.id, COMMAND_SENT, None, True)
        types = yield self._types()
        self.assertEqual(types, [])
        yield self.store.updateCommand(
            command.id,
            COMMAND_SUCCEEDED,
            {"result": True, "record": "FINGERPRINT"},
            False,
        )
        (event,) = yield self._events()
        self.assertEqual(event.type, "command.finished")
        self.assertEqual(event.payload["commandId"], command.id)
        self.assertEqual(event.payload["status"], "succeeded")
        self.assertEqual(event.payload["reply"], {"result": True})
        self.assertEqual(event.payload["actor"], "ops")

    @inlineCallbacks
    def test_commandFinishedAndNextClaimed(self) -> Generator[Deferred[Any], Any, None]:
        """L{finishAndClaimCommand} appends the finished command's event, and only it."""
        command = yield self.store.submitCommand(
            SN, "opendoor", {"doornum": 1}, "ops", 3, claim=True
        )
        yield self.store.enqueueCommand(SN, "gettime", {}, "ops", 3)
        yield self.store.finishAndClaimCommand(
            command.id, COMMAND_SUCCEEDED, {"result": True}, False, SN, lambda c: False
        )
        (event,) = yield self._events()
        self.assertEqual(event.type, "command.finished")
        self.assertEqual(event.payload["commandId"], command.id)
        self.assertEqual(event.payload["status"], "succeeded")

    @inlineCallbacks
    def test_commandSettledOnce(self) -> Generator[Deferred[Any], Any, None]:
        """A cancelled command: one command.finished; a late reply changes nothing, no event."""
        command = yield self.store.enqueueCommand(SN, "opendoor", {"doornum": 1}, "ops", 3)
        yield self.store.updateCommand(command.id, COMMAND_SENT, None, True)
        settled, changed = yield self.store.settleCommand(
            command.id, COMMAND_CANCELLED, (COMMAND_QUEUED, COMMAND_SENT)
        )
        self.assertTrue(changed)
        again, changedAgain = yield self.store.settleCommand(
            command.id, COMMAND_CANCELLED, (COMMAND_QUEUED, COMMAND_SENT)
        )
        self.assertFalse(changedAgain)
        yield self.store.updateCommand(command.id, COMMAND_SUCCEEDED, {"result": True}, False)
        events = yield self._events()
        self.assertEqual([e.type for e in events], ["command.finished"])
        self.assertEqual(events[0].payload["status"], "cancelled")
        self.assertEqual(events[0].payload["commandId"], command.id)

    @inlineCallbacks
    def test_quarantinedEvents(self) -> Generator[Deferred[Any], Any, None]:
        """Each record newly held has its log.quarantined (without its text); a resend has none."""
        held = yield self.store.quarantineRecords(
            SN,
            "sendlog",
            [
                RejectedRecord('{"time":"yesterday"}', "bad time", "record[0].time"),
                RejectedRecord('{"enrollid":-1}', "out of range", "record[1].enrollid"),
            ],
        )
        self.assertEqual(held, 2)
        again = yield self.store.quarantineRecords(
            SN, "sendlog", [RejectedRecord('{"time":"yesterday"}', "bad time", "record[0].time")]
        )
        self.assertEqual(again, 0)
        yield self.store.quarantineRecords(
            SN, "senduser", [RejectedRecord('{"record":"TEMPLATE"}', "out of range", "backupnum")]
        )
        events = yield self._events()
        self.assertEqual([e.type for e in events], ["log.quarantined"] * 3)
        quarantined = yield self.store.listQuarantine(SN, 10, None)
        ids = sorted(q.id for q in quarantined)
        self.assertEqual([e.payload["quarantineId"] for e in events], ids)
        self.assertEqual(
            dict(events[0].payload),
            {
                "sn": SN,
                "quarantineId": ids[0],
                "source": "sendlog",
                "problem": "bad time",
                "field": "record[0].time",
                "receivedAt": "2026-04-30T11:59:37.000000+00:00",
            },
        )
        self.assertEqual(events[2].payload["source"], "senduser")
        self.assertNotIn("TEMPLATE", repr([e.payload for e in events]))

    @inlineCallbacks
    def test_personSyncEvents(self) -> Generator[Deferred[Any], Any, None]:
        """
        person.synced / person.sync_failed are written with the sync state that becomes synced
        or failed (not again while it stays so; pending and conflict have none); a reply keeps
        only result and reason.
        """
        yield self.store.createTerminal(SN, None, True, None)
        yield self.store.savePersonSync(PersonSync(SN, 5, SYNC_PENDING, True))
        self.assertEqual((yield self._types()), [])
        yield self.store.savePersonSync(PersonSync(SN, 5, SYNC_SYNCED, True))
        yield self.store.savePersonSync(PersonSync(SN, 5, SYNC_SYNCED, True))
        failure = {
            "command": "setuserinfo",
            "commandId": 9,
            "status": "failed",
            "reply": {"ret": "setuserinfo", "result": False, "reason": 5, "record": "PHOTO"},
        }
        yield self.store.savePersonSync(PersonSync(SN, 5, SYNC_FAILED, True, failure))
        yield self.store.savePersonSync(PersonSync(SN, 5, SYNC_CONFLICT, False, {}))
        events = yield self._events()
        self.assertEqual([e.type for e in events], ["person.synced", "person.sync_failed"])
        self.assertEqual(
            events[0].payload,
            {"sn": SN, "enrollid": 5, "state": "synced", "previous": "pending", "detail": {}},
        )
        self.assertEqual(events[1].payload["previous"], "synced")
        self.assertEqual(events[1].payload["detail"]["reply"], {"result": False, "reason": 5})
        self.assertEqual(events[1].sn, SN)

    @inlineCallbacks
    def test_listEventsFilters(self) -> Generator[Deferred[Any], Any, None]:
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        yield self.store.addLogs(OTHER_SN, [punch(0, "2026-04-30 08:00:00")])
        yield self.store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")])
        everything = yield self._events()
        self.assertEqual(len(everything), 3)
        page = yield self.store.listEvents(EventQuery(after=everything[0].id, limit=1))
        self.assertEqual(page, [everything[1]])
        bySn = yield self._events(sn=SN)
        self.assertEqual([e.id for e in bySn], [everything[0].id, everything[2].id])
        byType = yield self._events(types=("door.event",))
        self.assertEqual(byType, [everything[1]])
        none = yield self._events(types=())
        self.assertEqual(none, [])
        last = yield self.store.lastEventId()
        self.assertEqual(last, everything[2].id)

    @inlineCallbacks
    def test_appendEventSurvivesRestart(self) -> Generator[Deferred[Any], Any, None]:
        event = yield self.store.appendEvent(
            "terminal.connected", SN, {"sn": SN, "peer": "10.0.0.1"}
        )
        self.assertEqual(event.type, "terminal.connected")
        self.assertEqual(event.createdAt, at(T0))
        self.assertEqual(dict(event.payload), {"sn": SN, "peer": "10.0.0.1"})
        self.store = yield self.reopenStore()
        events = yield self._events()
        self.assertEqual(events, [event])
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        events = yield self._events()
        self.assertGreater(events[-1].id, event.id)

    @inlineCallbacks
    def test_appendEvents(self) -> Generator[Deferred[Any], Any, None]:
        count = yield self.store.appendEvents(
            [
                NewEvent("terminal.connected", SN, {"peer": "a"}),
                NewEvent("terminal.disconnected", OTHER_SN, {"peer": "b"}),
                NewEvent("terminal.connected", SN, {"peer": "c"}),
            ]
        )
        self.assertEqual(count, 3)
        events = yield self._events()
        self.assertEqual([e.payload["peer"] for e in events], ["a", "b", "c"])
        self.assertEqual([e.sn for e in events], [SN, OTHER_SN, SN])
        none = yield self.store.appendEvents([])
        self.assertEqual(none, 0)

    @inlineCallbacks
    def test_pruneEvents(self) -> Generator[Deferred[Any], Any, None]:
        old = yield self.store.appendEvent("terminal.connected", SN, {})
        yield self.store.openSinkStream("s", 0)
        yield self.store.recordSinkAttempt(
            SinkAttempt("s", at(T0), old.id, old.id, 1, True, 1.0), {}
        )
        self.clock.advance(3600)
        new = yield self.store.appendEvent("terminal.disconnected", SN, {})
        deleted = yield self.store.pruneEvents(at(T0 + 1))
        self.assertEqual(deleted, 1)
        events = yield self._events()
        self.assertEqual(events, [new])
        attempts = yield self.store.listSinkAttempts("s", 10, None)
        self.assertEqual(attempts, [])

    @inlineCallbacks
    def test_pruneEventsStopsAtTheFirstYoungEvent(self) -> Generator[Deferred[Any], Any, None]:
        """
        Pruning deletes the events before the first young one: an old event appended after it
        (the clock stepped back) waits, a young one is never deleted, and with no young event
        every event goes.
        """
        first = yield self.store.appendEvent("terminal.connected", SN, {"n": 1})
        self.clock.advance(3600)
        young = yield self.store.appendEvent("terminal.connected", SN, {"n": 2})
        self.clock.advance(-3600)
        late = yield self.store.appendEvent("terminal.connected", SN, {"n": 3})
        deleted = yield self.store.pruneEvents(at(T0 + 1))
        self.assertEqual(deleted, 1)
        events = yield self._events()
        self.assertEqual(events, [young, late])
        self.assertNotIn(first, events)
        deleted = yield self.store.pruneEvents(at(T0 + 7200))
        self.assertEqual(deleted, 2)
        events = yield self._events()
        self.assertEqual(events, [])
        deleted = yield self.store.pruneEvents(at(T0 + 7200))
        self.assertEqual(deleted, 0)

    # -- streams -----------------------------------------------------------------------------------

    @inlineCallbacks
    def test_sinkStreams(self) -> Generator[Deferred[Any], Any, None]:
        event = yield self.store.appendEvent("terminal.connected", SN, {})
        missing = yield self.store.getSinkStream("x")
        self.assertIsNone(missing)
        stream = yield self.store.openSinkStream("x", None)
        self.assertEqual((stream.key, stream.cursor, stream.state), ("x", event.id, "active"))
        yield self.store.appendEvent("terminal.connected", SN, {})
        again = yield self.store.openSinkStream("x", 0)
        self.assertEqual(again.cursor, event.id)
        fromStart = yield self.store.openSinkStream("y", 0)
        self.assertEqual(fromStart.cursor, 0)
        self.clock.advance(10)
        changed = yield self.store.updateSinkStream(
            "x",
            {
                "state": STREAM_FAILING,
                "failures": 3,
                "retryAt": at(T0 + 70),
                "failingSince": at(T0 + 5),
                "lastError": "HTTP 500",
            },
        )
        self.assertEqual(changed.state, STREAM_FAILING)
        self.assertEqual(changed.failures, 3)
        self.assertEqual(changed.retryAt, at(T0 + 70))
        self.assertEqual(changed.failingSince, at(T0 + 5))
        self.assertEqual(changed.lastError, "HTTP 500")
        self.assertEqual(changed.updatedAt, at(T0 + 10))
        cleared = yield self.store.updateSinkStream("x", {"retryAt": None, "failures": 0})
        self.assertIsNone(cleared.retryAt)
        unknown = yield self.store.updateSinkStream("nope", {"failures": 1})
        self.assertIsNone(unknown)
        with self.assertRaises(ValueError):
            yield self.store.updateSinkStream("x", {"key": "z"})
        with self.assertRaises(ValueError):
            yield self.store.updateSinkStream("x", {"state": "sleepy"})

    @inlineCallbacks
    def test_sinkAttempts(self) -> Generator[Deferred[Any], Any, None]:
        yield self.store.openSinkStream("x", 0)
        for i in range(3):
            stream = yield self.store.recordSinkAttempt(
                SinkAttempt(
                    "x",
                    at(T0 + i),
                    1,
                    4,
                    4,
                    ok=i == 2,
                    latencyMs=12.5,
                    status=500 if i < 2 else 204,
                    error="boom" * 500 if i == 0 else None,
                    response="x\x00y" if i == 1 else None,
                ),
                {"cursor": 4} if i == 2 else {"failures": i + 1},
            )
        self.assertEqual((stream.cursor, stream.failures), (4, 2))
        attempts = yield self.store.listSinkAttempts("x", 2, None)
        self.assertEqual([a.status for a in attempts], [204, 500])
        self.assertTrue(attempts[0].ok)
        self.assertEqual(attempts[0].at, at(T0 + 2))
        self.assertEqual((attempts[0].firstEvent, attempts[0].lastEvent), (1, 4))
        self.assertEqual(attempts[0].latencyMs, 12.5)
        self.assertEqual(attempts[1].response, "xy")
        older = yield self.store.listSinkAttempts("x", 10, attempts[1].id)
        self.assertEqual(len(older), 1)
        self.assertEqual(len(older[0].error), 512)
        with self.assertRaises(ValueError):
            yield self.store.recordSinkAttempt(SinkAttempt("x", at(T0), 1, 1, 1, True, 1), {"x": 1})

    # -- webhooks ----------------------------------------------------------------------------------

    @inlineCallbacks
    def test_webhooks(self) -> Generator[Deferred[Any], Any, None]:
        event = yield self.store.appendEvent("terminal.connected", SN, {})
        hook = yield self.store.createWebhook(
            "https://example.com/h", ["log.*"], SN, "whsec_abc", "payroll"
        )
        self.assertEqual(hook.url, "https://example.com/h")
        self.assertEqual(hook.types, ("log.*",))
        self.assertEqual((hook.sn, hook.secret, hook.description), (SN, "whsec_abc", "payroll"))
        self.assertEqual(hook.createdAt, at(T0))
        stream = yield self.store.getSinkStream(webhookStreamKey(hook.id))
        self.assertEqual(stream.cursor, event.id)
        other = yield self.store.createWebhook("http://b/", ["*"], None, "whsec_x", None)
        hooks = yield self.store.listWebhooks()
        self.assertEqual([h.id for h in hooks], [hook.id, other.id])
        self.clock.advance(5)
        changed = yield self.store.updateWebhook(
            hook.id, {"url": "https://e.org/", "types": ["door.event"], "sn": None}
        )
        self.assertEqual(changed.url, "https://e.org/")
        self.assertEqual(changed.types, ("door.event",))
        self.assertIsNone(changed.sn)
        self.assertEqual(changed.updatedAt, at(T0 + 5))
        self.assertEqual(changed.secret, "whsec_abc")
        with self.assertRaises(ValueError):
            yield self.store.updateWebhook(hook.id, {"secret": "x"})
        missing = yield self.store.updateWebhook(9999, {"url": "http://x/"})
        self.assertIsNone(missing)
        yield self.store.updateSinkStream(webhookStreamKey(hook.id), {"state": STREAM_DISABLED})
        yield self.store.recordSinkAttempt(
            SinkAttempt(webhookStreamKey(hook.id), at(T0), 1, 1, 1, True, 1.0), {}
        )
        deleted = yield self.store.deleteWebhook(hook.id)
        self.assertTrue(deleted)
        again = yield self.store.deleteWebhook(hook.id)
        self.assertFalse(again)
        gone = yield self.store.getWebhook(hook.id)
        self.assertIsNone(gone)
        stream = yield self.store.getSinkStream(webhookStreamKey(hook.id))
        self.assertIsNone(stream)
        attempts = yield self.store.listSinkAttempts(webhookStreamKey(hook.id), 10, None)
        self.assertEqual(attempts, [])
