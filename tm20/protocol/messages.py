"""
Typed messages of the terminal protocol.

Every frame a terminal sends is parsed (L{tm20.protocol.parser}) into one of the classes below; the
rest of the server never handles raw dicts.  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

#: Credential slots (``backupnum``), see protocol notes section 4.1.
BACKUPNUM_PASSWORD = 10
BACKUPNUM_CARD = 11
BACKUPNUM_ALL_FINGERPRINTS = 12
BACKUPNUM_EVERYTHING = 13
BACKUPNUM_PHOTO = 50

#: ``enrollid`` of a door or system event in a log record.
DOOR_EVENT_ENROLLID = 0
#: ``enrollid`` of an unknown face (stranger) on AI terminals.
STRANGER_ENROLLID = 99999999


class ProtocolError(ValueError):
    """
    A frame that cannot be understood.

    @ivar cmd: the command name, when it could be read (used to address the C{result:false} reply).
    @ivar field: the offending field, or C{None} for the frame as a whole.
    @ivar problem: what was wrong, for logs and API errors.
    @ivar ret: for a malformed reply (C{ret} frame), its C{ret} name when it could be read; such a
        frame is never answered, so C{cmd} stays C{None}.
    """

    def __init__(
        self,
        problem: str,
        field: str | None = None,
        cmd: str | None = None,
        ret: str | None = None,
    ) -> None:
        self.problem = problem
        self.field = field
        self.cmd = cmd
        self.ret = ret
        where = f"{field}: " if field else ""
        super().__init__(f"{where}{problem}")


@attrs.frozen
class LogRecord:
    """
    One attendance punch or door event, as a terminal reports it.

    C{time} is the terminal's local wall-clock time normalised to C{YYYY-MM-DD HH:MM:SS}.
    C{extra} keeps the fields this server does not model (C{name}, C{aliasid}, C{note}, ...).
    """

    enrollid: int
    time: str
    mode: int = 0
    inout: int = 0
    event: int = 0
    temp: float | None = None
    verifymode: int | None = None
    image: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def isDoorEvent(self) -> bool:
        """C{True} for door/system events (C{enrollid} 0): never a punch of user 0."""
        return self.enrollid == DOOR_EVENT_ENROLLID

    def key(self) -> tuple[int, str, int, int, int]:
        """The identity of a record: a resent record has the same key."""
        return (self.enrollid, self.time, self.mode, self.inout, self.event)


@attrs.frozen
class RejectedRecord:
    """
    A record a terminal sent that can never be stored (a bad time, a value out of range, not an
    object ...): it is kept as it came, in the quarantine, instead of blocking its batch.

    @ivar raw: the record's JSON text exactly as the terminal sent it (for C{senduser}, the
        whole frame, which is the record).
    @ivar problem: what is wrong with it.
    @ivar field: the offending field, e.g. C{record[3].time}; C{None} for the record as a whole.
    """

    raw: str
    problem: str
    field: str | None = None

    @property
    def reason(self) -> str:
        """C{field: problem}, as a L{ProtocolError} says it."""
        return f"{self.field}: {self.problem}" if self.field else self.problem


@attrs.frozen
class Register:
    """C{reg}: the first frame of a terminal, repeated as a heartbeat."""

    sn: str
    cpusn: str | None
    devinfo: Mapping[str, Any]
    cmd: str = "reg"


@attrs.frozen
class SendLog:
    """
    C{sendlog}: a batch of log records.

    C{records} are the records that can be stored, C{rejected} those that never can (kept raw
    for the quarantine); together they are the whole batch.
    """

    sn: str | None
    count: int | None
    logindex: int | None
    records: tuple[LogRecord, ...]
    rejected: tuple[RejectedRecord, ...] = ()
    cmd: str = "sendlog"


@attrs.frozen
class SendUser:
    """
    C{senduser}: a user enrolled on the terminal's keypad, one credential slot per message.

    C{record} is a string for fingerprint/face/photo slots and an int for password/card slots;
    it is kept exactly as the terminal sent it (after stripping a C{data:} prefix).
    """

    sn: str | None
    enrollid: int
    name: str | None
    backupnum: int | None
    admin: int
    record: str | int | None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    cmd: str = "senduser"


@attrs.frozen
class SendUserRejected:
    """
    C{senduser} whose user or credential can never be stored (an C{enrollid} missing or out of
    range, a C{backupnum} beyond 32 bits, a NUL in the name ...): a single record, kept raw for
    the quarantine.  It is acknowledged once quarantined: a terminal answered C{result:false}
    resends it every few seconds, forever.
    """

    sn: str | None
    rejected: RejectedRecord
    cmd: str = "senduser"


@attrs.frozen
class SendQrCode:
    """C{sendqrcode}: a QR code scanned by an AI terminal."""

    sn: str | None
    record: str
    cmd: str = "sendqrcode"


@attrs.frozen
class TerminalCommand:
    """
    Any other terminal-initiated command (operators' own, AiFace extensions): the cleaned fields
    are passed through untouched for a handler plugin to interpret.
    """

    cmd: str
    sn: str | None
    fields: Mapping[str, Any]


@attrs.frozen
class UserRecord:
    """
    One credential slot of a user as a terminal reports it in a reply (C{getuserinfo},
    C{getallusers}, the C{record} list of C{getuserlist}); see
    L{tm20.protocol.parser.parseUserRecord}.

    C{record} keeps the JSON type the terminal used (str or int), after stripping a C{data:}
    prefix; C{getuserlist} entries have no C{record} (C{None}).
    """

    enrollid: int
    name: str | None = None
    backupnum: int | None = None
    admin: int = 0
    record: str | int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class CommandReply:
    """
    A terminal's answer (C{ret}) to a command the server sent.

    C{fields} holds everything but C{ret}, C{sn}, C{result} and C{reason}.
    """

    ret: str
    sn: str | None
    result: bool
    reason: Any = None
    fields: Mapping[str, Any] = attrs.field(factory=dict)


#: Every message a terminal can send.
TerminalMessage = Register | SendLog | SendUser | SendUserRejected | SendQrCode | TerminalCommand
Message = TerminalMessage | CommandReply
