"""
The quarantine of L{tm20.interfaces.ILogStore} (records that can never be stored, held
verbatim), written once for both stores (see L{tm20.store._ops}).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed

from tm20.events.payloads import quarantinedEvent
from tm20.model import QuarantinedRecord
from tm20.protocol.messages import RejectedRecord
from tm20.store._dialect import Dialect
from tm20.store._ops import AppendEvents, Op, OpStore, whereAll
from tm20.store._rows import quarantineRows

__all__ = ["QUARANTINE_TABLE", "QuarantineMixin", "listQuarantine", "quarantineRecords"]

QUARANTINE_TABLE = "quarantined_records"


def quarantineRecords(rows: Sequence[tuple[Any, ...]], now: Any) -> Op[int]:
    """
    Hold C{rows} (L{quarantineRows}); one already held for the same C{(sn, source, raw)} is
    not held twice.  @return: how many were newly held (each with its event).
    """
    events = []
    for row in rows:
        result = yield (
            f"INSERT INTO {QUARANTINE_TABLE}"
            " (sn, source, raw, raw_sha256, problem, field, received_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (sn, source, raw_sha256) DO NOTHING RETURNING id",
            row,
        )
        if result.first is not None:  # not a resent record
            events.append(quarantinedEvent(result.first["id"], *row))
    if events:
        yield AppendEvents(tuple(events), now)
    return len(events)


def listQuarantine(
    d: Dialect, sn: str | None, limit: int, beforeId: int | None
) -> Op[list[QuarantinedRecord]]:
    """Newest (highest C{id}) first, C{id < beforeId}, of C{sn} (every terminal's: C{None})."""
    where, params = whereAll([("sn = %s", sn), ("id < %s", beforeId)])
    result = yield (
        f"SELECT * FROM {QUARANTINE_TABLE}{where} ORDER BY id DESC LIMIT %s",
        (*params, max(limit, 0)),
    )
    return [d.read.quarantined(row) for row in result.rows]


class QuarantineMixin(OpStore):
    """The quarantine of L{tm20.interfaces.ILogStore} for a store providing L{OpStore}."""

    def quarantineRecords(
        self, sn: str, source: str, rejected: Sequence[RejectedRecord]
    ) -> Deferred[int]:
        """See L{tm20.interfaces.ILogStore.quarantineRecords}."""
        now = self._now()
        rows = quarantineRows(sn, source, rejected, now)
        if not rows:
            return succeed(0)
        return self._runOpWithEvents(quarantineRecords(rows, now))

    def listQuarantine(
        self, sn: str | None, limit: int, beforeId: int | None
    ) -> Deferred[list[QuarantinedRecord]]:
        """See L{tm20.interfaces.ILogStore.listQuarantine}."""
        return self._runOp(False, listQuarantine(self.dialect, sn, limit, beforeId))
