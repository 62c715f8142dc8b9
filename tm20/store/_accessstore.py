"""
The L{tm20.interfaces.IAccessStore} methods, the same for both stores: each builds one
operation of L{tm20.store._accesssql} and has the store run it in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, fail

from tm20.access.model import AccessRule, Decision, GroupAccess, Holiday, QrCode
from tm20.access.rules import Snapshot
from tm20.protocol.messages import LogRecord
from tm20.services.groupcommit import Batch, GroupCommitQueue
from tm20.store import _accesssql as sql
from tm20.store._ops import OpStore
from tm20.store._rows import formatTimestamp, requireStorableRecord

__all__ = ["AccessStoreMixin"]

#: A decided punch waiting for its group commit: the record, its decision, the door's zone.
_Punch = tuple[LogRecord, Decision, str | None]


class AccessStoreMixin(OpStore):
    """L{tm20.interfaces.IAccessStore} for a store providing L{OpStore} (and a C{_reactor})."""

    _reactor: Any

    def _timeValue(self, when: datetime | None) -> Any:
        return None if when is None else self.dialect.timestamp(when)

    _punchQueue: GroupCommitQueue[_Punch, int | None] | None = None

    @property
    def punchQueue(self) -> GroupCommitQueue[_Punch, int | None]:
        """
        The group commit of decided punches: those arriving together (many doors at once) are
        written in one transaction, as batches of logs are (L{GroupCommitQueue}).
        """
        if self._punchQueue is None:
            self._punchQueue = GroupCommitQueue(self._reactor, self._flushPunches)
        return self._punchQueue

    async def _flushPunches(self, batches: Sequence[Batch[_Punch, int | None]]) -> list[int | None]:
        now, stamp = self._stamp()
        punches = [(b.sn, *b.items[0]) for b in batches]
        ids: list[int | None] = await self._runOp(True, sql.recordPunches(punches, now, stamp))
        self._eventsCommitted()
        return ids

    def _stamp(self) -> tuple[Any, str]:
        now = self._now()
        when = self.dialect.time(now)
        if when is None:  # (never: now is a timestamp)
            raise ValueError("the store's now is not a time")
        return now, formatTimestamp(when)

    # -- rules, holidays, codes, group settings ---------------------------------------------------

    def listAccessRules(self) -> Deferred[list[AccessRule]]:
        return self._runOp(False, sql.listRules(self.dialect.time))

    def getAccessRule(self, ruleId: int) -> Deferred[AccessRule | None]:
        return self._runOp(False, sql.getRule(ruleId, self.dialect.time))

    def putAccessRule(self, rule: AccessRule, create: bool) -> Deferred[AccessRule | None]:
        return self._runOp(True, sql.putRule(rule, create, self._now(), self.dialect.time))

    def deleteAccessRule(self, ruleId: int) -> Deferred[bool]:
        return self._runOp(True, sql.deleteRule(ruleId))

    def listHolidays(self) -> Deferred[list[Holiday]]:
        return self._runOp(False, sql.listHolidays(self.dialect.time))

    def addHoliday(self, holiday: Holiday) -> Deferred[Holiday]:
        return self._runOp(True, sql.addHoliday(holiday, self._now(), self.dialect.time))

    def deleteHoliday(self, holidayId: int) -> Deferred[bool]:
        return self._runOp(True, sql.deleteHoliday(holidayId))

    def addQrCode(self, code: QrCode) -> Deferred[QrCode]:
        op = sql.addCode(
            code,
            self._timeValue(code.validFrom),
            self._timeValue(code.validUntil),
            self._now(),
            self.dialect.time,
        )
        return self._runOp(True, op)

    def getQrCode(self, codeId: int) -> Deferred[QrCode | None]:
        return self._runOp(False, sql.getCode(codeId, self.dialect.time))

    def listQrCodes(self, limit: int, afterId: int | None) -> Deferred[list[QrCode]]:
        return self._runOp(False, sql.listCodes(limit, afterId, self.dialect.time))

    def revokeQrCode(self, codeId: int) -> Deferred[QrCode | None]:
        return self._runOp(True, sql.revokeCode(codeId, self._now(), self.dialect.time))

    def listGroupAccess(self) -> Deferred[list[GroupAccess]]:
        return self._runOp(False, sql.listGroupAccess(self.dialect.time))

    def putGroupAccess(self, settings: GroupAccess) -> Deferred[GroupAccess]:
        return self._runOp(True, sql.putGroupAccess(settings, self._now(), self.dialect.time))

    def loadAccessSnapshot(self) -> Deferred[Snapshot]:
        return self._runOp(False, sql.loadSnapshot(self.dialect.time))

    def listAccessDecisions(
        self, sn: str | None, limit: int, beforeId: int | None, granted: bool | None = None
    ) -> Deferred[list[dict[str, Any]]]:
        return self._runOp(
            False, sql.listDecisions(sn, limit, beforeId, self.dialect.time, granted)
        )

    # -- decisions --------------------------------------------------------------------------------

    def recordAccessPunch(
        self, sn: str, record: LogRecord, decision: Decision, timezone: str | None
    ) -> Deferred[int | None]:
        try:
            requireStorableRecord(record)
        except (TypeError, ValueError) as e:
            return fail(e)
        return self.punchQueue.submit(sn, [(record, decision, timezone)])

    def recordAccessCode(
        self, sn: str, kind: str, decision: Decision
    ) -> Deferred[tuple[Decision, int]]:
        now, stamp = self._stamp()
        op = sql.recordCode(sn, kind, decision, now, stamp)
        return self._runOp(True, op).addCallback(self._eventsCommitted)

    def recordAccessFallback(
        self, sn: str, kind: str, recordId: int, decision: Decision
    ) -> Deferred[None]:
        now, stamp = self._stamp()
        op = sql.markFallback(sn, kind, recordId, decision, now, stamp)
        return self._runOp(True, op).addCallback(self._eventsCommitted)
