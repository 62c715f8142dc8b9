"""
What each event says: the payload builders the stores call inside the transaction that writes
the fact.  Payloads carry the sn, the ids that identify the fact, terminal-local time and UTC,
and nothing secret (no credential record, no photo, no secret hash).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from tm20.events.model import NewEvent
from tm20.model import PersonSync, StoredCommand, Terminal


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat(timespec="microseconds")


def localToUTC(time: str, timezone: str | None) -> str | None:
    """
    A terminal-local C{YYYY-MM-DD HH:MM:SS} in UTC (ISO 8601), read in C{timezone} (C{None}:
    the server's own zone); C{None} when the time or the zone cannot be read.

    An ambiguous or skipped local time (a DST transition) is read with C{fold=0}: the offset in
    force before the transition.  The canonical form takes a shortcut: the UTC offset of its
    zone and hour, remembered when the whole hour has one offset (L{_hourOffset}), so most logs
    cost one subtraction; when that offset is whole hours (most zones), the hour's UTC text is
    remembered too and a log costs one concatenation (its minutes and seconds are the same in
    UTC).  The result is the same text (property tests check it against C{strptime}).
    """
    if (
        len(time) == 19
        and time[10] == " "
        and time[13] == ":"
        and time[16] == ":"
        and time.isascii()
    ):
        key = (timezone, time[:13])
        hour = _offsets.get(key)
        if hour is None:
            hour = _hourUTC(time, timezone)
            if len(_offsets) >= _OFFSETS_KEPT:
                _offsets.clear()
            _offsets[key] = hour
        offset, utcHour = hour
        if utcHour is not None:
            rest = time[13:]
            if rest in _MINUTES_SECONDS:
                return f"{utcHour}{rest}+00:00"
            return None  # not a valid minute and second: what datetime refuses below
        if offset is not _MIXED:
            try:
                return (datetime.fromisoformat(time) - offset).isoformat() + "+00:00"
            except ValueError:
                return None
    return _localToUTC(time, timezone)


def _localToUTC(time: str, timezone: str | None) -> str | None:
    """L{localToUTC} without the shortcut."""
    try:
        if (
            len(time) == 19
            and time[10] == " "
            and time[13] == ":"
            and time[16] == ":"
            and time.isascii()
        ):
            # the canonical form (what the parser stores): read by C, not by strptime
            local = datetime.fromisoformat(time)
        else:
            local = datetime.strptime(time, "%Y-%m-%d %H:%M:%S")
        if timezone is None:
            aware = local.astimezone()
        else:
            aware = local.replace(tzinfo=_zone(timezone))
    except (ValueError, ZoneInfoNotFoundError, OSError, TypeError):
        return None
    return aware.astimezone(UTC).isoformat()


#: L{_hourOffset}'s answer when an hour has no single offset (or cannot be read).
_MIXED = timedelta(days=99)

#: The offsets remembered, by zone and hour (C{YYYY-MM-DD HH}), with the hour's UTC text when
#: known (L{_hourUTC}); forgotten all at once when full.
_offsets: dict[tuple[str | None, str], tuple[timedelta, str | None]] = {}
_OFFSETS_KEPT = 4096

#: Every valid C{:MM:SS} tail of a canonical time.
_MINUTES_SECONDS = frozenset(f":{m:02d}:{s:02d}" for m in range(60) for s in range(60))

_HOUR = timedelta(hours=1)


def _hourUTC(time: str, timezone: str | None) -> tuple[timedelta, str | None]:
    """
    L{_hourOffset} of C{time}'s hour and, when that offset is a whole number of hours, the
    hour in UTC as ISO 8601 text (C{YYYY-MM-DDTHH}: a time of the hour in UTC is that text
    followed by its own C{:MM:SS}); else C{None}.
    """
    offset = _hourOffset(time, timezone)
    if offset is _MIXED or offset % _HOUR:
        return offset, None
    try:
        start = datetime.fromisoformat(time[:13] + ":00:00")
        return offset, (start - offset).isoformat()[:13]
    except (ValueError, OverflowError):
        return offset, None


def _hourOffset(time: str, timezone: str | None) -> timedelta:
    """
    The UTC offset of C{time}'s hour in C{timezone} if the whole hour has that one offset
    (its first and last second, either fold), else L{_MIXED}.
    """
    try:
        start = datetime.fromisoformat(time[:13] + ":00:00")
        zone = None if timezone is None else _zone(timezone)
        offsets = set()
        for when in (start, start + timedelta(seconds=3599)):
            for fold in (0, 1):
                local = when.replace(fold=fold)
                aware = local.astimezone() if zone is None else local.replace(tzinfo=zone)
                offsets.add(aware.utcoffset())
    except (ValueError, ZoneInfoNotFoundError, OSError, TypeError, OverflowError):
        return _MIXED
    if len(offsets) != 1:
        return _MIXED
    offset = offsets.pop()
    return _MIXED if offset is None else offset


_zones: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    """C{ZoneInfo(name)}, remembered (the lookup is most of the cost of a conversion)."""
    zone = _zones.get(name)
    if zone is None:
        zone = ZoneInfo(name)
        if len(_zones) < 1024:
            _zones[name] = zone
    return zone


#: How a payload field is made from its source column(s): the column as it is (text, integer,
#: real or null) ...
VALUE = "value"
#: ... C{true} when the column is not null, else C{false} ...
PRESENT = "present"
#: ... the column's JSON text, embedded as JSON ...
JSON = "json"
#: ... the columns as a JSON array.
ARRAY = "array"


@attrs.frozen
class PayloadField:
    """One field of an event payload: its name, the row's column(s) it comes from, how."""

    name: str
    source: tuple[str, ...]
    encoding: str = VALUE


#: The payload of a stored log's event (C{log.created}, C{door.event}), field by field, in
#: order: declared once here.  Each store's SQL builds it from the row just inserted
#: (L{tm20.store._dialect.logEventJSON}), L{logEvent} from a record; L{logEventText} writes the
#: same text by hand (it is per-record hot on the INSERT road; a test checks it against
#: L{logEvent}).  The row's columns: those of the log tables, C{id} (the log's id), C{utc} (its
#: time in UTC, L{localToUTC} in the terminal's zone) and C{received_at} (when the server
#: stored it, ISO 8601 text).
LOG_EVENT_FIELDS: tuple[PayloadField, ...] = (
    PayloadField("sn", ("sn",)),
    PayloadField("logId", ("id",)),
    PayloadField("enrollid", ("enrollid",)),
    PayloadField("time", ("time",)),
    PayloadField("timeUTC", ("utc",)),
    PayloadField("mode", ("mode",)),
    PayloadField("inout", ("inout",)),
    PayloadField("event", ("event",)),
    PayloadField("temp", ("temp",)),
    PayloadField("verifymode", ("verifymode",)),
    PayloadField("hasImage", ("image",), PRESENT),
    PayloadField("extra", ("extra",), JSON),
    PayloadField("key", ("sn", "enrollid", "time", "mode", "inout", "event"), ARRAY),
    PayloadField("receivedAt", ("received_at",)),
)


#: The types of a stored log's event: a door event (C{enrollid} 0), a punch.
DOOR_EVENT = "door.event"
LOG_CREATED = "log.created"


def logEventType(enrollid: int) -> str:
    """The type of a stored log's event: L{DOOR_EVENT} for C{enrollid} 0, else L{LOG_CREATED}."""
    return DOOR_EVENT if enrollid == 0 else LOG_CREATED


#: The arguments of L{_logEventPayload} that are not the record's own fields, by column.
_LOG_EVENT_ARGUMENTS = {"sn": "sn", "id": "logId", "utc": "utc", "received_at": "receivedAt"}


def _pythonSource(column: str) -> str:
    return _LOG_EVENT_ARGUMENTS.get(column) or f"record.get({column!r})"


def _pythonField(field: PayloadField) -> str:
    """The Python expression of L{PayloadField} (the record's C{extra} is a mapping)."""
    if field.encoding == VALUE:
        return _pythonSource(field.source[0])
    if field.encoding == PRESENT:
        return f"{_pythonSource(field.source[0])} is not None"
    if field.encoding == JSON:
        return f"dict({_pythonSource(field.source[0])} or {{}})"
    if field.encoding == ARRAY:
        return f"[{', '.join(_pythonSource(c) for c in field.source)}]"
    raise ValueError(f"unknown payload encoding {field.encoding!r}")


def _payloadBuilder(fields: tuple[PayloadField, ...]) -> Any:
    """
    The function C{(sn, logId, record, utc, receivedAt) -> payload} of C{fields}, written
    from them once, at import (a dict display, as fast as one written by hand).
    """
    items = ", ".join(f"{field.name!r}: {_pythonField(field)}" for field in fields)
    namespace: dict[str, Any] = {}
    exec(f"def build(sn, logId, record, utc, receivedAt):\n    return {{{items}}}\n", namespace)
    return namespace["build"]


#: L{LOG_EVENT_FIELDS}'s payload from a log record's fields (see L{logEvent}).
_logEventPayload = _payloadBuilder(LOG_EVENT_FIELDS)


#: Encodes as L{tm20.store._rows.dumpJSON} does (compact, not ASCII-only).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def logEventText(
    sn: str,
    logId: int,
    enrollid: int,
    time: str,
    mode: int,
    inout: int,
    event: int,
    temp: float | None,
    verifymode: int | None,
    hasImage: bool,
    extraJSON: str,
    receivedAt: str,
    timezone: str | None,
) -> tuple[str, str]:
    """
    The type and JSON text of L{logEvent}'s event for a row just inserted (L{LOG_EVENT_FIELDS},
    written by hand: this runs once per log stored on PostgreSQL's INSERT road, without the
    intermediate dict).

    @param extraJSON: the row's C{extra} as compact JSON text (C{"{}"} when empty).
    """
    sn_ = _encode(sn)
    time_ = _encode(time)
    utc = localToUTC(time, timezone)
    fields = (
        f'"enrollid":{enrollid:d},"time":{time_},'
        f'"timeUTC":{"null" if utc is None else _encode(utc)},'
        f'"mode":{mode:d},"inout":{inout:d},"event":{event:d}'
    )
    text = (
        f'{{"sn":{sn_},"logId":{logId:d},{fields},'
        f'"temp":{"null" if temp is None else _encode(temp)},'
        f'"verifymode":{"null" if verifymode is None else format(verifymode, "d")},'
        f'"hasImage":{"true" if hasImage else "false"},"extra":{extraJSON},'
        f'"key":[{sn_},{enrollid:d},{time_},{mode:d},{inout:d},{event:d}],'
        f'"receivedAt":{_encode(receivedAt)}}}'
    )
    return logEventType(enrollid), text


def logEvent(
    sn: str,
    logId: int,
    record: Mapping[str, Any],
    receivedAt: str,
    timezone: str | None,
) -> NewEvent:
    """
    C{log.created} (a punch) or C{door.event} (C{enrollid} 0) for a row just inserted.

    The payload is L{LOG_EVENT_FIELDS}'s.

    @param record: the row's fields (C{enrollid}, C{time}, C{mode}, C{inout}, C{event},
        C{temp}, C{verifymode}, C{image}, C{extra}).
    @param receivedAt: when the server stored it (ISO 8601, UTC).
    @param timezone: the terminal's time zone (for C{timeUTC}; C{None}: the server's).
    """
    time = record["time"]
    payload = _logEventPayload(sn, logId, record, localToUTC(time, timezone), receivedAt)
    return NewEvent(logEventType(record["enrollid"]), sn, payload)


def quarantinedEvent(
    quarantineId: int,
    sn: str,
    source: str,
    raw: str,
    digest: str,
    problem: str,
    field: str | None,
    receivedAt: Any,
) -> NewEvent:
    """
    C{log.quarantined}: a record a terminal sent (C{source}: C{sendlog} or C{senduser}) that can
    never be stored was held in the quarantine.  Not its text (a C{senduser} record may carry a
    template): its id in the quarantine API, the problem and the field.
    """
    return NewEvent(
        "log.quarantined",
        sn,
        {
            "sn": sn,
            "quarantineId": quarantineId,
            "source": source,
            "problem": problem,
            "field": field,
            "receivedAt": receivedAt if isinstance(receivedAt, str) else _iso(receivedAt),
        },
    )


def terminalPayload(terminal: Terminal) -> dict[str, Any]:
    """What terminal events say about the terminal (never its secret)."""
    return {
        "sn": terminal.sn,
        "name": terminal.name,
        "approved": terminal.approved,
        "active": terminal.active,
        "timezone": terminal.timezone,
        "cpusn": terminal.cpusn,
        "mac": terminal.mac,
        "modelname": terminal.modelname,
        "firmware": terminal.firmware,
        "firstSeen": _iso(terminal.firstSeen),
        "lastSeen": _iso(terminal.lastSeen),
    }


def terminalEvent(kind: str, terminal: Terminal, **extra: Any) -> NewEvent:
    """C{terminal.<kind>} with the terminal's fields and C{extra}."""
    return NewEvent(f"terminal.{kind}", terminal.sn, {**terminalPayload(terminal), **extra})


def firstRegistrationEvent(before: Terminal | None, after: Terminal) -> NewEvent | None:
    """
    C{terminal.registered} (approved) or C{terminal.pending} when C{after} is a terminal's first
    registration (it did not exist, or an operator pre-registered it and it never connected).
    """
    if before is not None and before.firstSeen is not None:
        return None
    return terminalEvent("registered" if after.approved else "pending", after)


def flaggedEvent(terminal: Terminal) -> NewEvent:
    """C{terminal.flagged}: a refused identity claim (what was claimed, from where)."""
    return terminalEvent("flagged", terminal, mismatch=dict(terminal.identityMismatch or {}))


def updatedEvent(terminal: Terminal, changed: list[str]) -> NewEvent:
    """C{terminal.updated}: an operator changed C{changed} (field names)."""
    return terminalEvent("updated", terminal, changed=sorted(changed))


def userEvent(kind: str, sn: str, enrollid: int, name: str | None = None, **extra: Any) -> NewEvent:
    """C{user.<kind>}: C{enrolled} (a terminal sent it), C{changed}, C{deleted} (the API)."""
    payload: dict[str, Any] = {"sn": sn, "enrollid": enrollid, "name": name}
    payload.update(extra)
    return NewEvent(f"user.{kind}", sn, payload)


def commandEvent(command: StoredCommand) -> NewEvent:
    """C{command.finished}: a command reached its final status."""
    return NewEvent(
        "command.finished",
        command.sn,
        {
            "sn": command.sn,
            "commandId": command.id,
            "command": command.name,
            "status": command.status,
            "attempts": command.attempts,
            "actor": command.actor,
            # only the outcome: a reply may carry credential records
            "reply": None
            if command.reply is None
            else {k: command.reply[k] for k in ("result", "reason") if k in command.reply},
            "createdAt": _iso(command.createdAt),
            "finishedAt": _iso(command.finishedAt),
        },
    )


def connectionEvent(
    connected: bool,
    sn: str,
    peer: str | None,
    code: int | None = None,
    reason: str | None = None,
) -> NewEvent:
    """
    C{terminal.connected} / C{terminal.disconnected} (with the WebSocket close C{code} and
    C{reason} when the connection was closed by a handshake; C{None} when it was just lost).
    """
    payload: dict[str, Any] = {"sn": sn, "peer": peer}
    if not connected:
        payload["code"] = code if isinstance(code, int) else None
        payload["reason"] = reason if isinstance(reason, str) else None
    return NewEvent("terminal.connected" if connected else "terminal.disconnected", sn, payload)


__all__ = [
    "ARRAY",
    "DOOR_EVENT",
    "LOG_CREATED",
    "JSON",
    "LOG_EVENT_FIELDS",
    "PRESENT",
    "PayloadField",
    "VALUE",
    "logEventType",
    "accessEvent",
    "commandEvent",
    "connectionEvent",
    "firstRegistrationEvent",
    "flaggedEvent",
    "localToUTC",
    "logEventText",
    "logEvent",
    "quarantinedEvent",
    "terminalEvent",
    "terminalPayload",
    "updatedEvent",
    "userEvent",
]


def watchEvent(type: str, sn: str, **data: Any) -> NewEvent:
    """
    An event of what the server watches on a terminal by itself (C{terminal.silent},
    C{terminal.recovered}, C{terminal.logs_missing}, C{terminal.logs_recovered},
    C{terminal.clock_drift}), written in the transaction that records the state.
    """
    return NewEvent(type, sn, {"sn": sn, **data})


def personSyncEvent(sync: PersonSync, previous: str | None) -> NewEvent:
    """
    C{person.synced} (every command of the person on the terminal succeeded, or it already held
    it) or C{person.sync_failed} (a command failed: its name and the reply's result and reason;
    or the terminal is full).  Never a credential record.
    """
    detail = dict(sync.detail)
    reply = detail.get("reply")
    if isinstance(reply, dict):
        detail["reply"] = {k: reply[k] for k in ("result", "reason") if k in reply}
    kind = "person.synced" if sync.state == "synced" else "person.sync_failed"
    return NewEvent(
        kind,
        sync.sn,
        {
            "sn": sync.sn,
            "enrollid": sync.enrollid,
            "state": sync.state,
            "previous": previous,
            "detail": detail,
        },
    )


def accessEvent(
    sn: str,
    kind: str,
    decision: Any,
    decidedAt: str,
    *,
    logId: int | None = None,
    decisionId: int | None = None,
    time: str | None = None,
    timezone: str | None = None,
    replaces: bool = False,
) -> NewEvent:
    """
    C{access.granted} / C{access.denied}: a decision taken at door C{sn}, written with the log
    (C{kind} C{log}: C{logId}) or the code decision (C{qrcode}, C{pin}: C{decisionId}) it
    belongs to.  C{replaces}: a reply that had to fall back after the first decision was
    written (the last event of a log or decision is what the door did).  Never the code text.
    """
    payload = {
        "sn": sn,
        "kind": kind,
        "granted": bool(decision.granted),
        "reason": decision.reason,
        "enrollid": decision.enrollid,
        "ruleId": decision.ruleId,
        "qrcodeId": decision.qrcodeId,
        "logId": logId,
        "decisionId": decisionId,
        "time": time,
        "timeUTC": None if time is None else localToUTC(time, timezone),
        "decidedAt": decidedAt,
        "replaces": replaces,
    }
    return NewEvent("access.granted" if decision.granted else "access.denied", sn, payload)
