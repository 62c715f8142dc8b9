"""L{tm20.services.persondiff}: what a terminal must be told for a person, and conflicts."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tm20.model import Credential, Person, User
from tm20.services.persondiff import credentialCounts, desiredEnabled, diffPerson, samePerson

NOW = "2026-05-01 12:00:00"
ANN = Person(
    enrollid=5,
    name="Ann",
    admin=0,
    credentials=(Credential(0, "fp"), Credential(11, 123)),
)


def user(name: str | None = "Ann", enabled: bool = True, admin: int = 0, **slots: object) -> User:
    creds = tuple(Credential(int(k[1:]), v) for k, v in slots.items())  # type: ignore[arg-type]
    return User("T", 5, name=name, admin=admin, enabled=enabled, credentials=creds)


class DiffTests(SynchronousTestCase):
    def test_newUserGetsEveryCredential(self) -> None:
        outcome = diffPerson(5, ANN, None, False, NOW)
        self.assertEqual(
            outcome.commands,
            (
                (
                    "setuserinfo",
                    {"enrollid": 5, "admin": 0, "name": "Ann", "backupnum": 0, "record": "fp"},
                ),
                (
                    "setuserinfo",
                    {"enrollid": 5, "admin": 0, "name": "Ann", "backupnum": 11, "record": 123},
                ),
            ),
        )
        self.assertTrue(outcome.owned and outcome.newUser)

    def test_personWithoutCredentials(self) -> None:
        outcome = diffPerson(6, Person(enrollid=6, name="Bo"), None, False, NOW)
        self.assertEqual(
            outcome.commands, (("setuserinfo", {"enrollid": 6, "admin": 0, "name": "Bo"}),)
        )

    def test_inSync(self) -> None:
        self.assertEqual(diffPerson(5, ANN, user(s0="fp", s11=123), True, NOW).commands, ())
        # a terminal reporting the card as text is the same card
        self.assertEqual(diffPerson(5, ANN, user(s0="fp", s11="123"), True, NOW).commands, ())

    def test_ownedDrift(self) -> None:
        outcome = diffPerson(5, ANN, user(name="Anne", s0="other", s3="extra"), True, NOW)
        self.assertEqual(
            [(name, params.get("backupnum")) for name, params in outcome.commands],
            [("setuserinfo", 0), ("setuserinfo", 11), ("deleteuser", 3)],
        )

    def test_nameAdminEnabled(self) -> None:
        held = {"s0": "fp", "s11": 123}
        self.assertEqual(
            diffPerson(5, ANN, user(name="Anne", **held), True, NOW).commands,
            (("setusername", {"count": 1, "record": [{"enrollid": 5, "name": "Ann"}]}),),
        )
        self.assertEqual(
            diffPerson(5, ANN, user(admin=1, **held), True, NOW).commands,
            (("setuserinfo", {"enrollid": 5, "admin": 0, "name": "Ann"}),),
        )
        self.assertEqual(
            diffPerson(5, ANN, user(enabled=False, **held), True, NOW).commands,
            (
                ("enableuser", {"enrollid": 5, "enflag": 1}),
                ("setuserinfo", {"enrollid": 5, "enable": 1}),
            ),
        )

    def test_conflictUnlessSamePerson(self) -> None:
        someone = user(name="Bob", s11=999)
        outcome = diffPerson(5, ANN, someone, False, NOW)
        self.assertEqual(outcome.commands, ())
        self.assertEqual(outcome.conflict["terminalName"], "Bob")  # type: ignore[index]
        self.assertEqual(outcome.conflict["differentSlots"], [11])  # type: ignore[index]
        # same name, a credential that is not the person's: still someone else
        self.assertIsNotNone(diffPerson(5, ANN, user(s11=999), False, NOW).conflict)
        # same name and only the person's credentials: the same person, completed
        same = diffPerson(5, ANN, user(s0="fp"), False, NOW)
        self.assertIsNone(same.conflict)
        self.assertTrue(same.owned)
        self.assertEqual([p.get("backupnum") for _, p in same.commands], [11])
        self.assertTrue(samePerson(ANN, user(s0="fp")))
        self.assertFalse(samePerson(ANN, user(name="Bob")))

    def test_notDesired(self) -> None:
        held = user(s0="fp")
        self.assertEqual(
            diffPerson(5, None, held, True, NOW).commands,
            (("deleteuser", {"enrollid": 5, "backupnum": 13}),),
        )
        # someone else's user is never deleted
        self.assertEqual(diffPerson(5, None, held, False, NOW).commands, ())
        self.assertEqual(diffPerson(5, None, None, True, NOW).commands, ())

    def test_validityWindow(self) -> None:
        windowed = Person(
            enrollid=5, validFrom="2026-05-01 08:00:00", validUntil="2026-05-31 18:00:00"
        )
        self.assertFalse(desiredEnabled(windowed, "2026-05-01 07:59:59"))
        self.assertTrue(desiredEnabled(windowed, "2026-05-01 08:00:00"))
        self.assertTrue(desiredEnabled(windowed, "2026-05-31 18:00:00"))
        self.assertFalse(desiredEnabled(windowed, "2026-05-31 18:00:01"))
        self.assertFalse(desiredEnabled(Person(enrollid=5, enabled=False), NOW))
        # outside its window, a person is pushed disabled
        outcome = diffPerson(5, windowed, None, False, "2026-06-01 00:00:00")
        self.assertEqual(
            [name for name, _ in outcome.commands], ["setuserinfo", "enableuser", "setuserinfo"]
        )

    def test_needs(self) -> None:
        """What a change adds to the terminal's capacity: new slots only, a face once."""
        person = Person(
            enrollid=5,
            name="Ann",
            credentials=(Credential(0, "fp"), Credential(1, "fp2"), Credential(21, "g")),
        )
        outcome = diffPerson(5, person, user(s0="old", s20="f"), True, NOW)
        self.assertEqual(
            outcome.needs,
            {"usersize": 0, "fpsize": 1, "pwdsize": 0, "cardsize": 0, "facesize": 0},
        )
        self.assertEqual(diffPerson(5, person, None, True, NOW).needs["usersize"], 1)

    def test_credentialCounts(self) -> None:
        person = Person(
            enrollid=1,
            credentials=(
                Credential(0, "a"),
                Credential(1, "b"),
                Credential(10, 1),
                Credential(11, 2),
                Credential(20, "f"),
                Credential(21, "g"),
            ),
        )
        self.assertEqual(
            credentialCounts(person),
            {"usersize": 1, "fpsize": 2, "pwdsize": 1, "cardsize": 1, "facesize": 1},
        )
