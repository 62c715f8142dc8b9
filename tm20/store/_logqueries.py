"""
The reading half of L{tm20.interfaces.ILogStore} (queries and counts of punches and door
events), written once for both stores (see L{tm20.store._ops}).  Storing logs (C{addLogs},
C{writeLogBatches}: the write of the ingest service's group commit) stays in each store: its
batching is the drivers' own.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred

from tm20.model import LogQuery, StoredLog
from tm20.store._dialect import Dialect
from tm20.store._ops import Op, OpStore, inList, whereAll
from tm20.store._rows import logQueryWhere

__all__ = [
    "DOOR_TABLE",
    "LOG_TABLE",
    "LogQueryMixin",
    "countLogs",
    "countTerminalLogs",
    "queryLogs",
]

LOG_TABLE = "attendance_logs"
DOOR_TABLE = "door_events"

#: the row as the batch path writes it, then the access decision (NULL when none was asked:
#: L{tm20.services.access})
_LOG_COLUMNS = (
    "id, sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra, received_at,"
    " access_granted, access_reason"
)


def queryLogs(d: Dialect, table: str, query: LogQuery) -> Op[list[StoredLog]]:
    """Rows of C{table} (L{LOG_TABLE} or L{DOOR_TABLE}), newest first, as C{query} says."""
    where, params = logQueryWhere(query, "%s")
    result = yield (
        f"SELECT {_LOG_COLUMNS} FROM {table} {where} ORDER BY time DESC, id DESC LIMIT %s",
        (*params, max(query.limit, 0)),
    )
    return [d.read.storedLog(row) for row in result.rows]


def countLogs(sn: str | None) -> Op[int]:
    """The punches of C{sn} (of every terminal when C{None})."""
    where, params = whereAll([("sn = %s", sn)])
    result = yield (f"SELECT COUNT(*) AS n FROM {LOG_TABLE}{where}", params)
    return int(result.rows[0]["n"])


def countTerminalLogs(sn: str) -> Op[int]:
    """The punches and door events of C{sn}, together."""
    result = yield (
        f"SELECT (SELECT COUNT(*) FROM {LOG_TABLE} WHERE sn = %s)"
        f" + (SELECT COUNT(*) FROM {DOOR_TABLE} WHERE sn = %s) AS n",
        (sn, sn),
    )
    return int(result.rows[0]["n"])


def countLogsOfTerminals(sns: Sequence[str]) -> Op[dict[str, int]]:
    """The punches and door events of each of C{sns}, together (0 for those with none)."""
    counts = dict.fromkeys(sns, 0)
    if not counts:
        return counts
    marks, params = inList(sorted(counts))
    result = yield (
        f"SELECT sn, COUNT(*) AS n FROM {LOG_TABLE} WHERE sn IN {marks} GROUP BY sn"
        f" UNION ALL SELECT sn, COUNT(*) AS n FROM {DOOR_TABLE} WHERE sn IN {marks} GROUP BY sn",
        params + params,
    )
    for row in result.rows:
        counts[str(row["sn"])] += int(row["n"])
    return counts


class LogQueryMixin(OpStore):
    """The queries of L{tm20.interfaces.ILogStore} for a store providing L{OpStore}."""

    def queryLogs(self, query: LogQuery) -> Deferred[list[StoredLog]]:
        """See L{tm20.interfaces.ILogStore.queryLogs}."""
        return self._runOp(False, queryLogs(self.dialect, LOG_TABLE, query))

    def queryDoorEvents(self, query: LogQuery) -> Deferred[list[StoredLog]]:
        """See L{tm20.interfaces.ILogStore.queryDoorEvents}."""
        return self._runOp(False, queryLogs(self.dialect, DOOR_TABLE, query))

    def countLogs(self, sn: str | None) -> Deferred[int]:
        """See L{tm20.interfaces.ILogStore.countLogs}."""
        return self._runOp(False, countLogs(sn))
