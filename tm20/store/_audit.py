"""
L{tm20.interfaces.IAuditStore}, written once for both stores (see L{tm20.store._ops}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail

from tm20.model import AuditEntry
from tm20.store._dialect import Dialect
from tm20.store._ops import Op, OpStore, whereAll
from tm20.store._rows import dumpJSON

__all__ = ["AuditStoreMixin", "addAuditEntry", "listAuditEntries"]


def addAuditEntry(
    d: Dialect, actor: str, action: str, target: str | None, detailJSON: str, now: Any
) -> Op[AuditEntry]:
    result = yield (
        "INSERT INTO audit_log (actor, action, target, detail, at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING *",
        (actor, action, target, detailJSON, now),
    )
    return d.read.auditEntry(result.rows[0])


def listAuditEntries(d: Dialect, limit: int, beforeId: int | None) -> Op[list[AuditEntry]]:
    """Newest (highest C{id}) first, C{id < beforeId}."""
    where, params = whereAll([("id < %s", beforeId)])
    result = yield (
        f"SELECT * FROM audit_log{where} ORDER BY id DESC LIMIT %s",
        (*params, max(limit, 0)),
    )
    return [d.read.auditEntry(row) for row in result.rows]


class AuditStoreMixin(OpStore):
    """L{tm20.interfaces.IAuditStore} for a store providing L{OpStore}."""

    def addAuditEntry(
        self, actor: str, action: str, target: str | None, detail: Mapping[str, Any]
    ) -> Deferred[AuditEntry]:
        """See L{tm20.interfaces.IAuditStore.addAuditEntry}."""
        try:
            detailJSON = dumpJSON(detail)
        except (TypeError, ValueError) as e:
            return fail(e)
        op = addAuditEntry(self.dialect, actor, action, target, detailJSON, self._now())
        return self._runOp(True, op)

    def listAuditEntries(self, limit: int, beforeId: int | None) -> Deferred[list[AuditEntry]]:
        """See L{tm20.interfaces.IAuditStore.listAuditEntries}."""
        return self._runOp(False, listAuditEntries(self.dialect, limit, beforeId))
