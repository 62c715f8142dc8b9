"""
The simulated terminal as a pure state machine.

L{SimulatedTerminal} holds what a TM20 terminal holds (users and their credentials, stored logs,
device settings, access-control tables, its clock) and turns frames into frames:

  - frames the terminal initiates: L{SimulatedTerminal.registerFrame} (C{reg}),
    L{SimulatedTerminal.nextLogBatch} (C{sendlog}), L{SimulatedTerminal.nextSendUser}
    (C{senduser});
  - the server's replies to them: L{SimulatedTerminal.handleReply};
  - the server's commands: L{SimulatedTerminal.handleCommand}, which answers every command of the
    vendor protocol (section 6 of the protocol notes) with the documented reply shape.

Nothing here does I/O or reads the wall clock: time comes from an injected callable, randomness
from a seeded C{random.Random}.  All replies carry C{sn}, as the real TH900 does.

Two paging conventions are offered (C{pagingStyle}), because the firmwares disagree:

  - C{"doc"}: the vendor document.  C{to} is inclusive (C{from 0 to 39}); in C{getuserlist}
    C{count} is the number of records in the page; in C{getnewlog}/C{getalllog} C{count} is the
    total.
  - C{"th900"}: what a TH900_click V5.0 was seen to do.  C{to} is exclusive (C{from + n}) and
    C{count} is the total, for users and logs alike.

Firmwares also pick their own page size: C{pageSize} overrides the protocol's (40 users, 50
logs), and C{countIsTotal} / C{exclusiveTo} override what the style says C{count} and C{to} mean,
so every combination a server must survive (10, 40 or 50 a page; C{count} the page size or the
total; C{to} inclusive or exclusive) can be simulated.

In every style an empty data set, or a request past the last page, answers C{count:0, from:0,
to:0, record:[]}.  A paged read works on a snapshot taken at C{stn:true}.

Log flags: a log is I{uploaded} once a C{sendlog} batch containing it is acknowledged, and I{new}
until it is uploaded or returned by C{getnewlog} (which marks each page read as it is sent, but
does not mark it uploaded: C{sendlog} still pushes it).  The protocol leaves this open; this is
the simulator's choice.
"""

from __future__ import annotations

import random
import re
import time as _time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal, TypeVar

__all__ = [
    "BACKUPNUM_ALL_FINGERPRINTS",
    "BACKUPNUM_CARD",
    "BACKUPNUM_EVERYTHING",
    "BACKUPNUM_PASSWORD",
    "BACKUPNUM_PHOTO",
    "LogEntry",
    "PagingStyle",
    "SimulatedTerminal",
    "User",
    "fakeTemplate",
    "parseDeviceTime",
]

#: Credential slots (C{backupnum}).
BACKUPNUM_PASSWORD = 10
BACKUPNUM_CARD = 11
BACKUPNUM_ALL_FINGERPRINTS = 12
BACKUPNUM_EVERYTHING = 13
BACKUPNUM_PHOTO = 50

FINGERPRINT_SLOTS = frozenset(range(0, 10))
FACE_SLOTS = frozenset(range(20, 28))
PALM_SLOTS = frozenset(range(30, 38))
NUMERIC_SLOTS = frozenset({BACKUPNUM_PASSWORD, BACKUPNUM_CARD})
#: Slots that can hold a credential (12 and 13 are only meaningful for C{deleteuser}).
STORABLE_SLOTS = (
    FINGERPRINT_SLOTS | NUMERIC_SLOTS | FACE_SLOTS | PALM_SLOTS | frozenset({BACKUPNUM_PHOTO})
)

#: Page sizes of the vendor protocol.
USER_PAGE_SIZE = 40
LOG_PAGE_SIZE = 50
#: Largest C{setusername} / C{setuserlock} package accepted.
MAX_NAMES_PER_PACKAGE = 50
MAX_LOCKS_PER_PACKAGE = 50
MAX_HOLIDAYS = 30
MAX_PROFILE_BYTES = 200

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

PagingStyle = Literal["doc", "th900"]

Credential = str | int
Frame = dict[str, Any]

_T = TypeVar("_T")

_DEVINFO_DEFAULTS: dict[str, Any] = {
    "deviceid": 1,
    "language": 0,
    "volume": 6,
    "screensaver": 0,
    "verifymode": 0,
    "sleep": 0,
    "userfpnum": 3,
    "loghint": 1000,
    "reverifytime": 0,
}

_DEVLOCK_DEFAULTS: dict[str, Any] = {
    "opendelay": 5,
    "doorsensor": 0,
    "alarmdelay": 0,
    "threat": 0,
    "InputAlarm": 0,
    "antpass": 0,
    "interlock": 0,
    "mutiopen": 0,
    "tryalarm": 0,
    "tamper": 0,
    "wgformat": 0,
    "wgoutput": 0,
    "cardoutput": 0,
    "dayzone": [],
    "weekzone": [],
    "lockgroup": [],
}

_USERLOCK_DEFAULTS: dict[str, Any] = {
    "weekzone": 1,
    "weekzone2": 1,
    "weekzone3": 1,
    "weekzone4": 1,
    "group": 0,
    "starttime": "2000-01-01 00:00:00",
    "endtime": "2099-12-31 23:59:59",
}

_QUESTIONNAIRE_DEFAULTS: dict[str, Any] = {
    "title": "",
    "voice": "",
    "errmsg": "",
    "radio": False,
    "optionflag": 0,
    "usequestion": False,
    "useschedule": False,
    "card": False,
    "items": [],
    "schedules": [],
}

#: Keys of the extended (AiFace, fw >= 5.09) C{setuserinfo} form kept verbatim on the user.
_EXTENDED_USER_FIELDS = (
    "verifymode",
    "shiftid",
    "zoneid",
    "groupid",
    "birthday",
    "starttime",
    "endtime",
    "department",
    "aliasid",
)

_TIME_RE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?(?:\.\d+)?)?"
    r"\s*(?:Z|[+-]\d{2}:?\d{2})?\s*$"
)


def parseDeviceTime(text: object) -> tuple[datetime, bool] | None:
    """
    Parse a protocol date or datetime, tolerantly.

    Accepts C{"YYYY-MM-DD HH:MM:SS"}, non-padded dates (C{"2018-11-1"}), a C{T} separator,
    fractional seconds (the vendor Flask demo's C{str(datetime.now())}) and a trailing zone, which
    is ignored: terminal time is wall-clock time.

    @param text: the value from the frame.
    @return: C{(datetime, hasTime)}, or C{None} when C{text} is not a date.
    """
    if not isinstance(text, str):
        return None
    match = _TIME_RE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = match.groups()
    try:
        value = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
        )
    except ValueError:
        return None
    return value, hour is not None


def _toInt(value: object) -> int | None:
    """
    Read an integer sent as a JSON number or as a decimal string (firmwares and servers do both).

    @return: the integer, or C{None} if C{value} is not one.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
    return None


def _toBool(value: object, default: bool) -> bool:
    """
    Read a boolean flag such as C{stn}, accepting C{true}/C{1}/C{"true"}.
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return default


def fakeTemplate(rng: random.Random, size: int = 300) -> str:
    """
    Generate a fingerprint template in the wire format of the THbio algorithm.

    The format is lowercase hex in which C{(N)} stands for a run of N zero bytes, as in the
    captured C{…fe46(200)9535…}.  The content is random, not a usable fingerprint.

    @param rng: the random source (seeded by the caller for determinism).
    @param size: roughly how many non-zero bytes to emit.
    @return: the template string (always shorter than the 1620 characters of C{thbio3.0}).
    """
    head = rng.randbytes(size // 2).hex()
    middle = rng.randbytes(size // 4).hex()
    tail = rng.randbytes(size // 4).hex()
    return f"c5{head}({rng.randint(60, 240)}){middle}({rng.randint(8, 80)}){tail}fe"


def _fakeRecord(rng: random.Random, backupnum: int) -> Credential:
    """
    Generate a credential record of the type a slot holds.
    """
    if backupnum == BACKUPNUM_PASSWORD:
        return rng.randint(1000, 99999999)
    if backupnum == BACKUPNUM_CARD:
        return rng.randint(100000, 4294967295)
    if backupnum in FINGERPRINT_SLOTS:
        return fakeTemplate(rng)
    # face, palm, photo: an opaque base64-looking string
    return rng.randbytes(96).hex()


@dataclass
class User:
    """
    One enrolled user.

    @ivar enrollid: the user id.
    @ivar name: the display name (UTF-8).
    @ivar admin: 0 user, 1 administrator, 2 super user.
    @ivar enabled: C{False} after C{enableuser enflag:0} (or C{setuserinfo enable:0}).
    @ivar credentials: C{backupnum} -> record: a C{str} for fingerprints, faces, palms and photos
        (stored verbatim), an C{int} for password (10) and card (11).
    @ivar extra: fields of the extended C{setuserinfo} form (C{verifymode}, C{shiftid}, ...).
    """

    enrollid: int
    name: str = ""
    admin: int = 0
    enabled: bool = True
    credentials: dict[int, Credential] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AccessAnswer:
    """
    What a terminal in server-approval mode did with the server's answer to a real-time punch
    (C{sendlog} of one record), a scanned QR code or a typed PIN.

    @ivar kind: C{sendlog}, C{sendqrcode} or C{sendpin}.
    @ivar subject: the enrollid punched, or the code / PIN.
    @ivar opened: the door opened (C{access} 1 or true in the reply).
    @ivar result: the reply's C{result}.
    """

    kind: str
    subject: Any
    time: str
    opened: bool
    result: bool
    message: str | None = None


@dataclass
class LogEntry:
    """
    One stored attendance/access log.

    @ivar index: the terminal's log index (monotonic, never reused).
    @ivar uploaded: set when a C{sendlog} batch containing it was acknowledged.
    @ivar new: set until the log is uploaded by C{sendlog} or read by C{getnewlog}.
    """

    index: int
    enrollid: int
    time: str
    mode: int
    inout: int
    event: int
    uploaded: bool = False
    new: bool = True

    def record(self) -> Frame:
        """
        @return: the record as it appears in C{sendlog}/C{getnewlog}/C{getalllog}.
        """
        return {
            "enrollid": self.enrollid,
            "time": self.time,
            "mode": self.mode,
            "inout": self.inout,
            "event": self.event,
        }


@dataclass
class _Cursor:
    """
    The state of one paged read (C{getuserlist}, C{getnewlog}, ...): a snapshot taken at
    C{stn:true} and the position of the next page.
    """

    items: list[Any]
    position: int = 0


@dataclass
class _PendingBatch:
    """
    The C{sendlog} batch in flight: kept until acknowledged, so a resend is identical.
    """

    logindex: int
    entries: list[LogEntry]


class SimulatedTerminal:
    """
    A TM20 terminal without the network.

    @ivar sn: serial number.
    @ivar users: C{enrollid} -> L{User}.
    @ivar logs: stored logs, oldest first.
    @ivar devinfo: the C{getdevinfo}/C{setdevinfo} settings (unknown keys set by the server are
        kept and returned).
    @ivar devlock: the C{setdevlock}/C{getdevlock} settings.
    @ivar userlocks: C{enrollid} -> access settings set by C{setuserlock}.
    @ivar profiles: C{enrollid} -> profile text (C{0} is the public notice).
    @ivar holidays: the v2.7 C{holidays} list.
    @ivar questionnaire: the questionnaire settings.
    @ivar clockOffset: seconds added to the injected clock to get terminal time.
    @ivar followCloudTime: whether a reply's C{cloudtime} sets the clock.
    @ivar deviceEnabled: C{False} between C{disabledevice} and C{enabledevice}.
    @ivar doorOpens: C{(time, [doors])} for each C{opendoor}.
    @ivar registered: whether the last C{reg} reply was positive.
    @ivar sendUsers: whether enrolments are pushed as C{senduser} (C{nosenduser} in the C{reg}
        reply turns it off).
    @ivar reboots: how many C{reboot} commands were received.
    @ivar commandsHandled: how many server commands were answered (or, for C{reboot}, obeyed).
    """

    def __init__(
        self,
        sn: str = "SIM000001",
        *,
        users: int = 0,
        logs: int = 0,
        seed: int = 0,
        clock: Callable[[], float] = _time.time,
        tz: tzinfo | None = None,
        modelname: str = "tfs30",
        firmware: str = "TH900_click V5.0",
        fpalgo: str = "thbio3.0",
        cpusn: str | None = None,
        mac: str | None = None,
        pagingStyle: PagingStyle = "doc",
        pageSize: int | None = None,
        countIsTotal: bool | None = None,
        exclusiveTo: bool | None = None,
        usersize: int = 3000,
        logsize: int = 100000,
        doors: int = 1,
        extraDevinfo: Mapping[str, Any] | None = None,
        clockOffset: float = 0.0,
        followCloudTime: bool = True,
        serverApproval: bool = False,
    ) -> None:
        """
        @param sn: serial number, sent in every frame.
        @param users: how many users to generate (enrollids 1..N).  Every user has a fingerprint
            in slot 0; every third user also has a card (11), every fifth a password (10); user 1
            is an administrator.
        @param logs: how many stored, not yet uploaded logs to generate, one every 1-10 minutes
            up to the terminal's current time, for random generated users.
        @param seed: seed of the random source, for deterministic users, templates and logs.
        @param clock: returns the current POSIX time (injected; C{time.time} by default).
        @param tz: time zone of the terminal's wall clock (C{None}: the process's local zone).
        @param modelname: C{devinfo.modelname}.
        @param firmware: C{devinfo.firmware}.
        @param fpalgo: C{devinfo.fpalgo}.
        @param cpusn: C{cpusn} of the C{reg} frame; omitted when C{None}, like the TH900.
        @param mac: C{devinfo.mac}; derived from the seed when C{None}.
        @param pagingStyle: C{"doc"} or C{"th900"}, see the module docstring.
        @param pageSize: records per page of every paged read (C{None}: 40 users, 50 logs).
        @param countIsTotal: C{count} is the total (C{True}) or the page's size (C{False}) in
            every paged read; C{None}: as C{pagingStyle} says.
        @param exclusiveTo: C{to} is C{from + n} (C{True}) or C{from + n - 1} (C{False});
            C{None}: as C{pagingStyle} says.
        @param usersize: user capacity (also C{fpsize}, C{cardsize}, C{pwdsize}).
        @param logsize: log capacity (raised to C{logs} if smaller).
        @param doors: number of doors (1 for a time clock, 4 for a 4-door controller).
        @param extraDevinfo: additional C{devinfo} fields for the C{reg} frame (AiFace extensions).
        @param clockOffset: seconds the terminal's clock starts off the injected clock (600: ten
            minutes ahead).
        @param followCloudTime: set the clock from the C{cloudtime} of C{reg}/C{sendlog}/
            C{senduser} replies (the documented behaviour); C{False} plays a firmware that only
            obeys C{settime}, so a wrong clock stays wrong until the server sets it.
        @param serverApproval: the "server approval" menu setting (also C{setdevinfo
            server_verify}): a real-time punch, a QR code or a PIN opens the door only if the
            server's reply says C{access} 1 (L{accessAnswers}).
        """
        if pagingStyle not in ("doc", "th900"):
            raise ValueError(f"unknown paging style {pagingStyle!r}")
        self.sn = sn
        self.modelname = modelname
        self.firmware = firmware
        self.fpalgo = fpalgo
        self.cpusn = cpusn
        self.pagingStyle: PagingStyle = pagingStyle
        if pageSize is not None and pageSize < 1:
            raise ValueError("pageSize must be at least 1")
        self.pageSize = pageSize
        self.countIsTotal = countIsTotal
        self.exclusiveTo = exclusiveTo
        self.usersize = usersize
        self.logsize = max(logsize, logs)
        self.doors = doors
        self.extraDevinfo: dict[str, Any] = dict(extraDevinfo or {})
        self._clock = clock
        self._tz = tz
        self._rng = random.Random(seed)
        self.mac = (
            mac
            if mac is not None
            else "00-01-" + "-".join(f"{b:02X}" for b in self._rng.randbytes(4))
        )

        self.users: dict[int, User] = {}
        self.logs: list[LogEntry] = []
        self.devinfo: dict[str, Any] = dict(_DEVINFO_DEFAULTS)
        if serverApproval:
            self.devinfo["server_verify"] = 1
        #: the doors' answers in server-approval mode, oldest first
        self.accessAnswers: list[AccessAnswer] = []
        self._asked: dict[str, str] = {}
        self.devlock: dict[str, Any] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in _DEVLOCK_DEFAULTS.items()
        }
        self.userlocks: dict[int, dict[str, Any]] = {}
        self.profiles: dict[int, str] = {}
        self.holidays: list[dict[str, Any]] = []
        self.questionnaire: dict[str, Any] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in _QUESTIONNAIRE_DEFAULTS.items()
        }
        self.clockOffset = clockOffset
        self.followCloudTime = followCloudTime
        self.deviceEnabled = True
        self.doorOpens: list[tuple[str, list[int]]] = []
        self.registered = False
        self.sendUsers = True
        self.reboots = 0
        self.commandsHandled = 0

        self._nextLogIndex = 0
        # every log before this position in self.logs is uploaded
        self._uploadCursor = 0
        self._pendingBatch: _PendingBatch | None = None
        self._sendUserQueue: deque[Frame] = deque()
        self._cursors: dict[str, _Cursor] = {}

        self._generateUsers(users)
        self._generateLogs(logs)

    # -- time ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        """
        @return: the terminal's wall-clock time (naive), i.e. the injected clock plus the offset
            set by C{settime} or a C{cloudtime}.
        """
        return datetime.fromtimestamp(self._clock() + self.clockOffset, self._tz).replace(
            tzinfo=None
        )

    def timeString(self) -> str:
        """
        @return: L{now} formatted as the protocol's C{"YYYY-MM-DD HH:MM:SS"}.
        """
        return self.now().strftime(TIME_FORMAT)

    def setClock(self, wallClock: datetime) -> None:
        """
        Set the terminal clock so that L{now} returns C{wallClock} at this instant.

        @param wallClock: naive wall-clock time in the terminal's zone.
        """
        if self._tz is None:
            target = wallClock.timestamp()
        else:
            target = wallClock.replace(tzinfo=self._tz).timestamp()
        self.clockOffset = target - self._clock()

    # -- generation ---------------------------------------------------------------------------

    def _generateUsers(self, count: int) -> None:
        for enrollid in range(1, count + 1):
            user = User(enrollid=enrollid, name=f"User {enrollid}", admin=1 if enrollid == 1 else 0)
            user.credentials[0] = fakeTemplate(self._rng)
            if enrollid % 3 == 0:
                user.credentials[BACKUPNUM_CARD] = _fakeRecord(self._rng, BACKUPNUM_CARD)
            if enrollid % 5 == 0:
                user.credentials[BACKUPNUM_PASSWORD] = _fakeRecord(self._rng, BACKUPNUM_PASSWORD)
            self.users[enrollid] = user

    def _generateLogs(self, count: int) -> None:
        if count <= 0:
            return
        steps = [self._rng.randint(60, 600) for _ in range(count)]
        moment = self.now().replace(microsecond=0) - timedelta(seconds=sum(steps))
        userIds = sorted(self.users) or list(range(1, 101))
        for step in steps:
            moment += timedelta(seconds=step)
            self._appendLog(
                enrollid=self._rng.choice(userIds),
                time=moment.strftime(TIME_FORMAT),
                mode=self._rng.choice((1, 1, 1, 2, 3)),
                inout=self._rng.choice((0, 1)),
                event=0,
            )

    def _appendLog(self, enrollid: int, time: str, mode: int, inout: int, event: int) -> LogEntry:
        entry = LogEntry(
            index=self._nextLogIndex,
            enrollid=enrollid,
            time=time,
            mode=mode,
            inout=inout,
            event=event,
        )
        self._nextLogIndex += 1
        self.logs.append(entry)
        return entry

    # -- counters -----------------------------------------------------------------------------

    def markUploaded(self) -> int:
        """
        Mark every stored log uploaded, as if a server had acknowledged them all (a server that
        has since lost them, for instance).

        @return: how many logs were newly marked.
        """
        marked = 0
        for entry in self.logs:
            if not entry.uploaded:
                entry.uploaded = True
                entry.new = False
                marked += 1
        self._pendingBatch = None
        self._uploadCursor = len(self.logs)
        return marked

    def pendingLogCount(self) -> int:
        """
        @return: how many stored logs have not been acknowledged by a C{sendlog} reply.
        """
        return len(self.logs) - self._uploadCursor

    def newLogCount(self) -> int:
        """
        @return: how many logs are still flagged new (not uploaded and not read by C{getnewlog}).
        """
        return sum(1 for entry in self.logs if entry.new)

    def _credentialCount(self, slots: frozenset[int]) -> int:
        return sum(1 for u in self.users.values() for b in u.credentials if b in slots)

    def registerFrame(self) -> Frame:
        """
        @return: the C{reg} frame with the full C{devinfo} of protocol section 5.1, its counters
            reflecting the current content.
        """
        devinfo: Frame = {
            "modelname": self.modelname,
            "usersize": self.usersize,
            "fpsize": self.usersize,
            "cardsize": self.usersize,
            "pwdsize": self.usersize,
            "logsize": self.logsize,
            "useduser": len(self.users),
            "usedfp": self._credentialCount(FINGERPRINT_SLOTS),
            "usedcard": self._credentialCount(frozenset({BACKUPNUM_CARD})),
            "usedpwd": self._credentialCount(frozenset({BACKUPNUM_PASSWORD})),
            "usedlog": len(self.logs),
            "usednewlog": self.pendingLogCount(),
            "fpalgo": self.fpalgo,
            "firmware": self.firmware,
            "time": self.timeString(),
            "mac": self.mac,
        }
        devinfo.update(self.extraDevinfo)
        frame: Frame = {"cmd": "reg", "sn": self.sn}
        if self.cpusn is not None:
            frame["cpusn"] = self.cpusn
        frame["devinfo"] = devinfo
        return frame

    # -- logs pushed by the terminal ----------------------------------------------------------

    def punch(
        self,
        enrollid: int,
        time: str | None = None,
        mode: int = 1,
        inout: int = 0,
        event: int = 0,
    ) -> LogEntry | None:
        """
        Record a new log, as when someone verifies on the terminal.

        @param enrollid: the user (0 for a door event).
        @param time: C{"YYYY-MM-DD HH:MM:SS"}; the terminal's current time when C{None}.
        @param mode: verification mode (raw firmware code; 1 = fingerprint on the TH900).
        @param inout: 0 in, 1 out.
        @param event: event code.
        @return: the new log, or C{None} when the device is disabled (C{disabledevice}).
        """
        if not self.deviceEnabled:
            return None
        return self._appendLog(
            enrollid=enrollid,
            time=time if time is not None else self.timeString(),
            mode=mode,
            inout=inout,
            event=event,
        )

    def nextLogBatch(self, maxRecords: int = 10) -> Frame | None:
        """
        The next C{sendlog} frame to push.

        While a batch is unacknowledged the same batch (same C{logindex}, same records) is
        returned again, so resends are identical and nothing is skipped.

        @param maxRecords: the largest number of records in a new batch.
        @return: the C{sendlog} frame, or C{None} when every log has been acknowledged.
        """
        if self._pendingBatch is None:
            entries = self.logs[self._uploadCursor : self._uploadCursor + max(1, maxRecords)]
            if not entries:
                return None
            self._pendingBatch = _PendingBatch(logindex=entries[0].index, entries=entries)
        batch = self._pendingBatch
        return {
            "cmd": "sendlog",
            "sn": self.sn,
            "count": len(batch.entries),
            "logindex": batch.logindex,
            "record": [entry.record() for entry in batch.entries],
        }

    @property
    def serverApproval(self) -> bool:
        """The server decides at the door (C{server_verify} set)."""
        return _toBool(self.devinfo.get("server_verify"), False)

    def scanQrCode(self, code: str) -> Frame:
        """A QR code shown to the reader: the C{sendqrcode} frame to send."""
        self._asked["sendqrcode"] = code
        return {"cmd": "sendqrcode", "sn": self.sn, "record": code}

    def enterPin(self, pin: str) -> Frame:
        """A PIN typed on the keypad (AiFace): the C{sendpin} frame to send."""
        self._asked["sendpin"] = pin
        return {"cmd": "sendpin", "sn": self.sn, "pin": pin, "time": self.timeString()}

    def _answered(self, kind: str, subject: Any, reply: Mapping[str, Any]) -> None:
        """Open the door or not, as the server said (whatever C{result} says, C{access} rules)."""
        message = reply.get("message")
        self.accessAnswers.append(
            AccessAnswer(
                kind=kind,
                subject=subject,
                time=self.timeString(),
                opened=_toBool(reply.get("access"), False),
                result=_toBool(reply.get("result"), False),
                message=message if isinstance(message, str) else None,
            )
        )

    def pendingBatchIndex(self) -> int | None:
        """
        @return: the C{logindex} of the batch awaiting its ack, or C{None}.
        """
        return None if self._pendingBatch is None else self._pendingBatch.logindex

    def ackLogs(self, reply: Mapping[str, Any]) -> int:
        """
        Apply a C{sendlog} reply.

        C{result:true} marks the pending batch uploaded, unless the reply echoes a C{logindex}
        that is not the pending batch's (a stale ack, ignored).  C{result:false} leaves the batch
        pending for a resend.

        @param reply: the C{{"ret":"sendlog",...}} frame.
        @return: how many logs were marked uploaded.
        """
        batch = self._pendingBatch
        if batch is not None and self.serverApproval and len(batch.entries) == 1:
            self._answered("sendlog", batch.entries[0].enrollid, reply)
        if batch is None or not _toBool(reply.get("result"), False):
            return 0
        if "logindex" in reply and _toInt(reply.get("logindex")) != batch.logindex:
            return 0
        for entry in batch.entries:
            entry.uploaded = True
            entry.new = False
        self._pendingBatch = None
        while self._uploadCursor < len(self.logs) and self.logs[self._uploadCursor].uploaded:
            self._uploadCursor += 1
        self._applyCloudTime(reply)
        return len(batch.entries)

    # -- users pushed by the terminal ---------------------------------------------------------

    def enrollUser(
        self,
        enrollid: int,
        name: str = "",
        backupnum: int = 0,
        record: Credential | None = None,
        admin: int = 0,
    ) -> Frame:
        """
        Enrol a credential on the keypad: store it and queue a C{senduser} frame (unless the
        server said C{nosenduser:true}).

        @param record: the credential; generated when C{None}.
        @return: the C{senduser} frame.
        """
        if backupnum not in STORABLE_SLOTS:
            raise ValueError(f"backupnum {backupnum} cannot hold a credential")
        user = self.users.get(enrollid)
        if user is None:
            user = self.users[enrollid] = User(enrollid=enrollid)
        if name:
            user.name = name
        user.admin = admin
        value: Credential = record if record is not None else _fakeRecord(self._rng, backupnum)
        user.credentials[backupnum] = value
        frame: Frame = {
            "cmd": "senduser",
            "sn": self.sn,
            "enrollid": enrollid,
            "name": user.name,
            "backupnum": backupnum,
            "admin": user.admin,
            "record": value,
        }
        if self.sendUsers:
            self._sendUserQueue.append(frame)
        return frame

    def nextSendUser(self) -> Frame | None:
        """
        @return: the C{senduser} frame awaiting its ack (the same one until acknowledged), or
            C{None}.
        """
        if not self.sendUsers or not self._sendUserQueue:
            return None
        return self._sendUserQueue[0]

    def ackUser(self, reply: Mapping[str, Any]) -> bool:
        """
        Apply a C{senduser} reply: C{result:true} removes the head of the queue.

        @return: whether a queued frame was acknowledged.
        """
        if not self._sendUserQueue or not _toBool(reply.get("result"), False):
            return False
        head = self._sendUserQueue[0]
        if "enrollid" in reply and _toInt(reply.get("enrollid")) != head["enrollid"]:
            return False
        self._sendUserQueue.popleft()
        self._applyCloudTime(reply)
        return True

    # -- replies to the terminal's own commands -----------------------------------------------

    def _applyCloudTime(self, reply: Mapping[str, Any]) -> None:
        if not self.followCloudTime:
            return
        parsed = parseDeviceTime(reply.get("cloudtime"))
        if parsed is not None and parsed[1]:
            self.setClock(parsed[0])

    def handleReply(self, reply: Mapping[str, Any]) -> bool:
        """
        Apply the server's reply to one of the terminal's commands.

          - C{reg}: C{result:true} marks the terminal registered, sets the clock from
            C{cloudtime} and C{sendUsers} from C{nosenduser};
          - C{sendlog}: see L{ackLogs};
          - C{senduser}: see L{ackUser}.

        @param reply: a frame with a C{ret} key.
        @return: whether the reply was accepted (a positive, matching ack).
        """
        ret = str(reply.get("ret", "")).strip()
        if ret == "reg":
            self.registered = _toBool(reply.get("result"), False)
            if self.registered:
                self._applyCloudTime(reply)
                if "nosenduser" in reply:
                    self.sendUsers = not _toBool(reply.get("nosenduser"), False)
            return self.registered
        if ret == "sendlog":
            return self.ackLogs(reply) > 0
        if ret == "senduser":
            return self.ackUser(reply)
        if ret in ("sendqrcode", "sendpin"):
            if self.serverApproval:
                self._answered(ret, self._asked.get(ret), reply)
            return _toBool(reply.get("result"), False)
        return False

    # -- server commands ----------------------------------------------------------------------

    def handleCommand(self, command: Mapping[str, Any]) -> Frame | None:
        """
        Answer one server command.

        Keys and the command name are trimmed (the vendor document has C{"enrollid "}).  An
        unknown command, or one with a bad parameter, is answered
        C{{"ret":X,"sn":…,"result":false,"reason":1}}.

        @param command: a frame with a C{cmd} key.
        @return: the reply, or C{None} for C{reboot} (the device reboots without replying; the
            caller drops the connection).
        """
        cmd = {str(k).strip(): v for k, v in command.items()}
        name = str(cmd.get("cmd", "")).strip()
        self.commandsHandled += 1
        handler = getattr(self, f"_cmd_{name}", None) if name.isidentifier() else None
        if handler is None:
            return self._fail(name)
        reply: Frame | None = handler(name, cmd)
        return reply

    def _ok(self, ret: str, /, **fields: Any) -> Frame:
        reply: Frame = {"ret": ret, "sn": self.sn, "result": True}
        reply.update(fields)
        return reply

    def _fail(self, ret: str, /, reason: int = 1) -> Frame:
        return {"ret": ret, "sn": self.sn, "result": False, "reason": reason}

    def _paging(self, total: int, start: int, n: int, countIsTotal: bool) -> Frame:
        if n == 0:
            return {"count": 0, "from": 0, "to": 0}
        th900 = self.pagingStyle == "th900"
        if self.countIsTotal is not None:
            countIsTotal = self.countIsTotal
        elif th900:
            countIsTotal = True
        exclusive = th900 if self.exclusiveTo is None else self.exclusiveTo
        return {
            "count": total if countIsTotal else n,
            "from": start,
            "to": start + n if exclusive else start + n - 1,
        }

    def _page(
        self, name: str, cmd: Mapping[str, Any], build: Callable[[], list[_T]], size: int
    ) -> tuple[list[_T], int, int]:
        """
        Return the next page of a paged read: a new snapshot on C{stn:true} (or when no read is
        in progress), the continuation on C{stn:false}.

        @return: C{(items of the page, index of the first, total)}.
        """
        cursor = self._cursors.get(name)
        if cursor is None or _toBool(cmd.get("stn"), True):
            cursor = self._cursors[name] = _Cursor(items=build())
        start = cursor.position
        chunk: list[_T] = cursor.items[start : start + size]
        cursor.position += len(chunk)
        return chunk, start, len(cursor.items)

    def _forgetCursors(self, *names: str) -> None:
        for name in names:
            self._cursors.pop(name, None)

    def _user(self, cmd: Mapping[str, Any]) -> User | None:
        enrollid = _toInt(cmd.get("enrollid"))
        return None if enrollid is None else self.users.get(enrollid)

    # users

    def _cmd_getuserlist(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        def build() -> list[Frame]:
            return [
                {"enrollid": user.enrollid, "admin": user.admin, "backupnum": backupnum}
                for user in sorted(self.users.values(), key=lambda u: u.enrollid)
                for backupnum in sorted(user.credentials)
            ]

        chunk, start, total = self._page(name, cmd, build, self.pageSize or USER_PAGE_SIZE)
        return self._ok(name, **self._paging(total, start, len(chunk), False), record=chunk)

    def _cmd_getuserinfo(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        user = self._user(cmd)
        backupnum = _toInt(cmd.get("backupnum", 0))
        if user is None or backupnum is None or backupnum not in user.credentials:
            return self._fail(name)
        return self._ok(
            name,
            enrollid=user.enrollid,
            name=user.name,
            backupnum=backupnum,
            admin=user.admin,
            record=user.credentials[backupnum],
        )

    def _cmd_setuserinfo(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        enrollid = _toInt(cmd.get("enrollid"))
        if enrollid is None or enrollid < 0:
            return self._fail(name)
        updates: dict[int, Credential] = {}
        backupnum = _toInt(cmd.get("backupnum")) if "backupnum" in cmd else None
        if "backupnum" in cmd and backupnum is None:
            return self._fail(name)
        if backupnum is not None and "record" in cmd:
            record = cmd["record"]
            if backupnum == 0 and record in ("0", 0):
                pass  # TopData: a user without biometrics
            elif backupnum in NUMERIC_SLOTS:
                number = _toInt(record)
                if number is None:
                    return self._fail(name)
                updates[backupnum] = number
            elif backupnum in STORABLE_SLOTS and isinstance(record, str) and record:
                updates[backupnum] = record
            else:
                return self._fail(name)
        elif backupnum is not None and backupnum not in STORABLE_SLOTS:
            return self._fail(name)
        for key, slot in (("pwd", BACKUPNUM_PASSWORD), ("card", BACKUPNUM_CARD)):
            if key in cmd:
                number = _toInt(cmd[key])
                if number is None:
                    return self._fail(name)
                if number:
                    updates[slot] = number
        admin = _toInt(cmd["admin"]) if "admin" in cmd else None
        if "admin" in cmd and (admin is None or admin not in (0, 1, 2)):
            return self._fail(name)
        user = self.users.get(enrollid)
        if user is None:
            if len(self.users) >= self.usersize:
                return self._fail(name)
            user = self.users[enrollid] = User(enrollid=enrollid)
            self._forgetCursors("getuserlist", "getallusers")
        if "name" in cmd and cmd["name"] is not None:
            user.name = str(cmd["name"])
        if admin is not None:
            user.admin = admin
        if "enable" in cmd:
            user.enabled = _toBool(cmd["enable"], True)
        for key in _EXTENDED_USER_FIELDS:
            if key in cmd:
                user.extra[key] = cmd[key]
        user.credentials.update(updates)
        return self._ok(name)

    def _cmd_deleteuser(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        user = self._user(cmd)
        backupnum = _toInt(cmd.get("backupnum"))
        if user is None or backupnum is None:
            return self._fail(name)
        if backupnum == BACKUPNUM_EVERYTHING:
            del self.users[user.enrollid]
            self.userlocks.pop(user.enrollid, None)
            self.profiles.pop(user.enrollid, None)
        elif backupnum == BACKUPNUM_ALL_FINGERPRINTS:
            for slot in [b for b in user.credentials if b in FINGERPRINT_SLOTS]:
                del user.credentials[slot]
        elif backupnum in user.credentials:
            del user.credentials[backupnum]
        else:
            return self._fail(name)
        return self._ok(name)

    def _cmd_getusername(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        user = self._user(cmd)
        if user is None:
            return self._fail(name)
        return self._ok(name, record=user.name)

    def _cmd_setusername(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        records = cmd.get("record")
        if not isinstance(records, list) or len(records) > MAX_NAMES_PER_PACKAGE:
            return self._fail(name)
        parsed: list[tuple[int, str]] = []
        for item in records:
            if not isinstance(item, dict):
                return self._fail(name)
            enrollid = _toInt(item.get("enrollid"))
            if enrollid is None or not isinstance(item.get("name"), str):
                return self._fail(name)
            parsed.append((enrollid, item["name"]))
        for enrollid, userName in parsed:
            user = self.users.setdefault(enrollid, User(enrollid=enrollid))
            user.name = userName
        return self._ok(name)

    def _cmd_enableuser(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        user = self._user(cmd)
        flag = _toInt(cmd.get("enflag"))
        if user is None or flag not in (0, 1):
            return self._fail(name)
        user.enabled = flag == 1
        return self._ok(name)

    def _cmd_cleanuser(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        self.users.clear()
        self.userlocks.clear()
        self.profiles = {k: v for k, v in self.profiles.items() if k == 0}
        self._forgetCursors("getuserlist", "getallusers")
        return self._ok(name)

    def _cmd_setuserprofile(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        enrollid = _toInt(cmd.get("enrollid"))
        profile = cmd.get("profile")
        if (
            enrollid is None
            or not isinstance(profile, str)
            or len(profile.encode("utf-8")) > MAX_PROFILE_BYTES
            or (enrollid != 0 and enrollid not in self.users)
        ):
            return self._fail(name)
        self.profiles[enrollid] = profile
        return self._ok(name, enrollid=enrollid)

    def _cmd_getuserprofile(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        enrollid = _toInt(cmd.get("enrollid"))
        if enrollid is None or (enrollid != 0 and enrollid not in self.users):
            return self._fail(name)
        return self._ok(name, enrollid=enrollid, record=self.profiles.get(enrollid, ""))

    def _cmd_adduser(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        enrollid = _toInt(cmd.get("enrollid"))
        backupnum = _toInt(cmd.get("backupnum", 0))
        admin = _toInt(cmd.get("admin", 0))
        if (
            enrollid is None
            or backupnum is None
            or backupnum not in STORABLE_SLOTS
            or admin not in (0, 1, 2)
        ):
            return self._fail(name)
        userName = cmd.get("name")
        self.enrollUser(
            enrollid,
            name=userName if isinstance(userName, str) else "",
            backupnum=backupnum,
            admin=admin,
        )
        self._forgetCursors("getuserlist", "getallusers")
        return self._ok(name, enrollid=enrollid, backupnum=backupnum)

    def _cmd_getallusers(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        def build() -> list[tuple[User, int]]:
            return [
                (user, backupnum)
                for user in sorted(self.users.values(), key=lambda u: u.enrollid)
                for backupnum in sorted(user.credentials)
            ]

        chunk, start, total = self._page(name, cmd, build, 1)
        if not chunk:
            return self._ok(name, count=0, index=0)
        user, backupnum = chunk[0]
        return self._ok(
            name,
            count=total,
            index=start,
            enrollid=user.enrollid,
            name=user.name,
            backupnum=backupnum,
            admin=user.admin,
            record=user.credentials.get(backupnum, ""),
        )

    def _cmd_disabledevice(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        self.deviceEnabled = False
        return self._ok(name)

    def _cmd_enabledevice(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        self.deviceEnabled = True
        return self._ok(name)

    # logs

    def _logPage(
        self, name: str, cmd: Mapping[str, Any], build: Callable[[], list[LogEntry]]
    ) -> Frame:
        chunk, start, total = self._page(name, cmd, build, self.pageSize or LOG_PAGE_SIZE)
        if name == "getnewlog":
            for entry in chunk:
                entry.new = False
        return self._ok(
            name,
            **self._paging(total, start, len(chunk), True),
            record=[entry.record() for entry in chunk],
        )

    def _cmd_getnewlog(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        return self._logPage(name, cmd, lambda: [e for e in self.logs if e.new])

    def _cmd_getalllog(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        bounds: list[str | None] = []
        for key, endOfDay in (("from", False), ("to", True)):
            value = cmd.get(key)
            if value in (None, ""):
                bounds.append(None)
                continue
            parsed = parseDeviceTime(value)
            if parsed is None:
                return self._fail(name)
            moment, hasTime = parsed
            if endOfDay and not hasTime:
                moment = moment.replace(hour=23, minute=59, second=59)
            bounds.append(moment.strftime(TIME_FORMAT))
        low, high = bounds

        def build() -> list[LogEntry]:
            return [
                e
                for e in self.logs
                if (low is None or e.time >= low) and (high is None or e.time <= high)
            ]

        return self._logPage(name, cmd, build)

    def _cmd_cleanlog(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        self._clearLogs()
        return self._ok(name)

    def _clearLogs(self) -> None:
        self.logs.clear()
        self._uploadCursor = 0
        self._pendingBatch = None
        self._forgetCursors("getnewlog", "getalllog")

    # system

    def _cmd_initsys(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        self._cmd_cleanuser("cleanuser", {})
        self._clearLogs()
        self._sendUserQueue.clear()
        return self._ok(name)

    def _cmd_reboot(self, name: str, cmd: Mapping[str, Any]) -> None:
        self.reboots += 1
        self.registered = False
        self._cursors.clear()
        return None

    def _cmd_cleanadmin(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        for user in self.users.values():
            user.admin = 0
        return self._ok(name)

    def _cmd_settime(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        parsed = parseDeviceTime(cmd.get("cloudtime"))
        if parsed is None or not parsed[1]:
            return self._fail(name)
        self.setClock(parsed[0])
        return self._ok(name)

    def _cmd_gettime(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        return {"ret": name, "sn": self.sn, "time": self.timeString()}

    def _cmd_setdevinfo(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        for key, value in cmd.items():
            if key not in ("cmd", "sn"):
                self.devinfo[key] = value
        return self._ok(name)

    def _cmd_getdevinfo(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        return self._ok(name, **self.devinfo)

    # access control

    def _cmd_opendoor(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        if cmd.get("doornum") is None:
            doors = list(range(1, self.doors + 1))
        else:
            doornum = _toInt(cmd.get("doornum"))
            if doornum is None or not 1 <= doornum <= self.doors:
                return self._fail(name)
            doors = [doornum]
        self.doorOpens.append((self.timeString(), doors))
        return self._ok(name)

    def _cmd_setdevlock(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        for key, value in cmd.items():
            if key not in ("cmd", "sn"):
                self.devlock[key] = value
        return self._ok(name)

    def _cmd_getdevlock(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        return self._ok(name, **self.devlock)

    def _cmd_getuserlock(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        user = self._user(cmd)
        if user is None:
            return self._fail(name)
        lock = dict(_USERLOCK_DEFAULTS)
        lock.update(self.userlocks.get(user.enrollid, {}))
        return self._ok(name, enrollid=user.enrollid, **lock)

    def _cmd_setuserlock(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        records = cmd.get("record")
        if not isinstance(records, list) or len(records) > MAX_LOCKS_PER_PACKAGE:
            return self._fail(name)
        parsed: list[tuple[int, dict[str, Any]]] = []
        for item in records:
            enrollid = _toInt(item.get("enrollid")) if isinstance(item, dict) else None
            if enrollid is None or not isinstance(item, dict):
                return self._fail(name)
            parsed.append((enrollid, {k: v for k, v in item.items() if k in _USERLOCK_DEFAULTS}))
        for enrollid, fields in parsed:
            self.userlocks.setdefault(enrollid, {}).update(fields)
        return self._ok(name)

    def _cmd_deleteuserlock(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        enrollid = _toInt(cmd.get("enrollid"))
        if enrollid is None:
            return self._fail(name)
        self.userlocks.pop(enrollid, None)
        return self._ok(name)

    def _cmd_cleanuserlock(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        self.userlocks.clear()
        return self._ok(name)

    # questionnaire and holidays

    def _cmd_getquestionnaire(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        return self._ok(name, **self.questionnaire)

    def _cmd_setquestionnaire(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        items = cmd.get("items", self.questionnaire["items"])
        schedules = cmd.get("schedules", self.questionnaire["schedules"])
        if (
            not isinstance(items, list)
            or len(items) > 16
            or not isinstance(schedules, list)
            or len(schedules) > 8
        ):
            return self._fail(name)
        for key in _QUESTIONNAIRE_DEFAULTS:
            if key in cmd:
                self.questionnaire[key] = cmd[key]
        return self._ok(name)

    def _cmd_getholiday(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        return self._ok(name, holidays=[dict(h) for h in self.holidays])

    def _cmd_setholiday(self, name: str, cmd: Mapping[str, Any]) -> Frame:
        holidays = cmd.get("holidays")
        if (
            not isinstance(holidays, list)
            or len(holidays) > MAX_HOLIDAYS
            or not all(isinstance(h, dict) for h in holidays)
        ):
            return self._fail(name)
        self.holidays = [dict(h) for h in holidays]
        return self._ok(name)


def knownCommands() -> Sequence[str]:
    """
    @return: the names of the server commands L{SimulatedTerminal.handleCommand} implements.
    """
    return sorted(n[len("_cmd_") :] for n in vars(SimulatedTerminal) if n.startswith("_cmd_"))
