"""The rules compiled to a terminal's own lock settings (L{tm20.access.device})."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tm20.access.device import DevicePlanError, devicePlan
from tm20.access.model import AccessRule, PersonAccess, Window
from tm20.access.rules import Snapshot

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _snapshot(*rules: AccessRule, persons: int = 4) -> Snapshot:
    people = {
        1: PersonAccess(1, groups=("hq",), validUntil="2026-12-31 23:59:59"),
        2: PersonAccess(2, groups=("hq",)),
        3: PersonAccess(3, terminals=("DOOR1",), enabled=False),
        4: PersonAccess(4, groups=("annex",)),  # not on DOOR1
    }
    return Snapshot(
        persons={k: v for k, v in people.items() if k <= persons},
        rules=rules,
        terminalGroups={"DOOR1": frozenset({"hq"})},
    )


class DevicePlanTests(SynchronousTestCase):
    def test_windowsBecomeZones(self) -> None:
        plan = devicePlan(
            _snapshot(
                AccessRule(
                    id=1,
                    persons=(1, 3),
                    terminalGroups=("hq",),
                    windows=(
                        Window(WEEKDAYS, "07:00", "12:00"),
                        Window(WEEKDAYS, "11:00", "19:00"),
                        Window(("sun",), "22:00", "24:00"),
                    ),
                )
            ),
            "DOOR1",
        )
        self.assertEqual(
            list(plan.dayzone),
            [
                {"day": [{"section": "00:00~00:00"}]},
                {"day": [{"section": "07:00~19:00"}]},
                {"day": [{"section": "22:00~23:59"}]},
            ],
        )
        self.assertEqual(
            [[d["day"] for d in w["week"]] for w in plan.weekzone],
            [[2, 2, 2, 2, 2, 1, 3], [1, 1, 1, 1, 1, 1, 1]],
        )
        # 1 by the rule, until its validity ends; 2 has no rule, 3 is disabled: never
        self.assertEqual(
            list(plan.userlocks),
            [
                {"enrollid": 1, "weekzone": 1, "endtime": "2026-12-31 23:59:59"},
                {"enrollid": 2, "weekzone": 2},
                {"enrollid": 3, "weekzone": 2},
            ],
        )
        commands = plan.commands(chunk=2)
        self.assertEqual(
            [name for name, _ in commands], ["setdevlock", "setuserlock", "setuserlock"]
        )
        self.assertEqual(commands[2][1], {"count": 1, "record": [plan.userlocks[2]]})

    def test_overnightAndAlways(self) -> None:
        plan = devicePlan(
            _snapshot(
                AccessRule(
                    id=1,
                    persons=(1,),
                    terminals=("DOOR1",),
                    windows=(Window(("sun",), "22:00", "06:00"),),
                ),
                AccessRule(id=2, persons=(2,), terminals=("DOOR1",)),
                persons=2,
            ),
            "DOOR1",
        )
        sections = [[s["section"] for s in d["day"]] for d in plan.dayzone]
        self.assertIn(["00:00~06:00"], sections)  # Monday morning
        self.assertIn(["22:00~23:59"], sections)  # Sunday night
        self.assertIn(["00:00~23:59"], sections)  # always

    def test_tooManySectionsIsRefused(self) -> None:
        windows = tuple(Window(("mon",), f"{h:02d}:00", f"{h:02d}:30") for h in range(6))
        with self.assertRaises(DevicePlanError) as caught:
            devicePlan(
                _snapshot(AccessRule(id=1, persons=(1,), terminals=("DOOR1",), windows=windows)),
                "DOOR1",
            )
        self.assertIn("6 time ranges on mon", str(caught.exception))
