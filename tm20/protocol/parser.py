"""
Parse one frame received from a terminal into a typed L{Message}.

The parser is tolerant of the quirks real firmwares and the vendor's own documents show (see the
protocol notes, section 8): keys and C{cmd}/C{ret} values with stray spaces, trailing commas,
integers sent as strings, C{data:image/...;base64,} prefixes, a missing C{sn}.  It is strict about
everything that could hurt the server: invalid UTF-8, deep nesting, huge arrays, non-finite
numbers, floats or booleans where an integer is meant.  Every failure is a L{ProtocolError}, whose
C{cmd} is set whenever the command name could be read, so the dispatcher can always answer
C{{"ret": cmd, "result": false}}.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import attrs

from tm20.protocol.messages import (
    CommandReply,
    LogRecord,
    Message,
    ProtocolError,
    Register,
    RejectedRecord,
    SendLog,
    SendQrCode,
    SendUser,
    SendUserRejected,
    TerminalCommand,
    TerminalMessage,
    UserRecord,
)
from tm20.protocol.rawjson import arrayElementsOf
from tm20.protocol.serial import snProblem
from tm20.protocol.storable import (
    REGISTER_DEVINFO_TEXT,
    checkLogRecord,
    checkUserFields,
    storableText,
    textProblem,
)
from tm20.protocol.timefmt import matchCanonicalTime, normaliseTime

__all__ = [
    "DEFAULT_MAX_ARRAY_LENGTH",
    "DEFAULT_MAX_DEPTH",
    "logRecordsOf",
    "nestedDeeperThan",
    "parseFrame",
    "parseLogRecord",
    "parseUserRecord",
    "stripDataPrefix",
    "userRecordsOf",
]

DEFAULT_MAX_DEPTH = 16
DEFAULT_MAX_ARRAY_LENGTH = 100_000
#: Most JSON values in one frame (counted before decoding, see L{countJSONValues}).
DEFAULT_MAX_VALUES = 250_000

#: Longest integer literal accepted (a 64-bit card number has 20 digits).
_MAX_INT_DIGITS = 40

#: A JSON string literal (possibly unterminated, then it runs to the end of the text).
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKET_RE = re.compile(r"[\[\]{}]")
#: A trailing comma before a closing bracket, or a whole string literal (kept as is).
_TRAILING_COMMA_RE = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")|,\s*([\]}])', re.DOTALL)
#: A C{"cmd": "<name>"} pair, for the best-effort recovery of the name of a broken frame.
_CMD_PAIR_RE = re.compile(r'"\s*cmd\s*"\s*:\s*("[^"\\]*(?:\\.[^"\\]*)*")')
_DATA_PREFIX_RE = re.compile(r"data:[^,;\"]{0,100}(?:;[^,;\"]{0,100}){0,5};base64,", re.ASCII)
_INT_STRING_RE = re.compile(r"\s*[-+]?\d{1,20}\s*", re.ASCII)
_FLOAT_STRING_RE = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*", re.ASCII)

#: Keys whose string value may carry a C{data:...;base64,} prefix to strip.
_BASE64_KEYS = frozenset({"image", "record"})
#: Alternative names of a log record's C{mode}, in order of preference.
_MODE_KEYS = ("mode", "attmode", "verify")


class _BadNumber:
    """A number literal the parser refuses (C{NaN}, C{Infinity}, an absurdly long integer)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parseInt(text: str) -> int | _BadNumber:
    if len(text) <= _MAX_INT_DIGITS or len(text.lstrip("-")) <= _MAX_INT_DIGITS:
        return int(text)
    return _BadNumber(text[:20] + "...")


#: One decoder for every frame (C{json.loads} with options builds a new one per call).
_DECODER = json.JSONDecoder(parse_int=_parseInt, parse_constant=_BadNumber)


def _decode(text: str) -> Any:
    if text.startswith("\ufeff"):
        # what json.loads says (a second byte-order mark: the first one is removed already)
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def stripDataPrefix(value: str) -> str:
    """
    Remove a C{data:image/jpeg;base64,} style prefix from Base64 text.

    @param value: Base64 text, with or without the prefix.
    @return: the bare Base64 text (C{value} itself when there is no prefix).
    """
    if value.startswith("data:"):
        match = _DATA_PREFIX_RE.match(value)
        if match is not None:
            return value[match.end() :]
    return value


#: A field path for errors, rendered only when an error names it: text (C{""} for the top, or a
#: ready path such as C{"record[3]"}), or C{(parent, key)} with C{key} an object member (text) or
#: an array index (an int).
_Path = str | tuple[Any, str | int]


def _render(path: _Path) -> str:
    """The text of a lazy field path: C{record[3].time}, C{devinfo.mac}, C{""} for the top."""
    keys: list[str | int] = []
    while not isinstance(path, str):
        path, key = path
        keys.append(key)
    out = path
    for key in reversed(keys):
        if isinstance(key, int):
            out = f"{out}[{key}]"
        else:
            out = f"{out}.{key}" if out else key
    return out


@attrs.frozen
class _Context:
    """
    Where we are: the command (or reply) name for errors, the limits, and the frame's text
    (for the quarantine's verbatim copy of a refused record).
    """

    cmd: str | None = None
    ret: str | None = None
    maxDepth: int = DEFAULT_MAX_DEPTH
    maxArrayLength: int = DEFAULT_MAX_ARRAY_LENGTH
    text: str = ""

    def fail(self, problem: str, field: _Path | None = None) -> NoReturn:
        if isinstance(field, tuple):
            field = _render(field)
        raise ProtocolError(problem, field=field, cmd=self.cmd, ret=self.ret)

    def failAt(self, problem: str, path: _Path) -> NoReturn:
        """Fail naming C{path}, or no field for the top of the frame."""
        self.fail(problem, _render(path) or None)


# --- the raw text ------------------------------------------------------------------------------


#: A JSON string literal in bytes (its commas and brackets are not structure).
_BYTES_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_STRUCTURE = (b",", b"[", b"{")
#: The C{cmd} of a frame when it is its first key.
_LEADING_CMD_RE = re.compile(rb'^\s*\{\s*"\s*cmd\s*"\s*:\s*"\s*([A-Za-z0-9_]{1,64})\s*"')


def countJSONValues(payload: bytes, limit: int) -> int:
    """
    An upper bound on the number of values in the JSON text C{payload} (every value but the
    first is preceded by a comma or an opening bracket outside a string), computed without
    decoding it.

    Decoding builds a Python object for every value: a 4 MiB frame of C{{}} entries costs about
    100 MB.  Refusing frames whose count exceeds the parser's array limit before decoding keeps
    a hostile frame's cost near its own size.

    Strings are blanked out before counting, so Base64 photos and names with commas do not
    count.  Both passes run in C (C{bytes.count}, C{re.sub}); the second only when the first,
    rougher count (strings included) is over C{limit}.

    @return: the bound, or a cheaper overestimate when it is already below C{limit}.
    """
    rough = sum(payload.count(c) for c in _STRUCTURE) + 1
    if rough <= limit:
        return rough
    bare = _BYTES_STRING_RE.sub(b'""', payload)
    return sum(bare.count(c) for c in _STRUCTURE) + 1


def _leadingCmd(payload: bytes) -> str | None:
    """The C{cmd} of a frame refused before decoding, when it is its first key."""
    match = _LEADING_CMD_RE.match(payload[:256])
    return match.group(1).decode("ascii").lower() if match is not None else None


def _toText(data: bytes | str) -> str:
    if isinstance(data, str):
        text = data
    elif isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"invalid UTF-8 at byte {e.start}") from None
    else:
        raise ProtocolError(f"expected bytes or text, got {type(data).__name__}")
    return text.removeprefix("\ufeff")


def _depthAt(text: str, end: int) -> int:
    """The bracket depth of C{text} at index C{end}, ignoring brackets in strings."""
    bare = _STRING_RE.sub('""', text[:end])
    return bare.count("[") + bare.count("{") - bare.count("]") - bare.count("}")


def _guessCmd(text: str) -> str | None:
    """
    Best-effort recovery of the top-level C{cmd} of a frame that cannot be decoded, so that even
    a broken C{sendlog} gets its C{result:false} answer.
    """
    for tries, match in enumerate(_CMD_PAIR_RE.finditer(text)):
        if tries >= 5:
            break
        before = text[: match.start()].rstrip()
        if not before or before[-1] not in "{,":
            continue
        if _depthAt(text, match.start()) != 1:
            continue
        try:
            value = json.loads(match.group(1))
        except ValueError:
            continue
        name = _cleanName(value)
        if name:
            return name
    return None


def _tooDeep(text: str, maxDepth: int) -> bool:
    """
    Cheaply tell whether the brackets of C{text} nest deeper than C{maxDepth}, before handing it
    to L{json.loads} (whose recursion a 1 MB C{[[[[...} would exhaust).
    """
    if text.count("[") + text.count("{") <= maxDepth:
        return False
    depth = 0
    for match in _BRACKET_RE.finditer(_STRING_RE.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > maxDepth:
                return True
        else:
            depth -= 1
    return False


def nestedDeeperThan(text: str, maxDepth: int) -> bool:
    """
    Whether the brackets of the JSON text C{text} nest deeper than C{maxDepth} (brackets in
    strings do not count), told without decoding it: check it before L{json.loads}, whose
    recursion a deep enough C{[[[[...} exhausts (C{RecursionError}).
    """
    return _tooDeep(text, maxDepth)


def _removeTrailingCommas(text: str) -> str:
    return _TRAILING_COMMA_RE.sub(lambda m: m.group(1) or m.group(2), text)


def _load(text: str, maxDepth: int) -> Any:
    if _tooDeep(text, maxDepth):
        raise ProtocolError(f"nesting deeper than {maxDepth}", cmd=_guessCmd(text))
    try:
        try:
            return _decode(text)
        except ValueError as first:
            cleaned = _removeTrailingCommas(text)
            if cleaned == text:
                raise first from None
            return _decode(cleaned)
    except ValueError as e:
        detail = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        raise ProtocolError(f"invalid JSON: {detail}", cmd=_guessCmd(text)) from None
    except RecursionError:
        raise ProtocolError(f"nesting deeper than {maxDepth}", cmd=_guessCmd(text)) from None


# --- cleaning the decoded value ----------------------------------------------------------------


def _cleanName(value: object) -> str | None:
    """A C{cmd}/C{ret} value trimmed and lower-cased, or C{None} if it is not usable text."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return name or None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _trimKeys(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Trim the keys; an exact key wins over a padded one that trims to the same name."""
    for key in obj:
        if key != key.strip():
            break
    else:
        # nothing to trim (the usual case): no copy
        return obj if isinstance(obj, dict) else dict(obj)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key.strip()
        if name != key and name in obj:
            continue
        out[name] = value
    return out


def _checkText(ctx: _Context, value: str, path: _Path) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            ctx.failAt("invalid text (lone surrogate escape)", path)
    return value


def _cleanScalar(ctx: _Context, value: Any, path: _Path) -> Any:
    if isinstance(value, str):
        if not value.isascii():
            _checkText(ctx, value, path)
        return value
    if isinstance(value, _BadNumber):
        ctx.failAt(f"unsupported number {value.text}", path)
    if isinstance(value, float) and not math.isfinite(value):
        ctx.failAt("non-finite number", path)
    return value


def _clean(ctx: _Context, value: Any, path: _Path, depth: int) -> Any:
    """
    Recursively trim keys, strip Base64 prefixes and check the limits.

    The decoded value is the parser's own: objects whose keys need no trimming and arrays are
    cleaned in place (no copy); error paths are built only when something fails.
    """
    if isinstance(value, dict):
        return _cleanDict(ctx, value, path, depth)
    if isinstance(value, list):
        if depth + 1 > ctx.maxDepth:
            ctx.failAt(f"nesting deeper than {ctx.maxDepth}", path)
        if len(value) > ctx.maxArrayLength:
            ctx.failAt(f"array longer than {ctx.maxArrayLength}", path)
        inner = depth + 1
        for i, item in enumerate(value):
            kind = type(item)
            if kind is dict or kind is list:
                cleaned = _clean(ctx, item, (path, i), inner)
                if cleaned is not item:
                    value[i] = cleaned
            elif kind is not int and item is not None and kind is not bool:
                _cleanScalar(ctx, item, (path, i))
        return value
    return _cleanScalar(ctx, value, path)


def _cleanDict(ctx: _Context, value: dict[str, Any], path: _Path, depth: int) -> dict[str, Any]:
    if depth + 1 > ctx.maxDepth:
        ctx.failAt(f"nesting deeper than {ctx.maxDepth}", path)
    inner = depth + 1
    for key in value:
        if not key.isascii() or key != key.strip():
            break
    else:
        # the usual case: plain keys, nothing to trim or check; clean the values in place
        replaced: list[tuple[str, Any]] = []
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                if not item.isascii():
                    _checkText(ctx, item, (path, key))
                if key in _BASE64_KEYS:
                    stripped = stripDataPrefix(item)
                    if stripped is not item:
                        replaced.append((key, stripped))
            elif kind is int or item is None or kind is bool:
                pass
            elif kind is dict or kind is list:
                cleaned = _clean(ctx, item, (path, key), inner)
                if cleaned is not item:
                    replaced.append((key, cleaned))
            else:
                _cleanScalar(ctx, item, (path, key))
        for key, item in replaced:
            value[key] = item
        return value
    out: dict[str, Any] = {}
    for key, item in _trimKeys(value).items():
        where = (path, key)
        _checkText(ctx, key, where)
        cleaned = _clean(ctx, item, where, inner)
        if key in _BASE64_KEYS and isinstance(cleaned, str):
            cleaned = stripDataPrefix(cleaned)
        out[key] = cleaned
    return out


# --- typed fields ------------------------------------------------------------------------------

_MISSING: Any = object()


def _int(ctx: _Context, value: Any, field: _Path, *, minimum: int | None = None) -> int:
    """An integer, given as a JSON number or as a string of digits."""
    if isinstance(value, bool):
        ctx.fail("must be an integer, not a boolean", field)
    if isinstance(value, float):
        ctx.fail("must be an integer, not a float", field)
    if isinstance(value, str) and _INT_STRING_RE.fullmatch(value):
        value = int(value)
    if not isinstance(value, int):
        ctx.fail(f"must be an integer, got {_describe(value)}", field)
    if minimum is not None and value < minimum:
        ctx.fail(f"must be >= {minimum}", field)
    return value


def _optInt(
    ctx: _Context, obj: Mapping[str, Any], key: str, where: _Path, *, minimum: int | None = None
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is int and (minimum is None or value >= minimum):
        return value
    return _int(ctx, value, (where, key), minimum=minimum)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a non-numeric string" if value else "an empty string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _optText(ctx: _Context, obj: Mapping[str, Any], key: str, where: _Path) -> str | None:
    """A string; a number is turned into its text (numeric names, QR codes)."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    ctx.fail(f"must be a string, got {_describe(value)}", (where, key))


def _sn(ctx: _Context, obj: Mapping[str, Any]) -> str | None:
    value = _optText(ctx, obj, "sn", "")
    if value is None:
        return None
    return value.strip() or None


def _credential(ctx: _Context, value: Any, field: str) -> str | int | None:
    """A credential C{record}: kept with the JSON type the terminal used."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    ctx.fail(f"must be a string or an integer, got {_describe(value)}", field)


def _temperature(ctx: _Context, value: Any, field: _Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        ctx.fail("must be a number, not a boolean", field)
    if isinstance(value, str) and _FLOAT_STRING_RE.fullmatch(value):
        value = float(value)
    if not isinstance(value, int | float):
        ctx.fail(f"must be a number, got {_describe(value)}", field)
    result = float(value)
    if not math.isfinite(result):
        ctx.fail("must be a finite number", field)
    return result


def _object(ctx: _Context, value: Any, field: _Path) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        ctx.fail(f"must be an object, got {_describe(value)}", field)
    return value


# --- records -----------------------------------------------------------------------------------


#: The fields of a plain log record (L{_plainLogRecord}).
_PLAIN_LOG_KEYS = frozenset({"enrollid", "time", "mode", "inout", "event", "verifymode"})


def _plainLogRecord(raw: dict[str, Any]) -> LogRecord | None:
    """
    The usual record (a terminal's punch) read at once, as L{_clean} then L{_logRecord} read
    it: only plain fields (L{_PLAIN_LOG_KEYS}, whose names need no trimming), integers (none a
    boolean), C{verifymode} absent or an integer, a time already canonical, storable values;
    nothing to clean, so no error path and no extra field.

    @return: the record, or C{None} for any other record, which goes the general way.
    """
    if not raw.keys() <= _PLAIN_LOG_KEYS:
        return None
    enrollid = raw.get("enrollid")
    time = raw.get("time")
    mode = raw.get("mode", 0)
    inout = raw.get("inout", 0)
    event = raw.get("event", 0)
    verifymode = raw.get("verifymode")
    if (
        type(enrollid) is int
        and enrollid >= 0
        and type(mode) is int
        and type(inout) is int
        and type(event) is int
        and (verifymode is None or type(verifymode) is int)
        and type(time) is str
        and matchCanonicalTime(time) is not None
        and checkLogRecord(enrollid, mode, inout, event, verifymode, None) is None
    ):
        return LogRecord(enrollid, time, mode, inout, event, None, verifymode, None, {})
    return None


def _logRecord(ctx: _Context, raw: Any, where: _Path) -> LogRecord:
    # The usual record (plain ints, a canonical time, no temperature or image) takes no detour
    # through the generic helpers; error paths are built only when something fails.
    obj = raw if type(raw) is dict else _object(ctx, raw, where)
    rest = dict(obj)
    enrollid = rest.pop("enrollid", None)
    if enrollid is None:
        ctx.fail("is required", (where, "enrollid"))
    if type(enrollid) is not int or enrollid < 0:
        enrollid = _int(ctx, enrollid, (where, "enrollid"), minimum=0)
    timeValue = rest.pop("time", None)
    if timeValue is None:
        ctx.fail("is required", (where, "time"))
    try:
        time = normaliseTime(timeValue)
    except ValueError as e:
        ctx.fail(str(e), (where, "time"))
    mode = 0
    for key in _MODE_KEYS:
        value = rest.get(key)
        if value is not None:
            del rest[key]
            mode = value if type(value) is int else _int(ctx, value, (where, key))
            break
    inout = rest.pop("inout", None)
    if inout is None:
        inout = 0
    elif type(inout) is not int:
        inout = _int(ctx, inout, (where, "inout"))
    event = rest.pop("event", None)
    if event is None:
        event = 0
    elif type(event) is not int:
        event = _int(ctx, event, (where, "event"))
    verifymode = rest.pop("verifymode", None)
    if verifymode is not None and type(verifymode) is not int:
        verifymode = _int(ctx, verifymode, (where, "verifymode"))
    temp = rest.pop("temp", None)
    if temp is not None:
        temp = _temperature(ctx, temp, (where, "temp"))
    image = rest.pop("image", None)
    if image is not None and type(image) is not str:
        image = _optText(ctx, {"image": image}, "image", where)
    unstorable = checkLogRecord(enrollid, mode, inout, event, verifymode, image)
    if unstorable is not None:
        field, problem = unstorable
        if field == "mode":
            field = next((k for k in _MODE_KEYS if obj.get(k) is not None), field)
        ctx.fail(problem, (where, field))
    return LogRecord(
        enrollid=enrollid,
        time=time,
        mode=mode,
        inout=inout,
        event=event,
        temp=temp,
        verifymode=verifymode,
        image=image or None,
        extra=rest,
    )


def _userRecord(ctx: _Context, raw: Any, where: str, skip: frozenset[str]) -> UserRecord:
    obj = _object(ctx, raw, where)
    if obj.get("enrollid") is None:
        ctx.fail("is required", _join(where, "enrollid"))
    enrollid = _int(ctx, obj["enrollid"], _join(where, "enrollid"), minimum=0)
    name = _optText(ctx, obj, "name", where)
    backupnum = _optInt(ctx, obj, "backupnum", where, minimum=0)
    admin = _optInt(ctx, obj, "admin", where)
    record = _credential(ctx, obj.get("record"), _join(where, "record"))
    unstorable = checkUserFields(enrollid, name, backupnum, admin)
    if unstorable is not None:
        ctx.fail(unstorable[1], _join(where, unstorable[0]))
    known = {"enrollid", "name", "backupnum", "admin", "record"} | skip
    extra = {k: v for k, v in obj.items() if k not in known}
    return UserRecord(
        enrollid=enrollid,
        name=name,
        backupnum=backupnum,
        admin=admin or 0,
        record=record,
        extra=extra,
    )


def parseLogRecord(raw: Mapping[str, Any], where: str = "record") -> LogRecord:
    """
    Type one log record, as found in C{sendlog} and in the C{record} list of C{getnewlog} /
    C{getalllog} replies (which L{parseFrame} leaves raw in L{CommandReply.fields}).

    @param raw: the record object (already cleaned by L{parseFrame}).
    @param where: the field path used in errors, e.g. C{"record[3]"}.
    @raise ProtocolError: naming the offending field, e.g. C{record[3].time}.
    """
    return _logRecord(_Context(), raw, where)


def parseUserRecord(raw: Mapping[str, Any], where: str = "record") -> UserRecord:
    """
    Type one user credential, as found in C{getuserinfo} / C{getallusers} replies and in the
    C{record} list of C{getuserlist} replies (where C{admin} may be the string C{"0"}).

    @param raw: the object (already cleaned by L{parseFrame}).
    @param where: the field path used in errors.
    @raise ProtocolError: naming the offending field.
    """
    return _userRecord(_Context(), raw, where, frozenset({"ret", "sn", "result", "reason"}))


def logRecordsOf(reply: CommandReply) -> tuple[LogRecord, ...]:
    """
    The log records of a C{getnewlog} / C{getalllog} page.

    @raise ProtocolError: (with C{ret} set) if C{record} is not a list or a record is invalid.
    """
    ctx = _Context(ret=reply.ret)
    records = reply.fields.get("record")
    if records is None:
        return ()
    if not isinstance(records, list | tuple):
        ctx.fail(f"must be an array, got {_describe(records)}", "record")
    return tuple([_logRecord(ctx, raw, ("record", i)) for i, raw in enumerate(records)])


def userRecordsOf(reply: CommandReply) -> tuple[UserRecord, ...]:
    """
    The user credentials of a reply: the C{record} list of a C{getuserlist} page, or the reply
    itself for C{getuserinfo} / C{getallusers} (empty when it names no C{enrollid}).

    @raise ProtocolError: (with C{ret} set) naming the offending field.
    """
    ctx = _Context(ret=reply.ret)
    records = reply.fields.get("record")
    if isinstance(records, list | tuple):
        skip: frozenset[str] = frozenset()
        return tuple(_userRecord(ctx, raw, f"record[{i}]", skip) for i, raw in enumerate(records))
    if reply.fields.get("enrollid") is None:
        return ()
    return (_userRecord(ctx, reply.fields, "", frozenset({"count", "index"})),)


# --- messages ----------------------------------------------------------------------------------


def _checkRegisterText(ctx: _Context, register: Register) -> Register:
    """Refuse a C{reg} whose stored texts (C{sn}, C{cpusn}, devinfo columns) no store can hold."""
    for field, value in (("sn", register.sn), ("cpusn", register.cpusn)):
        problem = None if value is None else textProblem(value)
        if problem is not None:
            ctx.fail(problem, field)
    for key in REGISTER_DEVINFO_TEXT:
        value = register.devinfo.get(key)
        problem = textProblem(value) if isinstance(value, str) else None
        if problem is not None:
            ctx.fail(problem, f"devinfo.{key}")
    return register


def _register(ctx: _Context, obj: Mapping[str, Any]) -> Register:
    sn = _sn(ctx, obj)
    if sn is None:
        ctx.fail("is required to register", "sn")
    problem = snProblem(sn)
    if problem is not None:
        ctx.fail(problem, "sn")
    cpusn = _optText(ctx, obj, "cpusn", "")
    devinfo = obj.get("devinfo")
    if devinfo is None:
        devinfo = {}
    if cpusn is not None:
        cpusn = cpusn.strip() or None
    register = Register(
        sn=sn,
        cpusn=cpusn,
        devinfo=_object(ctx, devinfo, "devinfo"),
    )
    return _checkRegisterText(ctx, register)


#: Names a firmware or a hand-written client might use instead of C{record} (never accepted:
#: only named in the error, so the operator sees why the batch is refused).
_RECORD_MISNAMES = ("records", "data", "logs", "log", "list")


def _missingRecord(ctx: _Context, top: Mapping[str, Any]) -> NoReturn:
    near = [k for k in top if k.lower() == "record" or k.lower() in _RECORD_MISNAMES]
    if near:
        ctx.fail(f"is required (found {', '.join(map(repr, near))} instead)", "record")
    ctx.fail("is required", "record")


def _rawTexts(ctx: _Context, key: str) -> list[str] | None:
    """The source text of each element of the frame's top-level array C{key}."""
    found = arrayElementsOf(ctx.text, key)
    if found is None:
        found = arrayElementsOf(_removeTrailingCommas(ctx.text), key)
    return found


def _verbatim(value: Any) -> str:
    """A stand-in for a record's source text when it cannot be found (it always can)."""
    return json.dumps(value, default=lambda v: getattr(v, "text", repr(v)))


def _rejected(raw: str, error: ProtocolError) -> RejectedRecord:
    """A refused record, its texts made storable (a field path may hold any key's text)."""
    field = None if error.field is None else storableText(error.field)
    return RejectedRecord(raw=storableText(raw), problem=storableText(error.problem), field=field)


def _sendLog(ctx: _Context, top: dict[str, Any]) -> SendLog:
    """
    A C{sendlog}: the frame's own fields are checked first (an error there refuses the whole
    batch), then each record on its own: one that can never be stored is kept raw in
    L{SendLog.rejected} and does not stop the others.
    """
    records = top.pop("record", _MISSING)
    obj: dict[str, Any] = _clean(ctx, top, "", 0)
    sn = _sn(ctx, obj)
    count = _optInt(ctx, obj, "count", "")
    logindex = _optInt(ctx, obj, "logindex", "")
    if records is _MISSING:
        _missingRecord(ctx, obj)
    if not isinstance(records, list):
        ctx.fail(f"must be an array, got {_describe(records)}", "record")
    if 2 > ctx.maxDepth:
        ctx.fail(f"nesting deeper than {ctx.maxDepth}", "record")
    if len(records) > ctx.maxArrayLength:
        ctx.fail(f"array longer than {ctx.maxArrayLength}", "record")
    if not records and count:
        ctx.fail(f"is empty but count is {count}", "record")
    good: list[LogRecord] = []
    rejected: list[RejectedRecord] = []
    texts: list[str] | None = None
    # a record is an object at depth 3: deeper than a limit below 3, it is refused (by _clean)
    plain = ctx.maxDepth >= 3
    for i, raw in enumerate(records):
        if plain and type(raw) is dict:
            record = _plainLogRecord(raw)
            if record is not None:
                good.append(record)
                continue
        try:
            kind = type(raw)
            if kind is dict or kind is list:
                raw = _clean(ctx, raw, ("record", i), 2)
            elif kind is not int and raw is not None and kind is not bool:
                _cleanScalar(ctx, raw, ("record", i))
            good.append(_logRecord(ctx, raw, ("record", i)))
        except ProtocolError as e:
            if texts is None:
                texts = _rawTexts(ctx, "record") or []
            text = texts[i] if i < len(texts) else _verbatim(raw)
            rejected.append(_rejected(text, e))
    return SendLog(
        sn=sn,
        count=count,
        logindex=logindex,
        records=tuple(good),
        rejected=tuple(rejected),
    )


def _sendUser(ctx: _Context, top: dict[str, Any]) -> SendUser | SendUserRejected:
    """
    A C{senduser}: the frame is the record, so anything wrong in it but its C{sn} gives a
    L{SendUserRejected} holding the frame's text, for the quarantine.
    """
    sn = _sn(ctx, {"sn": _cleanScalar(ctx, top.get("sn"), "sn")})
    try:
        obj: dict[str, Any] = _clean(ctx, top, "", 0)
        user = _userRecord(ctx, obj, "", frozenset({"cmd", "sn"}))
    except ProtocolError as e:
        return SendUserRejected(sn=sn, rejected=_rejected(ctx.text, e))
    return SendUser(
        sn=_sn(ctx, obj),
        enrollid=user.enrollid,
        name=user.name,
        backupnum=user.backupnum,
        admin=user.admin,
        record=user.record,
        extra=user.extra,
    )


def _sendQrCode(ctx: _Context, obj: Mapping[str, Any]) -> SendQrCode:
    record = _optText(ctx, obj, "record", "")
    if record is None:
        ctx.fail("is required", "record")
    return SendQrCode(sn=_sn(ctx, obj), record=record)


def _reply(ctx: _Context, obj: Mapping[str, Any], ret: str) -> CommandReply:
    reason = obj.get("reason")
    result = obj.get("result", _MISSING)
    if result is _MISSING or result is None:
        ok = reason is None
    elif isinstance(result, bool):
        ok = result
    elif isinstance(result, int) and result in (0, 1):
        ok = bool(result)
    elif isinstance(result, str) and result.strip().lower() in ("true", "false"):
        ok = result.strip().lower() == "true"
    else:
        ctx.fail(f"must be a boolean, got {_describe(result)}", "result")
    fields = {k: v for k, v in obj.items() if k not in ("ret", "sn", "result", "reason")}
    return CommandReply(ret=ret, sn=_sn(ctx, obj), result=ok, reason=reason, fields=fields)


_HANDLERS: dict[str, Callable[[_Context, Mapping[str, Any]], TerminalMessage]] = {
    "reg": _register,
    "sendqrcode": _sendQrCode,
}
#: Commands that clean their frame themselves (a bad record must not refuse the whole frame).
_RECORD_HANDLERS: dict[str, Callable[[_Context, dict[str, Any]], TerminalMessage]] = {
    "sendlog": _sendLog,
    "senduser": _sendUser,
}


def parseFrame(
    data: bytes | str,
    *,
    maxDepth: int = DEFAULT_MAX_DEPTH,
    maxArrayLength: int = DEFAULT_MAX_ARRAY_LENGTH,
    maxValues: int | None = None,
) -> Message:
    """
    Parse one WebSocket text frame from a terminal.

    @param data: the frame payload (UTF-8 bytes, or already decoded text).
    @param maxDepth: the deepest nesting of objects/arrays accepted (the top object is 1).
    @param maxArrayLength: the longest array accepted, anywhere in the frame.
    @param maxValues: the most JSON values accepted in the frame, counted on the bytes before
        anything is decoded (L{countJSONValues}); C{None}: not counted.
    @return: a L{Register}, L{SendLog}, L{SendUser}, L{SendQrCode}, L{TerminalCommand} (any other
        C{cmd}, fields cleaned but untyped) or L{CommandReply} (any C{ret}).  A frame with both
        C{cmd} and C{ret} is a command.
    @raise ProtocolError: for anything else; never any other exception.
    """
    if maxValues is not None and isinstance(data, bytes):
        if countJSONValues(data, maxValues) > maxValues:
            raise ProtocolError(f"more than {maxValues} JSON values", cmd=_leadingCmd(data))
    text = _toText(data)
    value = _load(text, maxDepth)
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {_describe(value)}")
    top = _trimKeys(value)
    cmd = _cleanName(top.get("cmd"))
    ret = None if cmd is not None else _cleanName(top.get("ret"))
    ctx = _Context(cmd=cmd, ret=ret, maxDepth=maxDepth, maxArrayLength=maxArrayLength, text=text)
    if cmd is None and ret is None:
        if "cmd" in top:
            ctx.fail("must be a non-empty string of valid text", "cmd")
        if "ret" in top:
            ctx.fail("must be a non-empty string of valid text", "ret")
        ctx.fail("neither cmd nor ret")
    recordHandler = None if cmd is None else _RECORD_HANDLERS.get(cmd)
    if recordHandler is not None:
        return recordHandler(ctx, top)
    obj: dict[str, Any] = _clean(ctx, top, "", 0)
    if cmd is None:
        assert ret is not None
        return _reply(ctx, obj, ret)
    handler = _HANDLERS.get(cmd)
    if handler is not None:
        return handler(ctx, obj)
    fields = {k: v for k, v in obj.items() if k not in ("cmd", "sn")}
    return TerminalCommand(cmd=cmd, sn=_sn(ctx, obj), fields=fields)
