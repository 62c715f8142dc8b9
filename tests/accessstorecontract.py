"""
The access control part of the store contract (L{tm20.interfaces.IAccessStore}), as a mixin
of the store tests: the same tests on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, inlineCallbacks
from zope.interface.verify import verifyObject

from tm20.access.model import AccessRule, Decision, GroupAccess, Holiday, QrCode, Window
from tm20.access.rules import codeHash
from tm20.events.model import EventQuery
from tm20.interfaces import IAccessStore
from tm20.model import Credential, LogQuery, Person, TerminalGroup
from tm20.protocol.messages import LogRecord

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase

    _Base = TestCase
else:
    _Base = object

_Gen = Generator[Deferred[Any], Any, None]


class AccessStoreContractTests(_Base):
    store: Any

    @inlineCallbacks
    def _accessFleet(self) -> _Gen:
        yield self.store.createTerminal("DOOR1", None, True, "Europe/Paris")
        yield self.store.putGroup(TerminalGroup(name="hq", terminals=("DOOR1",)), True)
        person = Person(
            enrollid=1,
            name="Ann",
            groups=("hq",),
            credentials=(Credential(backupnum=10, record=4321),),
        )
        yield self.store.putPerson(person, True)

    @inlineCallbacks
    def _eventsOfType(self, type: str) -> Generator[Deferred[Any], Any, list[Any]]:
        events = yield self.store.listEvents(EventQuery(limit=1000))
        return [e for e in events if e.type == type]

    def test_accessStoreInterface(self) -> None:
        self.assertTrue(verifyObject(IAccessStore, self.store))

    @inlineCallbacks
    def test_rulesRoundTrip(self) -> _Gen:
        yield self._accessFleet()
        rule = AccessRule(
            id=0,
            description="staff",
            persons=(1,),
            personGroups=("hq",),
            terminalGroups=("hq",),
            windows=(Window(("mon", "fri"), "07:00", "19:00"),),
            holidays=True,
        )
        created = yield self.store.putAccessRule(rule, True)
        self.assertEqual(created.windows, rule.windows)
        self.assertEqual((created.persons, created.holidays), ((1,), True))
        self.assertIsNotNone(created.createdAt)
        replaced = yield self.store.putAccessRule(
            AccessRule(id=created.id, persons=(1,), terminals=("DOOR1",)), False
        )
        self.assertEqual((replaced.windows, replaced.terminals), ((), ("DOOR1",)))
        missing = yield self.store.putAccessRule(AccessRule(id=999, persons=(1,)), False)
        self.assertIsNone(missing)
        self.assertEqual([r.id for r in (yield self.store.listAccessRules())], [created.id])
        self.assertTrue((yield self.store.deleteAccessRule(created.id)))
        self.assertFalse((yield self.store.deleteAccessRule(created.id)))

    @inlineCallbacks
    def test_snapshotHoldsWhatADecisionReads(self) -> _Gen:
        yield self._accessFleet()
        yield self.store.putAccessRule(AccessRule(id=0, persons=(1,), terminals=("DOOR1",)), True)
        yield self.store.addHoliday(
            Holiday(id=0, name="Feast", start="2026-12-25", end="2026-12-26")
        )
        yield self.store.putGroupAccess(GroupAccess("hq", unknownCode="allow"))
        yield self.assertFailure(self.store.putGroupAccess(GroupAccess("nope")), ValueError)
        until = datetime(2026, 12, 1, tzinfo=UTC)
        code = yield self.store.addQrCode(
            QrCode(
                id=0,
                codeHash=codeHash("V1"),
                visitorName="Eve",
                validUntil=until,
                terminals=("DOOR1",),
            )
        )
        self.assertEqual(code.validUntil, until)
        yield self.assertFailure(
            self.store.addQrCode(QrCode(id=0, codeHash=codeHash("V1"), visitorName="X")), ValueError
        )
        snapshot = yield self.store.loadAccessSnapshot()
        self.assertEqual(snapshot.persons[1].groups, ("hq",))
        self.assertEqual(snapshot.pins, {"4321": (1,)})
        self.assertEqual(snapshot.terminalGroups, {"DOOR1": frozenset({"hq"})})
        self.assertEqual(snapshot.codes[codeHash("V1")].visitorName, "Eve")
        self.assertEqual(snapshot.groupAccess["hq"].unknownCode, "allow")
        self.assertEqual([h.name for h in snapshot.holidays], ["Feast"])
        self.assertEqual(len(snapshot.rules), 1)
        revoked = yield self.store.revokeQrCode(code.id)
        self.assertIsNotNone(revoked.revokedAt)
        self.assertIsNone((yield self.store.revokeQrCode(999)))

    @inlineCallbacks
    def test_aDecidedPunchIsStoredWithItsDecisionAndEvents(self) -> _Gen:
        yield self._accessFleet()
        record = LogRecord(enrollid=1, time="2026-04-30 13:59:30")
        granted = Decision(True, "rule", enrollid=1, ruleId=3)
        logId = yield self.store.recordAccessPunch("DOOR1", record, granted, "Europe/Paris")
        self.assertIsNotNone(logId)
        again = yield self.store.recordAccessPunch("DOOR1", record, granted, "Europe/Paris")
        self.assertIsNone(again)
        # a backlog batch through the usual path: no decision asked
        yield self.store.addLogs("DOOR1", [LogRecord(enrollid=1, time="2026-04-30 08:00:00")])
        logs = yield self.store.queryLogs(LogQuery(sn="DOOR1"))
        self.assertEqual(
            [(log.time, log.accessGranted, log.accessReason) for log in logs],
            [("2026-04-30 13:59:30", True, "rule"), ("2026-04-30 08:00:00", None, None)],
        )
        only = yield self.store.queryLogs(LogQuery(access="granted"))
        self.assertEqual([log.id for log in only], [logId])
        none = yield self.store.queryLogs(LogQuery(access="none"))
        self.assertEqual([log.time for log in none], ["2026-04-30 08:00:00"])
        self.assertEqual((yield self.store.queryLogs(LogQuery(access="denied"))), [])
        self.assertEqual(len((yield self.store.queryLogs(LogQuery(accessReason="rule")))), 1)
        events = yield self._eventsOfType("access.granted")
        self.assertEqual(len(events), 1)
        self.assertEqual(
            (events[0].payload["logId"], events[0].payload["reason"], events[0].payload["timeUTC"]),
            (logId, "rule", "2026-04-30T11:59:30+00:00"),
        )
        created = yield self._eventsOfType("log.created")
        self.assertEqual(len(created), 2)
        # the door got the fallback after all: recorded as such, with a correcting event
        yield self.store.recordAccessFallback("DOOR1", "log", logId, granted.denied("fallback"))
        logs = yield self.store.queryLogs(LogQuery(access="denied"))
        self.assertEqual([(log.id, log.accessReason) for log in logs], [(logId, "fallback")])
        denied = yield self._eventsOfType("access.denied")
        self.assertTrue(denied[0].payload["replaces"])

    @inlineCallbacks
    def test_aSingleUseCodeIsConsumedOnce(self) -> _Gen:
        yield self._accessFleet()
        code = yield self.store.addQrCode(
            QrCode(
                id=0,
                codeHash=codeHash("ONCE"),
                visitorName="Eve",
                terminals=("DOOR1",),
                singleUse=True,
            )
        )
        decision = Decision(True, "qr_valid", qrcodeId=code.id, consume=True)
        first, firstId = yield self.store.recordAccessCode("DOOR1", "qrcode", decision)
        second, secondId = yield self.store.recordAccessCode("DOOR2", "qrcode", decision)
        self.assertEqual((first.granted, second.granted, second.reason), (True, False, "qr_used"))
        stored = yield self.store.getQrCode(code.id)
        self.assertEqual(stored.usedSn, "DOOR1")
        decisions = yield self.store.listAccessDecisions(None, 10, None)
        self.assertEqual(
            [(d["id"], d["granted"], d["reason"]) for d in decisions],
            [(secondId, False, "qr_used"), (firstId, True, "qr_valid")],
        )
        self.assertEqual(len((yield self.store.listAccessDecisions("DOOR2", 10, None))), 1)
        granted = yield self.store.listAccessDecisions(None, 10, None, True)
        self.assertEqual([d["id"] for d in granted], [firstId])
        denied = yield self.store.listAccessDecisions(None, 10, None, False)
        self.assertEqual([d["id"] for d in denied], [secondId])
        # the door got a denial after all: the code is given back
        yield self.store.recordAccessFallback(
            "DOOR1", "qrcode", firstId, decision.denied("fallback")
        )
        stored = yield self.store.getQrCode(code.id)
        self.assertIsNone(stored.usedAt)
        types = [e.type for e in (yield self.store.listEvents(EventQuery(limit=100)))]
        self.assertEqual(types.count("access.denied"), 2)
