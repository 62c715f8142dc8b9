"""The pure rule evaluation of L{tm20.access.rules}: windows, holidays, validity, codes."""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from tm20.access.model import (
    UNKNOWN_ALLOW,
    AccessRule,
    GroupAccess,
    Holiday,
    PersonAccess,
    QrCode,
    Window,
)
from tm20.access.rules import Snapshot, codeHash, decideCode, decidePerson, inWindow

#: Monday 2026-11-30
MONDAY_9 = datetime(2026, 11, 30, 9, 0)
MONDAY_20 = datetime(2026, 11, 30, 20, 0)
SATURDAY_9 = datetime(2026, 12, 5, 9, 0)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _snapshot(**changes: object) -> Snapshot:
    base = {
        "persons": {
            1: PersonAccess(1, "Ann", groups=("staff",)),
            2: PersonAccess(2, "Bob", enabled=False, groups=("staff",)),
            3: PersonAccess(3, "Cy", validUntil="2026-11-01 00:00:00", groups=("staff",)),
            4: PersonAccess(4, "Di"),
        },
        "rules": (
            AccessRule(
                id=7,
                personGroups=("staff",),
                terminalGroups=("hq",),
                windows=(Window(WEEKDAYS, "07:00", "19:00"),),
            ),
        ),
        "terminalGroups": {"DOOR1": frozenset({"hq"}), "DOOR2": frozenset({"annex"})},
    }
    base.update(changes)
    return Snapshot(**base)  # type: ignore[arg-type]


class PersonTests(SynchronousTestCase):
    def test_insideTheWindowPasses(self) -> None:
        d = decidePerson(_snapshot(), "DOOR1", 1, MONDAY_9)
        self.assertEqual((d.granted, d.reason, d.ruleId, d.name), (True, "rule", 7, "Ann"))

    def test_outsideTheWindow(self) -> None:
        for when in (MONDAY_20, SATURDAY_9):
            d = decidePerson(_snapshot(), "DOOR1", 1, when)
            self.assertEqual((d.granted, d.reason), (False, "window"))

    def test_noRuleAtThisDoor(self) -> None:
        d = decidePerson(_snapshot(), "DOOR2", 1, MONDAY_9)
        self.assertEqual((d.granted, d.reason), (False, "rule"))
        d = decidePerson(_snapshot(), "DOOR1", 4, MONDAY_9)
        self.assertEqual((d.granted, d.reason), (False, "rule"))

    def test_disabledAndExpiredNeverPass(self) -> None:
        self.assertEqual(decidePerson(_snapshot(), "DOOR1", 2, MONDAY_9).reason, "disabled")
        self.assertEqual(decidePerson(_snapshot(), "DOOR1", 3, MONDAY_9).reason, "expired")
        self.assertFalse(decidePerson(_snapshot(), "DOOR1", 3, MONDAY_9).granted)

    def test_unknownDeniedUnlessTheGroupAllows(self) -> None:
        d = decidePerson(_snapshot(), "DOOR1", 99, MONDAY_9)
        self.assertEqual((d.granted, d.reason), (False, "unknown"))
        allow = {"hq": GroupAccess("hq", unknownEnrollid=UNKNOWN_ALLOW)}
        d = decidePerson(_snapshot(groupAccess=allow), "DOOR1", 99, MONDAY_9)
        self.assertEqual((d.granted, d.reason), (True, "unknown"))
        d = decidePerson(_snapshot(groupAccess=allow), "DOOR2", 99, MONDAY_9)
        self.assertFalse(d.granted)

    def test_holidayClosesRulesThatDoNotCoverIt(self) -> None:
        holiday = Holiday(1, "Feast", "2026-11-30", "2026-11-30", ("hq",))
        d = decidePerson(_snapshot(holidays=(holiday,)), "DOOR1", 1, MONDAY_9)
        self.assertEqual((d.granted, d.reason), (False, "holiday"))
        rule = AccessRule(id=8, persons=(1,), terminals=("DOOR1",), holidays=True)
        d = decidePerson(
            _snapshot(holidays=(holiday,), rules=(*_snapshot().rules, rule)), "DOOR1", 1, MONDAY_9
        )
        self.assertEqual((d.granted, d.ruleId), (True, 8))

    def test_overnightWindow(self) -> None:
        night = Window(("mon",), "22:00", "06:00")
        self.assertTrue(inWindow(night, datetime(2026, 11, 30, 23, 0)))
        self.assertTrue(inWindow(night, datetime(2026, 12, 1, 5, 59)))
        self.assertFalse(inWindow(night, datetime(2026, 12, 1, 6, 0)))
        self.assertFalse(inWindow(night, datetime(2026, 11, 30, 5, 0)))
        self.assertTrue(inWindow(Window(("mon",), "00:00", "24:00"), MONDAY_20))


class CodeTests(SynchronousTestCase):
    NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    def snapshot(self, **changes: object) -> Snapshot:
        fields = {
            "id": 5,
            "codeHash": codeHash("VISIT-1"),
            "visitorName": "Eve",
            "validFrom": datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
            "validUntil": datetime(2026, 11, 30, 18, 0, tzinfo=UTC),
            "terminals": ("DOOR1",),
        }
        fields.update(changes)
        code = QrCode(**fields)  # type: ignore[arg-type]
        return _snapshot(codes={code.codeHash: code}, pins={"4321": (1,)})

    def decide(self, snapshot: Snapshot, text: str = "VISIT-1", sn: str = "DOOR1") -> object:
        d = decideCode(snapshot, sn, text, MONDAY_9, self.NOW)
        return (d.granted, d.reason)

    def test_validAtItsDoor(self) -> None:
        self.assertEqual(self.decide(self.snapshot()), (True, "qr_valid"))
        self.assertEqual(self.decide(self.snapshot(), sn="DOOR2"), (False, "qr_door"))
        self.assertEqual(self.decide(self.snapshot(), text="nope"), (False, "qr_unknown"))

    def test_expiredRevokedUsed(self) -> None:
        late = datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
        self.assertEqual(self.decide(self.snapshot(validUntil=late)), (False, "qr_expired"))
        self.assertEqual(
            self.decide(self.snapshot(validFrom=late.replace(hour=9))), (False, "qr_expired")
        )
        self.assertEqual(self.decide(self.snapshot(revokedAt=late)), (False, "qr_revoked"))
        single = self.snapshot(singleUse=True)
        d = decideCode(single, "DOOR1", "VISIT-1", MONDAY_9, self.NOW)
        self.assertTrue(d.granted and d.consume)
        used = single.withCodeUsed(5, "DOOR1", self.NOW)
        self.assertEqual(self.decide(used), (False, "qr_used"))

    def test_aPersonsCodeFollowsThePerson(self) -> None:
        self.assertEqual(self.decide(self.snapshot(enrollid=1)), (True, "qr_valid"))
        self.assertEqual(self.decide(self.snapshot(enrollid=2)), (False, "disabled"))

    def test_pinOfAPersonIsDecidedByTheRules(self) -> None:
        d = decideCode(self.snapshot(), "DOOR1", "4321", MONDAY_9, self.NOW, pin=True)
        self.assertEqual((d.granted, d.reason, d.enrollid), (True, "rule", 1))
        d = decideCode(self.snapshot(), "DOOR1", "4321", MONDAY_20, self.NOW, pin=True)
        self.assertEqual((d.granted, d.reason), (False, "window"))
        d = decideCode(self.snapshot(), "DOOR1", "4321", MONDAY_9, self.NOW)
        self.assertEqual(d.reason, "qr_unknown")


class ControlTests(SynchronousTestCase):
    """L{Snapshot.controls}: which doors are under access control (C{--access-control auto})."""

    def test_nothingConfiguredControlsNothing(self) -> None:
        empty = Snapshot(terminalGroups={"DOOR1": frozenset({"hq"})})
        self.assertFalse(empty.controls("DOOR1"))

    def test_ruleByTerminalOrGroup(self) -> None:
        snapshot = Snapshot(
            rules=(AccessRule(id=1, persons=(1,), terminals=("DOOR1",)),),
            terminalGroups={"DOOR2": frozenset({"hq"}), "DOOR3": frozenset({"annex"})},
        )
        self.assertEqual(
            [snapshot.controls(sn) for sn in ("DOOR1", "DOOR2", "DOOR3")], [True, False, False]
        )
        byGroup = Snapshot(
            rules=(AccessRule(id=1, persons=(1,), terminalGroups=("hq",)),),
            terminalGroups={"DOOR2": frozenset({"hq"}), "DOOR3": frozenset({"annex"})},
        )
        self.assertEqual(
            [byGroup.controls(sn) for sn in ("DOOR1", "DOOR2", "DOOR3")], [False, True, False]
        )

    def test_codeUnlessRevoked(self) -> None:
        code = QrCode(id=5, codeHash=codeHash("V"), terminalGroups=("annex",))
        groups = {"DOOR3": frozenset({"annex"})}
        self.assertTrue(
            Snapshot(codes={code.codeHash: code}, terminalGroups=groups).controls("DOOR3")
        )
        revoked = QrCode(
            id=5, codeHash=codeHash("V"), terminals=("DOOR3",), revokedAt=datetime.now(UTC)
        )
        self.assertFalse(Snapshot(codes={revoked.codeHash: revoked}).controls("DOOR3"))

    def test_groupAccessSetting(self) -> None:
        snapshot = Snapshot(
            groupAccess={"hq": GroupAccess("hq", unknownEnrollid=UNKNOWN_ALLOW)},
            terminalGroups={"DOOR2": frozenset({"hq"})},
        )
        self.assertEqual([snapshot.controls(sn) for sn in ("DOOR1", "DOOR2")], [False, True])
