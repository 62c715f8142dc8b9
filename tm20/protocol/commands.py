"""
Server-to-terminal commands (protocol notes, section 6): one L{CommandSpec} per command, with the
validation of its parameters, in the registry L{COMMANDS}.

L{buildCommand} turns a command name and operator-supplied parameters (e.g. from the REST API) into
the JSON-ready dict sent to the terminal, or raises L{ProtocolError} naming the offending field.
Unknown parameters are refused, so that a typo never silently turns into a different command (an
C{opendoor} whose C{doornum} was misspelled opens every door).

Credential numbers (password, card) keep the JSON type they are given: an C{int}, or a string of
digits (as some firmwares report them), so that a credential read from one terminal is written to
another one unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from tm20.protocol.messages import ProtocolError
from tm20.protocol.parser import stripDataPrefix
from tm20.protocol.timefmt import normaliseDate, normaliseMonthDay, normaliseTime, parseDate

__all__ = [
    "BACKUPNUMS_DELETE",
    "BACKUPNUMS_SET",
    "COMMANDS",
    "CommandSpec",
    "MAX_ENROLLID",
    "buildCommand",
    "commandWarnings",
    "pageRequest",
]

#: The largest C{enrollid} (12 digits, TopData).
MAX_ENROLLID = 999_999_999_999
#: Credential slots that can be written: fingerprints, password, card, faces, palms, photo.
BACKUPNUMS_SET = frozenset([*range(10), 10, 11, *range(20, 28), *range(30, 38), 50])
#: Slots C{deleteuser} accepts: those plus 12 (all fingerprints) and 13 (everything).
BACKUPNUMS_DELETE = BACKUPNUMS_SET | {12, 13}
_PASSWORD_SLOT = 10
_CARD_SLOT = 11
_MAX_CARD = 2**63

_SECTION_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)~([01]\d|2[0-3]):([0-5]\d)", re.ASCII)
_SCHEDULE_RE = re.compile(
    r"([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)\*\d{1,3}", re.ASCII
)
_DIGITS_RE = re.compile(r"\d+", re.ASCII)


class _InvalidError(Exception):
    """A parameter is wrong; turned into a L{ProtocolError} carrying the command name."""

    def __init__(self, problem: str, field: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.field = field


#: Validates one value: C{(value, fieldPath) -> cleaned value}, raising L{_InvalidError}.
Checker = Callable[[Any, str], Any]


def _typeName(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        dict: "an object",
        list: "an array",
    }.get(type(value), type(value).__name__)


# --- checkers ----------------------------------------------------------------------------------


def _integer(low: int, high: int) -> Checker:
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _InvalidError(f"must be an integer, got {_typeName(value)}", field)
        if not low <= value <= high:
            raise _InvalidError(f"must be between {low} and {high}", field)
        return value

    return check


def _oneOf(values: Iterable[int], label: str) -> Checker:
    allowed = frozenset(values)

    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _InvalidError(f"must be an integer, got {_typeName(value)}", field)
        if value not in allowed:
            raise _InvalidError(f"must be {label}", field)
        return value

    return check


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _InvalidError(f"must be a boolean, got {_typeName(value)}", field)
    return value


def _boolOrFlag(value: Any, field: str) -> bool | int:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return value
    raise _InvalidError("must be a boolean or 0/1", field)


def _text(maxBytes: int | None = None, *, nonEmpty: bool = False) -> Checker:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise _InvalidError(f"must be a string, got {_typeName(value)}", field)
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise _InvalidError("must be valid text", field) from None
        if nonEmpty and not value:
            raise _InvalidError("must not be empty", field)
        if maxBytes is not None and size > maxBytes:
            raise _InvalidError(f"must be at most {maxBytes} bytes of UTF-8", field)
        return value

    return check


def _textOrInt(value: Any, field: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _InvalidError(f"must be a string or an integer, got {_typeName(value)}", field)
    if isinstance(value, str):
        _text()(value, field)
    return value


def _fromValueError(convert: Callable[[str], str], what: str) -> Checker:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise _InvalidError(f"must be a {what} string, got {_typeName(value)}", field)
        try:
            return convert(value)
        except ValueError:
            raise _InvalidError(f"must be a valid {what}", field) from None

    return check


_TIME = _fromValueError(normaliseTime, "YYYY-MM-DD HH:MM:SS date-time")
_DATE = _fromValueError(normaliseDate, "YYYY-MM-DD date")
_MONTH_DAY = _fromValueError(normaliseMonthDay, "MM-DD day")


def _pattern(regex: re.Pattern[str], what: str) -> Checker:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise _InvalidError(f"must be {what}", field)
        return value

    return check


def _password(value: Any, field: str) -> str | int:
    """A password: up to 8 digits, as an int or a string of digits (type kept)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _InvalidError(
            f"must be an integer or a string of digits, got {_typeName(value)}", field
        )
    digits = str(value) if isinstance(value, int) else value
    if not _DIGITS_RE.fullmatch(digits) or len(digits) > 8:
        raise _InvalidError("must be at most 8 digits", field)
    return value


def _card(value: Any, field: str) -> str | int:
    """A card number: 0 <= n < 2**63, as an int or a string of digits (type kept)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _InvalidError(
            f"must be an integer or a string of digits, got {_typeName(value)}", field
        )
    if isinstance(value, str):
        if not _DIGITS_RE.fullmatch(value) or len(value) > 19:
            raise _InvalidError("must be a string of digits below 2**63", field)
        number = int(value)
    else:
        number = value
    if not 0 <= number < _MAX_CARD:
        raise _InvalidError("must be between 0 and 2**63-1", field)
    return value


def _credential(value: Any, field: str) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _InvalidError(f"must be a string or an integer, got {_typeName(value)}", field)
    return value


def _lockGroup(value: Any, field: str) -> int:
    """A C{lockgroup} entry: each decimal digit is a group 1-9 that must verify together."""
    _integer(1, 999_999_999)(value, field)
    if "0" in str(value):
        raise _InvalidError("every digit must be a group 1-9", field)
    return int(value)


def _listOf(item: Checker, maxLength: int, *, minLength: int = 0) -> Checker:
    def check(value: Any, field: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _InvalidError(f"must be an array, got {_typeName(value)}", field)
        if not minLength <= len(value) <= maxLength:
            raise _InvalidError(f"must have {minLength} to {maxLength} entries", field)
        return [item(entry, f"{field}[{i}]") for i, entry in enumerate(value)]

    return check


@attrs.frozen
class Param:
    """
    One parameter of a command.

    @ivar check: the L{Checker} of its value.
    @ivar required: whether it must be given.
    @ivar default: the value sent when it is not given (C{None}: nothing is sent).
    """

    check: Checker
    required: bool = False
    default: Any = None


def _opt(check: Checker) -> Param:
    return Param(check)


def _req(check: Checker) -> Param:
    return Param(check, required=True)


def _fields(
    params: Mapping[str, Param],
    value: Mapping[str, Any],
    where: str,
    *,
    aliases: Mapping[str, str] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Check the keys and values of C{value} against C{params}; the result is in spec order."""
    if not isinstance(value, Mapping):
        raise _InvalidError(f"must be an object, got {_typeName(value)}", where or "params")
    given: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _InvalidError("parameter names must be strings", where or "params")
        name = aliases.get(key, key) if aliases else key
        path = f"{where}.{key}" if where else key or "params"
        if name not in params:
            if strict:
                raise _InvalidError(f"unknown parameter {key!r}", path)
            continue
        if name in given:
            raise _InvalidError("given twice", path)
        given[name] = item
        spelled[name] = key
    out: dict[str, Any] = {}
    for name, param in params.items():
        key = spelled.get(name, name)
        path = f"{where}.{key}" if where else key
        if name in given and given[name] is None:
            raise _InvalidError("must not be null (omit it instead)", path)
        if name not in given:
            if param.required:
                raise _InvalidError("is required", path)
            if param.default is not None:
                out[name] = param.default
            continue
        out[name] = param.check(given[name], path)
    return out


def _object(params: Mapping[str, Param]) -> Checker:
    def check(value: Any, field: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _InvalidError(f"must be an object, got {_typeName(value)}", field)
        return _fields(params, value, field)

    return check


# --- the spec ----------------------------------------------------------------------------------

Validator = Callable[[Mapping[str, Any]], dict[str, Any]]


def _never(params: Mapping[str, Any]) -> bool:
    return False


@attrs.frozen
class CommandSpec:
    """
    A server-to-terminal command.

    @ivar name: the C{cmd} value.
    @ivar summary: one line for operators (API listings).
    @ivar params: the names of the parameters it accepts.
    @ivar expectsReply: C{False} only for C{reboot}, which the terminal never answers.
    @ivar paged: the reply comes in pages requested with C{stn} (see L{pageRequest}).
    @ivar aliases: other accepted names of parameters (e.g. the original README's C{door} for
        C{doornum}), to the protocol's name.
    @ivar ignored: parameters accepted (and validated) but not sent because the firmware cannot
        honour them, with why (see L{warningsFor}).
    """

    name: str
    summary: str
    params: tuple[str, ...]
    validate: Validator = attrs.field(repr=False)
    expectsReply: bool = True
    paged: bool = False
    destructive: Callable[[Mapping[str, Any]], bool] = attrs.field(default=_never, repr=False)
    aliases: Mapping[str, str] = attrs.field(factory=dict)
    ignored: Mapping[str, str] = attrs.field(factory=dict)

    def warningsFor(self, params: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
        """
        What of C{params} will not be honoured: one C{{"field": name, "detail": why}} per
        parameter given that the firmware cannot honour (it is validated, then left out of the
        frame), in the order given.
        """
        if not isinstance(params, Mapping):
            return ()
        return tuple(
            {"field": key, "detail": self.ignored[key]} for key in params if key in self.ignored
        )

    def isDestructive(self, params: Mapping[str, Any]) -> bool:
        """
        Whether sending this command with C{params} erases data or opens every door; the API
        asks for an explicit confirmation for those.

        @param params: the parameters (as given to L{build}).
        """
        return bool(self.destructive(params))

    def build(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """
        Validate C{params} and build the frame.

        @return: C{{"cmd": name, ...}}, ready for JSON encoding.
        @raise ProtocolError: with C{cmd} set and C{field} naming the offending parameter.
        """
        if not isinstance(params, Mapping):
            raise ProtocolError("parameters must be an object", field="params", cmd=self.name)
        try:
            cleaned = self.validate(params)
        except _InvalidError as e:
            raise ProtocolError(e.problem, field=e.field, cmd=self.name) from None
        return {"cmd": self.name, **cleaned}


def _always(params: Mapping[str, Any]) -> bool:
    return True


def _spec(
    name: str,
    summary: str,
    params: Mapping[str, Param] | None = None,
    *,
    check: Callable[[dict[str, Any]], None] | None = None,
    aliases: Mapping[str, str] | None = None,
    ignored: Mapping[str, tuple[Checker, str]] | None = None,
    **options: Any,
) -> CommandSpec:
    """
    A L{CommandSpec} whose validation is a table of L{Param}s plus an optional cross-check.

    @param aliases: other accepted names, to the name in C{params}.
    @param ignored: parameters the firmware cannot honour: name to C{(checker, why)}; a value
        given is validated, then left out of the frame (L{CommandSpec.warningsFor} says so).
    """
    table = dict(params or {})
    unsent = dict(ignored or {})

    def validate(given: Mapping[str, Any]) -> dict[str, Any]:
        if unsent and isinstance(given, Mapping):
            for key, (checker, _) in unsent.items():
                if key in given:
                    if given[key] is None:
                        raise _InvalidError("must not be null (omit it instead)", key)
                    checker(given[key], key)
            given = {k: v for k, v in given.items() if k not in unsent}
        cleaned = _fields(table, given, "", aliases=aliases)
        if check is not None:
            check(cleaned)
        return cleaned

    return CommandSpec(
        name=name,
        summary=summary,
        params=tuple(table),
        validate=validate,
        aliases=dict(aliases or {}),
        ignored={key: why for key, (_, why) in unsent.items()},
        **options,
    )


ENROLLID = _integer(1, MAX_ENROLLID)
ENROLLID_OR_PUBLIC = _integer(0, MAX_ENROLLID)
_BACKUPNUM_SET = _oneOf(BACKUPNUMS_SET, "0-9, 10, 11, 20-27, 30-37 or 50")
_BACKUPNUM_DELETE = _oneOf(BACKUPNUMS_DELETE, "0-13, 20-27, 30-37 or 50")
_ADMIN = _integer(0, 2)
_FLAG = _integer(0, 1)
_BYTE = _integer(0, 255)
_INT32 = _integer(0, 2**31 - 1)
_NAME = _text(100)
_STN = Param(_boolean, default=True)
_VERIFYMODE = _integer(0, 4)


def _checkCredential(cleaned: dict[str, Any]) -> None:
    """C{backupnum} and C{record} go together; the record's type depends on the slot."""
    slot = cleaned.get("backupnum")
    if "record" in cleaned and slot is None:
        raise _InvalidError("is required with record", "backupnum")
    if slot is None:
        return
    if "record" not in cleaned:
        raise _InvalidError("is required with backupnum", "record")
    record = cleaned["record"]
    if slot == _PASSWORD_SLOT:
        cleaned["record"] = _password(record, "record")
    elif slot == _CARD_SLOT:
        cleaned["record"] = _card(record, "record")
    elif not isinstance(record, str):
        raise _InvalidError(f"must be a string for backupnum {slot}", "record")
    else:
        cleaned["record"] = stripDataPrefix(record)
        if not cleaned["record"]:
            raise _InvalidError("must not be empty", "record")


def _checkPeriod(start: str, end: str) -> Callable[[dict[str, Any]], None]:
    def check(cleaned: dict[str, Any]) -> None:
        if start in cleaned and end in cleaned and cleaned[start] > cleaned[end]:
            raise _InvalidError(f"must not be before {start}", end)

    return check


def _checkCount(cleaned: dict[str, Any]) -> None:
    count = cleaned.get("count")
    if count is not None and count != len(cleaned["record"]):
        raise _InvalidError("must equal the number of records", "count")
    cleaned["count"] = len(cleaned["record"])


def _checkDates(cleaned: dict[str, Any]) -> None:
    first, last = cleaned.get("from"), cleaned.get("to")
    if first is not None and last is not None and parseDate(first) > parseDate(last):
        raise _InvalidError("must not be before from", "to")


def _setuserinfoCheck(cleaned: dict[str, Any]) -> None:
    _checkCredential(cleaned)
    _checkPeriod("starttime", "endtime")(cleaned)


_USER_LOCK_RECORD = {
    "enrollid": _req(ENROLLID),
    "weekzone": _opt(_integer(0, 8)),
    "weekzone2": _opt(_integer(0, 8)),
    "weekzone3": _opt(_integer(0, 8)),
    "weekzone4": _opt(_integer(0, 8)),
    "group": _opt(_integer(0, 9)),
    "starttime": _opt(_TIME),
    "endtime": _opt(_TIME),
}

_DEVLOCK = {
    "opendelay": _opt(_BYTE),
    "doorsensor": _opt(_integer(0, 2)),
    "alarmdelay": _opt(_BYTE),
    "threat": _opt(_integer(0, 3)),
    "InputAlarm": _opt(_integer(0, 2)),
    "antpass": _opt(_integer(0, 2)),
    "interlock": _opt(_FLAG),
    "mutiopen": _opt(_integer(0, 4)),
    "tryalarm": _opt(_integer(0, 10)),
    "tamper": _opt(_FLAG),
    "wgformat": _opt(_FLAG),
    "wgoutput": _opt(_integer(0, 2)),
    "cardoutput": _opt(_FLAG),
    "dayzone": _opt(
        _listOf(
            _object(
                {
                    "day": _req(
                        _listOf(
                            _object({"section": _req(_pattern(_SECTION_RE, "HH:MM~HH:MM"))}),
                            5,
                            minLength=1,
                        )
                    )
                }
            ),
            8,
        )
    ),
    "weekzone": _opt(
        _listOf(
            _object({"week": _req(_listOf(_object({"day": _req(_integer(0, 8))}), 7))}),
            8,
        )
    ),
    "lockgroup": _opt(_listOf(_object({"group": _req(_lockGroup)}), 20)),
    "nopentime": _opt(_listOf(_object({"day": _req(_integer(0, 8))}), 7)),
}

_DEVINFO = {
    "deviceid": _opt(_INT32),
    "language": _opt(_integer(0, 18)),
    "volume": _opt(_integer(0, 10)),
    "screensaver": _opt(_BYTE),
    "verifymode": _opt(_VERIFYMODE),
    "sleep": _opt(_boolOrFlag),
    "userfpnum": _opt(_integer(1, 10)),
    "loghint": _opt(_INT32),
    "reverifytime": _opt(_BYTE),
    "disablemenu": _opt(_FLAG),
    "use_logphoto": _opt(_FLAG),
    "stranger_photo": _opt(_FLAG),
    "server_verify": _opt(_FLAG),
}


def _notEmpty(what: str) -> Callable[[dict[str, Any]], None]:
    def check(cleaned: dict[str, Any]) -> None:
        if not cleaned:
            raise _InvalidError(f"at least one {what} is required", "params")

    return check


_HOLIDAY_V27 = {
    "holidays": _req(
        _listOf(
            _object(
                {
                    "name": _opt(_text(64)),
                    "startday": _req(_MONTH_DAY),
                    "endday": _req(_MONTH_DAY),
                    "shift": _opt(_INT32),
                    "dayzone": _opt(_INT32),
                }
            ),
            30,
        )
    ),
}
_HOLIDAY_INDEXED = {
    "index": _req(_INT32),
    "stn": _opt(_boolean),
    "startdate": _opt(_DATE),
    "enddate": _opt(_DATE),
    "name": _opt(_text(64)),
    "count": _opt(_INT32),
    "accessid": _opt(_listOf(ENROLLID, 200)),
}


def _validateSetholiday(given: Mapping[str, Any]) -> dict[str, Any]:
    """Two firmware-dependent forms: the v2.7 doc's C{holidays} list, or the C# demo's indexed one."""
    if "holidays" in given:
        return _fields(_HOLIDAY_V27, given, "")
    cleaned = _fields(_HOLIDAY_INDEXED, given, "")
    first, last = cleaned.get("startdate"), cleaned.get("enddate")
    if first is not None and last is not None and first > last:
        raise _InvalidError("must not be before startdate", "enddate")
    return cleaned


#: Why C{opendoor}'s C{delay} (the original README's) is not sent.
_OPENDOOR_DELAY = (
    "not sent: the firmware's opendoor takes no delay; the lock stays open for the terminal's"
    " own opendelay (seconds), which setdevlock sets for every later opening"
)


def _withoutDoornum(params: Mapping[str, Any]) -> bool:
    return params.get("doornum") is None


_SPECS = [
    # Users (6.1)
    _spec(
        "getuserlist", "List enrolled credentials, in pages of up to 40.", {"stn": _STN}, paged=True
    ),
    _spec(
        "getuserinfo",
        "Read one credential slot of a user.",
        {"enrollid": _req(ENROLLID), "backupnum": _opt(_BACKUPNUM_SET)},
    ),
    _spec(
        "setuserinfo",
        "Write a user, one credential slot per command (extended profile fields optional).",
        {
            "enrollid": _req(ENROLLID),
            "name": _opt(_NAME),
            "backupnum": _opt(_BACKUPNUM_SET),
            "admin": _opt(_ADMIN),
            "record": _opt(_credential),
            "enable": _opt(_FLAG),
            "verifymode": _opt(_VERIFYMODE),
            "card": _opt(_card),
            "pwd": _opt(_password),
            "shiftid": _opt(_INT32),
            "zoneid": _opt(_INT32),
            "groupid": _opt(_INT32),
            "birthday": _opt(_MONTH_DAY),
            "starttime": _opt(_TIME),
            "endtime": _opt(_TIME),
            "department": _opt(_textOrInt),
            "aliasid": _opt(_textOrInt),
        },
        check=_setuserinfoCheck,
    ),
    _spec(
        "deleteuser",
        "Delete one credential slot, all fingerprints (12) or the whole user (13).",
        {"enrollid": _req(ENROLLID), "backupnum": _req(_BACKUPNUM_DELETE)},
    ),
    _spec("getusername", "Read a user's name.", {"enrollid": _req(ENROLLID)}),
    _spec(
        "setusername",
        "Set the names of up to 50 users.",
        {
            "count": _opt(_integer(1, 50)),
            "record": _req(
                _listOf(_object({"enrollid": _req(ENROLLID), "name": _req(_NAME)}), 50, minLength=1)
            ),
        },
        check=_checkCount,
    ),
    _spec(
        "enableuser",
        "Enable (enflag 1) or disable (enflag 0) a user.",
        {"enrollid": _req(ENROLLID), "enflag": _req(_FLAG)},
    ),
    _spec("cleanuser", "Delete every user.", destructive=_always),
    _spec(
        "setuserprofile",
        "Set the message shown to a user (enrollid 0: public notice).",
        {"enrollid": _req(ENROLLID_OR_PUBLIC), "profile": _req(_text(200))},
    ),
    _spec(
        "getuserprofile",
        "Read the message shown to a user (enrollid 0: public notice).",
        {"enrollid": _req(ENROLLID_OR_PUBLIC)},
    ),
    _spec(
        "adduser",
        "Start an enrolment on the terminal's screen (flag 10: automatic).",
        {
            "enrollid": _req(ENROLLID),
            "backupnum": _opt(_BACKUPNUM_SET),
            "admin": _opt(_ADMIN),
            "name": _opt(_NAME),
            "flag": _opt(_BYTE),
            "aliasid": _opt(_textOrInt),
        },
    ),
    _spec(
        "getallusers",
        "List every credential with its record, one per reply.",
        {"stn": _STN},
        paged=True,
    ),
    _spec("disabledevice", "Suspend recognition (before user management)."),
    _spec("enabledevice", "Resume recognition."),
    # Logs (6.2)
    _spec("getnewlog", "Read the logs not yet uploaded, in pages.", {"stn": _STN}, paged=True),
    _spec(
        "getalllog",
        "Read all logs, optionally between two dates, in pages.",
        {"stn": _STN, "from": _opt(_DATE), "to": _opt(_DATE)},
        check=_checkDates,
        paged=True,
    ),
    _spec("cleanlog", "Delete every log.", destructive=_always),
    _spec("cleanlogphoto", "Delete every log photo (AiFace).", destructive=_always),
    # System (6.3)
    _spec("initsys", "Delete every user and log (settings are kept).", destructive=_always),
    _spec(
        "reboot",
        "Reboot the terminal (no reply; the connection drops).",
        expectsReply=False,
        destructive=_always,
    ),
    _spec("cleanadmin", "Demote every administrator.", destructive=_always),
    _spec("settime", "Set the terminal's clock.", {"cloudtime": _req(_TIME)}),
    _spec("gettime", "Read the terminal's clock."),
    _spec(
        "setdevinfo",
        "Change device settings (every field optional).",
        _DEVINFO,
        check=_notEmpty("setting"),
    ),
    _spec("getdevinfo", "Read the device settings."),
    # Access control (6.4)
    _spec(
        "opendoor",
        "Open one door (doornum 1-4; alias door), or every door when doornum is omitted.",
        {"doornum": _opt(_integer(1, 4))},
        destructive=_withoutDoornum,
        aliases={"door": "doornum"},
        ignored={"delay": (_BYTE, _OPENDOOR_DELAY)},
    ),
    _spec(
        "setdevlock",
        "Change the door and access-control settings.",
        _DEVLOCK,
        aliases={"inputalarm": "InputAlarm"},
        check=_notEmpty("setting"),
    ),
    _spec("getdevlock", "Read the door and access-control settings."),
    _spec("getuserlock", "Read a user's access rights.", {"enrollid": _req(ENROLLID)}),
    _spec(
        "setuserlock",
        "Set the access rights of up to 50 users.",
        {
            "count": _opt(_integer(1, 50)),
            "record": _req(_listOf(_object(_USER_LOCK_RECORD), 50, minLength=1)),
        },
        check=_checkCount,
    ),
    _spec("deleteuserlock", "Delete a user's access rights.", {"enrollid": _req(ENROLLID)}),
    _spec("cleanuserlock", "Delete every user's access rights.", destructive=_always),
    # Questionnaire and holidays (6.5)
    _spec("getquestionnaire", "Read the questionnaire (AI terminals).", {"stn": _STN}),
    _spec(
        "setquestionnaire",
        "Set the questionnaire (AI terminals).",
        {
            "title": _opt(_text(200)),
            "voice": _opt(_text(200)),
            "errmsg": _opt(_text(200)),
            "radio": _opt(_boolean),
            "optionflag": _opt(_boolOrFlag),
            "usequestion": _opt(_boolOrFlag),
            "useschedule": _opt(_boolOrFlag),
            "card": _opt(_boolOrFlag),
            "items": _opt(_listOf(_text(200), 16)),
            "schedules": _opt(_listOf(_pattern(_SCHEDULE_RE, "HH:MM-HH:MM*N"), 8)),
        },
        check=_notEmpty("field"),
    ),
    _spec(
        "getholiday",
        "Read the holidays (the C# demo's form pages by index).",
        {"index": _opt(_INT32), "stn": _opt(_boolean)},
    ),
    CommandSpec(
        name="setholiday",
        summary="Set holidays: a 'holidays' list (v2.7 doc) or one indexed holiday (C# demo).",
        params=(*_HOLIDAY_V27, *_HOLIDAY_INDEXED),
        validate=_validateSetholiday,
    ),
    _spec("deleteholiday", "Delete one holiday (C# demo form).", {"index": _req(_INT32)}),
    _spec("cleanholiday", "Delete every holiday.", destructive=_always),
]

#: Every server-to-terminal command, by name.
COMMANDS: Mapping[str, CommandSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def _lookup(name: str) -> CommandSpec:
    spec = COMMANDS.get(name) if isinstance(name, str) else None
    if spec is None:
        shown = name if isinstance(name, str) else None
        raise ProtocolError(f"unknown command {name!r}", field="cmd", cmd=shown)
    return spec


def commandWarnings(name: str, params: Mapping[str, Any]) -> tuple[dict[str, str], ...]:
    """
    The parameters of C{params} that C{name} accepts but the firmware cannot honour (see
    L{CommandSpec.warningsFor}); nothing for an unknown command.
    """
    spec = COMMANDS.get(name) if isinstance(name, str) else None
    return () if spec is None else spec.warningsFor(params)


def buildCommand(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """
    Validate a command and build its frame.

    @param name: the command, e.g. C{"getuserinfo"} (exact, lower-case).
    @param params: its parameters, e.g. C{{"enrollid": 1, "backupnum": 0}}.
    @return: the JSON-ready dict C{{"cmd": name, ...}} (paged commands get C{"stn": true}).
    @raise ProtocolError: for an unknown command (C{field="cmd"}), an unknown, missing or invalid
        parameter (C{field} names it, e.g. C{record[2].enrollid}).
    """
    return _lookup(name).build(params)


def pageRequest(name: str, first: bool, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """
    The request for one page of a paged command (C{getuserlist}, C{getnewlog}, C{getalllog},
    C{getallusers}).

    @param name: the command.
    @param first: C{True} for the first page: C{stn:true} with C{params}; otherwise
        C{{"cmd": name, "stn": false}} (the terminal remembers the rest).
    @param params: the parameters of the first page (e.g. C{getalllog} dates); ignored after it.
    @raise ProtocolError: if C{name} is not a paged command or C{params} are invalid.
    """
    spec = _lookup(name)
    if not spec.paged:
        raise ProtocolError("not a paged command", field="cmd", cmd=spec.name)
    if not first:
        return {"cmd": spec.name, "stn": False}
    return spec.build({**(params or {}), "stn": True})
