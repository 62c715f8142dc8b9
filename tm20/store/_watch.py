"""
L{tm20.interfaces.IWatchStore} (what the server watches on each terminal), written once for both
stores (see L{tm20.store._ops}).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail

from tm20.events.model import NewEvent
from tm20.model import (
    COMMAND_WAITING,
    WATCH_COLUMNS,
    WATCH_TIMESTAMPS,
    TerminalWatch,
    WatchedTerminal,
)
from tm20.store._dialect import Dialect
from tm20.store._logqueries import countLogsOfTerminals, countTerminalLogs
from tm20.store._ops import AppendEvents, Op, OpStore, inList

__all__ = ["WatchStoreMixin", "getWatch", "listWatches", "updateWatch", "watchPage"]

#: The sweep's page: every terminal after an C{sn}, with its watch fields (C{NULL} without).
_WATCH_PAGE = (
    "SELECT t.sn, t.approved, t.active, t.last_seen, w.silent_after, w.silent_since,"
    " w.log_gap, w.clock_drift"
    " FROM terminals t LEFT JOIN terminal_watch w ON w.sn = t.sn"
    " WHERE t.sn > %s ORDER BY t.sn LIMIT %s"
)


def getWatch(d: Dialect, sn: str) -> Op[TerminalWatch | None]:
    row = (yield ("SELECT * FROM terminal_watch WHERE sn = %s", (sn,))).first
    return None if row is None else d.read.watch(row)


def listWatches(d: Dialect) -> Op[list[TerminalWatch]]:
    result = yield ("SELECT * FROM terminal_watch ORDER BY sn", ())
    return [d.read.watch(row) for row in result.rows]


def updateWatch(
    d: Dialect, sn: str, columns: Mapping[str, Any], events: Sequence[NewEvent], now: Any
) -> Op[TerminalWatch | None]:
    """
    Set C{columns} (names from L{WATCH_COLUMNS} only, never the caller's) of C{sn}'s row,
    creating it, and append C{events}; C{None} (nothing written) when there is no terminal.
    """
    if (yield (f"SELECT sn FROM terminals WHERE sn = %s{d.forShare}", (sn,))).first is None:
        return None
    yield ("INSERT INTO terminal_watch (sn) VALUES (%s) ON CONFLICT (sn) DO NOTHING", (sn,))
    if columns:
        names = sorted(columns)
        assignments = ", ".join(f"{column} = %s" for column in names)
        yield (
            f"UPDATE terminal_watch SET {assignments} WHERE sn = %s",
            (*[columns[column] for column in names], sn),
        )
    watch = yield from getWatch(d, sn)
    if events:
        yield AppendEvents(tuple(events), now)
    return watch


#: A change of one terminal's watch: its C{sn}, the columns to set, the events to append.
WatchChange = tuple[str, Mapping[str, Any], Sequence[NewEvent]]


def updateWatches(d: Dialect, changes: Sequence[WatchChange], now: Any) -> Op[list[bool]]:
    """
    L{updateWatch} of several terminals in one transaction, one upsert per set of columns
    (changes of the same C{sn} merged in order); whether each C{sn} is a terminal.
    """
    merged: dict[str, dict[str, Any]] = {}
    for sn, columns, _ in changes:
        merged.setdefault(sn, {}).update(columns)
    if not merged:
        return []
    marks, params = inList(sorted(merged))
    rows = (yield (f"SELECT sn FROM terminals WHERE sn IN {marks}{d.forShare}", params)).rows
    known = {str(row["sn"]) for row in rows}
    byColumns: dict[tuple[str, ...], list[str]] = {}
    for sn in sorted(known):
        byColumns.setdefault(tuple(sorted(merged[sn])), []).append(sn)
    for names, sns in byColumns.items():
        row = "(" + ", ".join(["%s"] * (1 + len(names))) + ")"
        conflict = (
            "DO UPDATE SET " + ", ".join(f"{name} = excluded.{name}" for name in names)
            if names
            else "DO NOTHING"
        )
        yield (
            f"INSERT INTO terminal_watch (sn{''.join(', ' + name for name in names)})"
            f" VALUES {', '.join([row] * len(sns))} ON CONFLICT (sn) {conflict}",
            tuple(value for sn in sns for value in (sn, *(merged[sn][n] for n in names))),
        )
    events = tuple(event for sn, _, batch in changes if sn in known for event in batch)
    if events:
        yield AppendEvents(events, now)
    return [sn in known for sn, _, _ in changes]


def watchPage(d: Dialect, afterSn: str | None, limit: int) -> Op[list[WatchedTerminal]]:
    result = yield (_WATCH_PAGE, (afterSn or "", limit))
    return [d.read.watched(row) for row in result.rows]


def countPendingCommands() -> Op[int]:
    result = yield ("SELECT COUNT(*) AS n FROM commands WHERE status IN (%s, %s)", COMMAND_WAITING)
    return int(result.rows[0]["n"])


class WatchStoreMixin(OpStore):
    """L{tm20.interfaces.IWatchStore} for a store providing L{OpStore}."""

    def getWatch(self, sn: str) -> Deferred[TerminalWatch | None]:
        """See L{tm20.interfaces.IWatchStore.getWatch}."""
        return self._runOp(False, getWatch(self.dialect, sn))

    def listWatches(self) -> Deferred[list[TerminalWatch]]:
        """See L{tm20.interfaces.IWatchStore.listWatches}."""
        return self._runOp(False, listWatches(self.dialect))

    def updateWatch(
        self, sn: str, changes: Mapping[str, Any], events: Sequence[NewEvent] = ()
    ) -> Deferred[TerminalWatch | None]:
        """See L{tm20.interfaces.IWatchStore.updateWatch}."""
        unknown = sorted(set(changes) - set(WATCH_COLUMNS))
        if unknown:
            return fail(ValueError(f"unknown watch fields {unknown}"))
        columns = self._watchColumns(changes)
        events = list(events)
        op = updateWatch(self.dialect, sn, columns, events, self._now())
        return self._runOpWithEvents(op) if events else self._runOp(True, op)

    def updateWatches(
        self, changes: Sequence[tuple[str, Mapping[str, Any], Sequence[NewEvent]]]
    ) -> Deferred[list[bool]]:
        """See L{tm20.interfaces.IWatchStore.updateWatches}."""
        unknown = sorted({f for _, fields, _ in changes for f in fields} - set(WATCH_COLUMNS))
        if unknown:
            return fail(ValueError(f"unknown watch fields {unknown}"))
        rows = [(sn, self._watchColumns(fields), list(events)) for sn, fields, events in changes]
        op = updateWatches(self.dialect, rows, self._now())
        if any(events for _, _, events in rows):
            return self._runOpWithEvents(op)
        return self._runOp(True, op)

    def _watchColumns(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        return {
            WATCH_COLUMNS[field]: (
                self.dialect.timestamp(value)
                if field in WATCH_TIMESTAMPS and value is not None
                else value
            )
            for field, value in changes.items()
        }

    def watchPage(self, afterSn: str | None, limit: int) -> Deferred[list[WatchedTerminal]]:
        """See L{tm20.interfaces.IWatchStore.watchPage}."""
        return self._runOp(False, watchPage(self.dialect, afterSn, limit))

    def countPendingCommands(self) -> Deferred[int]:
        """See L{tm20.interfaces.IWatchStore.countPendingCommands}."""
        return self._runOp(False, countPendingCommands())

    def countTerminalLogs(self, sn: str) -> Deferred[int]:
        """See L{tm20.interfaces.IWatchStore.countTerminalLogs}."""
        return self._runOp(False, countTerminalLogs(sn))

    def countLogsOfTerminals(self, sns: Sequence[str]) -> Deferred[dict[str, int]]:
        """See L{tm20.interfaces.IWatchStore.countLogsOfTerminals}."""
        return self._runOp(False, countLogsOfTerminals(list(sns)), single=True)
