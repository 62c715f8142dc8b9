"""
Helpers shared by the stores to turn values into columns and rows back into L{tm20.model} values.

Nothing here touches a database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from twisted.python.failure import Failure

from tm20.model import (
    COMMAND_FINAL,
    COMMAND_STATUSES,
    ApiToken,
    AuditEntry,
    Credential,
    LogInsertResult,
    LogQuery,
    QuarantinedRecord,
    StoredCommand,
    StoredLog,
    Terminal,
    TerminalWatch,
    User,
    WatchedTerminal,
)
from tm20.protocol.messages import LogRecord, RejectedRecord
from tm20.protocol.storable import requireStorableLog, storableText

#: Command statuses after which a command is done (C{finishedAt} is set).
FINAL_COMMAND_STATUSES = COMMAND_FINAL

#: The C{devinfo} keys copied into their own terminal columns.
DEVINFO_COLUMNS = ("mac", "modelname", "firmware")


def utcFromSeconds(seconds: float) -> datetime:
    """A timezone-aware UTC C{datetime} for a POSIX timestamp (C{IReactorTime.seconds()})."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def formatTimestamp(when: datetime) -> str:
    """
    ISO-8601 text in UTC with microseconds and offset, e.g.
    C{2026-04-30T11:59:37.000000+00:00}: fixed width, so text order is time order.
    """
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def parseTimestamp(text: str | None) -> datetime | None:
    """The aware UTC C{datetime} for text made by L{formatTimestamp} (C{None} stays C{None})."""
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


#: C{json.dumps} with options builds an encoder per call: this one is built once.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumpJSON(value: Any) -> str:
    """Compact JSON text; C{Mapping}s (e.g. frozen attrs fields) are copied into dicts."""
    if isinstance(value, Mapping):
        value = dict(value)
    return _COMPACT.encode(value)


def loadJSONObject(text: str | None) -> dict[str, Any]:
    """A JSON object column as a dict (C{None} or a non-object gives C{{}})."""
    if text is None:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def devinfoColumn(devinfo: Mapping[str, Any], key: str) -> str | None:
    """C{devinfo[key]} as text for its own column, or C{None} when absent or empty."""
    value = devinfo.get(key)
    if value is None or value == "":
        return None
    return str(value)


def _warnings(value: Any) -> tuple[Mapping[str, str], ...]:
    """The C{warnings} column (JSON text in SQLite, decoded by psycopg2) as a tuple of dicts."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        return ()
    return tuple(dict(w) for w in value if isinstance(w, dict))


def checkCommandStatus(status: str) -> None:
    """@raise ValueError: C{status} is not one of L{tm20.model.COMMAND_STATUSES}."""
    if status not in COMMAND_STATUSES:
        raise ValueError(f"unknown command status {status!r}; expected one of {COMMAND_STATUSES}")


def checkSettle(status: str, only: Collection[str]) -> None:
    """
    Check the arguments of C{IStore.settleCommand}: a final C{status}, from at least one known
    status.

    @raise ValueError: when they are not.
    """
    checkCommandStatus(status)
    for old in only:
        checkCommandStatus(old)
    if status not in FINAL_COMMAND_STATUSES or not only:
        raise ValueError("settleCommand sets a final status from at least one status")


_Item = TypeVar("_Item")


class StagedBatch(Generic[_Item]):
    """One batch of a log flush, its records made into the store's rows."""

    __slots__ = ("sn", "items")

    def __init__(self, sn: str, items: list[_Item]) -> None:
        self.sn = sn
        self.items = items

    def __len__(self) -> int:
        return len(self.items)


def onlyResult(results: Sequence[LogInsertResult | Failure]) -> LogInsertResult | Failure:
    """The result of a one-batch L{tm20.interfaces.ILogBatchWriter.writeLogBatches}."""
    return results[0]


__all__ = [
    "StagedBatch",
    "onlyResult",
    "DEVINFO_COLUMNS",
    "FINAL_COMMAND_STATUSES",
    "checkSettle",
    "checkCommandStatus",
    "devinfoColumn",
    "dumpJSON",
    "formatTimestamp",
    "loadJSONObject",
    "parseTimestamp",
    "utcFromSeconds",
]


def logQueryWhere(query: LogQuery, placeholder: str) -> tuple[str, list[Any]]:
    """
    The C{WHERE} clause (or C{""}) and its parameters for a L{LogQuery}, with C{placeholder}
    the driver's parameter marker (C{?} for sqlite3, C{%s} for psycopg2).  Rows are read newest
    first: the cursor C{before} selects rows strictly older than C{(time, id)}.
    """
    conditions: list[str] = []
    params: list[Any] = []
    for column, op, value in (
        ("sn", "=", query.sn),
        ("enrollid", "=", query.enrollid),
        ("time", ">=", query.since),
        ("time", "<=", query.until),
        ("mode", "=", query.mode),
        ("inout", "=", query.inout),
    ):
        if value is not None:
            conditions.append(f"{column} {op} {placeholder}")
            params.append(value)
    if query.access is not None:
        if query.access == "none":
            conditions.append("access_granted IS NULL")
        elif query.access == "decided":
            conditions.append("access_granted IS NOT NULL")
        else:
            conditions.append(f"access_granted = {placeholder}")
            params.append(query.access == "granted")
    if query.accessReason is not None:
        conditions.append(f"access_reason = {placeholder}")
        params.append(query.accessReason)
    if query.before is not None:
        conditions.append(f"(time, id) < ({placeholder}, {placeholder})")
        params.extend(query.before)
    return (f"WHERE {' AND '.join(conditions)}" if conditions else ""), params


def quarantineRows(
    sn: str, source: str, rejected: Sequence[RejectedRecord], receivedAt: Any
) -> list[tuple[Any, ...]]:
    """
    The C{quarantined_records} rows of C{rejected}: C{(sn, source, raw, raw_sha256, problem,
    field, received_at)}, one per distinct C{raw} text.
    """
    rows: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    for record in rejected:
        raw = storableText(record.raw)
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        field = None if record.field is None else storableText(record.field)
        rows.append((sn, source, raw, digest, storableText(record.problem), field, receivedAt))
    return rows


class RowReader:
    """
    Rows to model values, the same for every backend; only how a timestamp and a JSON object
    come out of the driver differs (SQLite: text; PostgreSQL: C{datetime} and decoded JSON).
    """

    def __init__(
        self,
        time: Callable[[Any], datetime | None],
        jsonObject: Callable[[Any], dict[str, Any]],
    ) -> None:
        self._time = time
        self._json = jsonObject

    def terminal(self, row: Mapping[str, Any]) -> Terminal:
        return Terminal(
            sn=row["sn"],
            cpusn=row["cpusn"],
            mac=row["mac"],
            modelname=row["modelname"],
            firmware=row["firmware"],
            devinfo=self._json(row["devinfo"]),
            name=row["name"],
            approved=bool(row["approved"]),
            active=bool(row["active"]),
            timezone=row["timezone"],
            firstSeen=self._time(row["first_seen"]),
            lastSeen=self._time(row["last_seen"]),
            boundCpusn=row["bound_cpusn"],
            boundMac=row["bound_mac"],
            boundAt=self._time(row["bound_at"]),
            identityMismatch=(
                None if row["identity_mismatch"] is None else self._json(row["identity_mismatch"])
            ),
            secretHash=row["secret_hash"],
            registrations=int(row["registrations"]),
        )

    def watch(self, row: Mapping[str, Any]) -> TerminalWatch:
        return TerminalWatch(
            sn=row["sn"],
            silentAfter=row["silent_after"],
            silentSince=self._time(row["silent_since"]),
            logGap=int(row["log_gap"]),
            logGapSource=row["log_gap_source"],
            logGapSince=self._time(row["log_gap_since"]),
            logGapFrom=row["log_gap_from"],
            logGapTo=row["log_gap_to"],
            logsRecovered=int(row["logs_recovered"]),
            lastRecoveryAt=self._time(row["last_recovery_at"]),
            clockDrift=row["clock_drift"],
            clockCheckedAt=self._time(row["clock_checked_at"]),
            clockCorrectedAt=self._time(row["clock_corrected_at"]),
        )

    def watched(self, row: Mapping[str, Any]) -> WatchedTerminal:
        return WatchedTerminal(
            sn=row["sn"],
            approved=bool(row["approved"]),
            active=bool(row["active"]),
            lastSeen=self._time(row["last_seen"]),
            silentAfter=row["silent_after"],
            silentSince=self._time(row["silent_since"]),
            logGap=int(row["log_gap"] or 0),
            clockDrift=row["clock_drift"],
        )

    def credential(self, row: Mapping[str, Any]) -> Credential:
        return Credential(
            backupnum=row["backupnum"],
            record=json.loads(row["record_json"]),
            updatedAt=self._time(row["updated_at"]),
        )

    def user(self, row: Mapping[str, Any], credentials: Iterable[Credential]) -> User:
        return User(
            sn=row["sn"],
            enrollid=row["enrollid"],
            name=row["name"],
            admin=row["admin"],
            enabled=bool(row["enabled"]),
            credentials=tuple(credentials),
            updatedAt=self._time(row["updated_at"]),
        )

    def storedLog(self, row: Mapping[str, Any]) -> StoredLog:
        return StoredLog(
            id=row["id"],
            sn=row["sn"],
            enrollid=row["enrollid"],
            time=row["time"],
            mode=row["mode"],
            inout=row["inout"],
            event=row["event"],
            temp=row["temp"],
            verifymode=row["verifymode"],
            image=row["image"],
            extra=self._json(row["extra"]),
            receivedAt=self._time(row["received_at"]),
            accessGranted=None if row["access_granted"] is None else bool(row["access_granted"]),
            accessReason=row["access_reason"],
        )

    def quarantined(self, row: Mapping[str, Any]) -> QuarantinedRecord:
        return QuarantinedRecord(
            id=row["id"],
            sn=row["sn"],
            source=row["source"],
            raw=row["raw"],
            problem=row["problem"],
            field=row["field"],
            receivedAt=self._time(row["received_at"]),
        )

    def command(self, row: Mapping[str, Any]) -> StoredCommand:
        reply = row["reply"]
        return StoredCommand(
            id=row["id"],
            sn=row["sn"],
            name=row["name"],
            payload=self._json(row["payload"]),
            status=row["status"],
            reply=None if reply is None else self._json(reply),
            attempts=row["attempts"],
            maxAttempts=row["max_attempts"],
            actor=row["actor"],
            createdAt=self._time(row["created_at"]),
            sentAt=self._time(row["sent_at"]),
            finishedAt=self._time(row["finished_at"]),
            expiresAt=self._time(row["expires_at"]),
            warnings=_warnings(row["warnings"]),
        )

    def apiToken(self, row: Mapping[str, Any]) -> ApiToken:
        return ApiToken(
            name=row["name"],
            tokenHash=row["token_hash"],
            scopes=tuple(json.loads(row["scopes"])),
            createdAt=self._time(row["created_at"]),
        )

    def auditEntry(self, row: Mapping[str, Any]) -> AuditEntry:
        return AuditEntry(
            id=row["id"],
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            detail=self._json(row["detail"]),
            at=self._time(row["at"]),
        )


def requireStorableRecord(record: LogRecord) -> None:
    """L{requireStorableLog} of a record's fields (C{TypeError}/C{ValueError} when it is not)."""
    requireStorableLog(
        record.enrollid,
        record.mode,
        record.inout,
        record.event,
        record.verifymode,
        record.image,
    )


def logRecordColumns(record: LogRecord) -> tuple[Any, ...]:
    """A record's columns of C{logs}, in order: C{enrollid, time, mode, inout, event, temp,
    verifymode, image, extra} (JSON text)."""
    return (
        record.enrollid,
        record.time,
        record.mode,
        record.inout,
        record.event,
        record.temp,
        record.verifymode,
        record.image,
        dumpJSON(record.extra),
    )
