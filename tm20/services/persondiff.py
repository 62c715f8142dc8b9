"""
What a terminal must be told so that it holds a fleet person as desired: a pure function of the
person (desired), the terminal's user as the server knows it, and whether that user is the
fleet's (L{tm20.model.PersonSync.owned}).

  - Not desired on the terminal (the person was deleted or unassigned): an owned user is deleted
    (C{deleteuser} 13); a user that is not the fleet's is left alone.
  - Desired, and the terminal has no such user: one C{setuserinfo} per credential slot (name and
    admin level with each), or one without a slot for a person without credentials; then
    C{enableuser} (and the C{setuserinfo enable} form) when it must be disabled.
  - Desired, and the terminal's user is not the fleet's yet: when it is the same person (same
    name, and every credential it holds equal to the person's) it becomes the fleet's and is
    completed; otherwise it is a B{conflict}: nothing is sent, the difference is reported.
  - Desired and owned: credentials missing or different are written, slots the person does not
    have are deleted, a different name is set (C{setusername}), a different admin level with a
    C{setuserinfo}, the enabled flag with C{enableuser}.

A person is enabled on its terminals when it is C{enabled} and the terminal's local time is
inside its validity window (C{validFrom} to C{validUntil}, inclusive).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tm20.model import Person, User
from tm20.protocol.commands import BACKUPNUMS_DELETE, buildCommand

__all__ = ["Outcome", "credentialCounts", "diffPerson", "desiredEnabled", "samePerson"]

#: Slots compared as numbers (a terminal may report a card or password as text).
_NUMERIC_SLOTS = (10, 11)


@attrs.frozen
class Outcome:
    """
    @ivar commands: C{(name, params)} to queue, in order (validated by L{buildCommand}).
    @ivar conflict: what differs when the terminal's user is someone else's, else C{None}.
    @ivar owned: whether the terminal's user is (or, once the commands succeed, will be) the
        fleet's.
    @ivar newUser: the commands create the user on the terminal.
    @ivar needs: what the commands add to the terminal's capacity, by C{devinfo} size key
        (C{usersize} for a new user, C{fpsize}, C{pwdsize}, C{cardsize}, C{facesize} for new
        slots; a face counts once per user).
    """

    commands: tuple[tuple[str, dict[str, Any]], ...] = ()
    conflict: Mapping[str, Any] | None = None
    owned: bool = False
    newUser: bool = False
    needs: Mapping[str, int] = attrs.field(factory=dict)


def desiredEnabled(person: Person, localNow: str) -> bool:
    """The person is enabled and C{localNow} (C{YYYY-MM-DD HH:MM:SS}) is inside its window."""
    if not person.enabled:
        return False
    if person.validFrom is not None and localNow < person.validFrom:
        return False
    return not (person.validUntil is not None and localNow > person.validUntil)


def _same(backupnum: int, a: Any, b: Any) -> bool:
    if backupnum in _NUMERIC_SLOTS:
        return str(a).strip() == str(b).strip()
    return bool(a == b)


def samePerson(person: Person, user: User) -> bool:
    """The terminal's user is this person: same name, and only credentials equal to its."""
    if (user.name or "") != (person.name or ""):
        return False
    wanted = {c.backupnum: c.record for c in person.credentials}
    return all(
        c.backupnum in wanted and _same(c.backupnum, c.record, wanted[c.backupnum])
        for c in user.credentials
    )


def _command(name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    buildCommand(name, params)  # validated now: a bad person is refused before anything is sent
    return (name, params)


def _profile(person: Person) -> dict[str, Any]:
    params: dict[str, Any] = {"enrollid": person.enrollid, "admin": person.admin}
    if person.name is not None:
        params["name"] = person.name
    return params


def _enable(enrollid: int, enabled: bool) -> list[tuple[str, dict[str, Any]]]:
    flag = 1 if enabled else 0
    return [
        _command("enableuser", {"enrollid": enrollid, "enflag": flag}),
        _command("setuserinfo", {"enrollid": enrollid, "enable": flag}),
    ]


def diffPerson(
    enrollid: int, person: Person | None, user: User | None, owned: bool, localNow: str
) -> Outcome:
    """
    The commands that make the terminal's user C{enrollid} what C{person} wants (C{None}: the
    person is not desired on this terminal).
    """
    if person is None:
        if user is not None and owned:
            return Outcome(
                commands=(_command("deleteuser", {"enrollid": enrollid, "backupnum": 13}),),
                owned=True,
            )
        return Outcome()
    enabled = desiredEnabled(person, localNow)
    if user is None:
        commands = [
            _command(
                "setuserinfo",
                {**_profile(person), "backupnum": c.backupnum, "record": c.record},
            )
            for c in person.credentials
        ]
        if not commands:
            commands.append(_command("setuserinfo", _profile(person)))
        if not enabled:
            commands.extend(_enable(enrollid, False))
        return Outcome(
            commands=tuple(commands), owned=True, newUser=True, needs=credentialCounts(person)
        )
    if not owned and not samePerson(person, user):
        wanted = {c.backupnum: c.record for c in person.credentials}
        differs = sorted(
            c.backupnum
            for c in user.credentials
            if c.backupnum not in wanted or not _same(c.backupnum, c.record, wanted[c.backupnum])
        )
        return Outcome(
            conflict={
                "reason": "the terminal holds another user with this enrollid",
                "terminalName": user.name,
                "personName": person.name,
                "differentSlots": differs,
            }
        )
    held = {c.backupnum: c.record for c in user.credentials}
    commands = []
    for c in person.credentials:
        if c.backupnum not in held or not _same(c.backupnum, held[c.backupnum], c.record):
            commands.append(
                _command(
                    "setuserinfo",
                    {**_profile(person), "backupnum": c.backupnum, "record": c.record},
                )
            )
    wantedSlots = {c.backupnum for c in person.credentials}
    for backupnum in sorted(held):
        if backupnum not in wantedSlots and backupnum in BACKUPNUMS_DELETE:
            commands.append(_command("deleteuser", {"enrollid": enrollid, "backupnum": backupnum}))
    if not any(name == "setuserinfo" for name, _ in commands):
        if user.admin != person.admin:
            commands.append(_command("setuserinfo", _profile(person)))
        elif (user.name or "") != (person.name or "") and person.name:
            commands.append(
                _command(
                    "setusername",
                    {"count": 1, "record": [{"enrollid": enrollid, "name": person.name}]},
                )
            )
    if user.enabled != enabled:
        commands.extend(_enable(enrollid, enabled))
    added = [c.backupnum for c in person.credentials if c.backupnum not in held]
    hadFace = any(20 <= b <= 27 for b in held)
    return Outcome(
        commands=tuple(commands), owned=True, needs=_slotNeeds(added, countFace=not hadFace)
    )


def _slotNeeds(backupnums: list[int], countFace: bool = True) -> dict[str, int]:
    counts = {"usersize": 0, "fpsize": 0, "pwdsize": 0, "cardsize": 0, "facesize": 0}
    for backupnum in backupnums:
        if 0 <= backupnum <= 9:
            counts["fpsize"] += 1
        elif backupnum == 10:
            counts["pwdsize"] += 1
        elif backupnum == 11:
            counts["cardsize"] += 1
        elif 20 <= backupnum <= 27 and countFace:
            counts["facesize"] = 1
    return counts


def credentialCounts(person: Person) -> dict[str, int]:
    """What the person takes of a terminal's capacity, by C{devinfo} size key."""
    return {**_slotNeeds([c.backupnum for c in person.credentials]), "usersize": 1}
