"""
L{tm20.interfaces.ICommandStore} (the durable queue of commands to terminals), written once for
both stores (see L{tm20.store._ops}).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred, fail

from tm20.events.payloads import commandEvent
from tm20.model import COMMAND_QUEUED, COMMAND_SENT, StoredCommand
from tm20.store._audit import addAuditEntry
from tm20.store._dialect import Dialect
from tm20.store._ops import AppendEvents, Op, OpStore, inList
from tm20.store._rows import FINAL_COMMAND_STATUSES, checkCommandStatus, checkSettle, dumpJSON

__all__ = [
    "CommandStoreMixin",
    "claimCommand",
    "enqueueCommand",
    "finishAndClaimCommand",
    "getCommand",
    "pendingCommands",
    "settleCommand",
    "submitCommand",
    "updateCommand",
]

_FINAL, _FINAL_PARAMS = inList(sorted(FINAL_COMMAND_STATUSES))
_PENDING, _PENDING_PARAMS = inList([COMMAND_QUEUED, COMMAND_SENT])


def getCommand(d: Dialect, commandId: int) -> Op[StoredCommand | None]:
    row = (yield ("SELECT * FROM commands WHERE id = %s", (commandId,))).first
    return None if row is None else d.read.command(row)


def enqueueCommand(
    d: Dialect,
    sn: str,
    name: str,
    payloadJSON: str,
    actor: str | None,
    maxAttempts: int,
    expiresAt: Any,
    warningsJSON: str,
    now: Any,
    claim: bool = False,
) -> Op[StoredCommand]:
    """
    A new command (C{expiresAt} and C{now} as the store writes timestamps): C{queued}; or,
    with C{claim} and no older command of C{sn} still to deliver, C{sent} with its first
    attempt, as L{claimCommand} would mark it (decided in the same statement).
    """
    if not claim:
        result = yield (
            "INSERT INTO commands (sn, name, payload, status, attempts, max_attempts, actor,"
            " created_at, expires_at, warnings) VALUES (%s, %s, %s, %s, 0, %s, %s, %s, %s, %s)"
            " RETURNING *",
            (
                sn,
                name,
                payloadJSON,
                COMMAND_QUEUED,
                maxAttempts,
                actor,
                now,
                expiresAt,
                warningsJSON,
            ),
        )
        return d.read.command(result.rows[0])
    result = yield (
        "INSERT INTO commands (sn, name, payload, status, attempts, max_attempts, actor,"
        " created_at, expires_at, warnings, sent_at)"
        " SELECT %s, %s, %s, CASE WHEN older.busy THEN %s ELSE %s END,"
        " CASE WHEN older.busy THEN 0 ELSE 1 END, %s, %s, %s, %s, %s,"
        " CASE WHEN older.busy THEN NULL ELSE %s END"
        f" FROM (SELECT EXISTS (SELECT 1 FROM commands WHERE sn = %s AND status IN {_PENDING})"
        " AS busy) AS older RETURNING *",
        (
            sn,
            name,
            payloadJSON,
            COMMAND_QUEUED,
            COMMAND_SENT,
            maxAttempts,
            actor,
            now,
            expiresAt,
            warningsJSON,
            now,
            sn,
            *_PENDING_PARAMS,
        ),
    )
    return d.read.command(result.rows[0])


def submitCommand(
    d: Dialect, audit: tuple[str, str, str | None, str], now: Any, enqueue: Op[StoredCommand]
) -> Op[StoredCommand]:
    """
    The audit entry C{audit} (C{(actor, action, target, detail JSON)}), then C{enqueue} (one
    statement, L{enqueueCommand}).  With the dialect's C{writableWith} the entry is inserted by
    the C{WITH} of C{enqueue}'s statement: one statement for both, atomic on its own.
    """
    if not d.writableWith:
        yield from addAuditEntry(d, *audit, now)
        return (yield from enqueue)
    statement = next(enqueue)
    assert isinstance(statement, tuple), "enqueueCommand is one statement"
    sql, params = statement
    result = yield (
        "WITH audit AS (INSERT INTO audit_log (actor, action, target, detail, at)"
        " VALUES (%s, %s, %s, %s, %s)) " + sql,
        (*audit, now, *params),
    )
    try:
        enqueue.send(result)
    except StopIteration as stop:
        command: StoredCommand = stop.value
        return command
    raise AssertionError("enqueueCommand is one statement")


def pendingCommands(d: Dialect, sn: str) -> Op[list[StoredCommand]]:
    """C{sn}'s commands still to deliver (C{queued} or C{sent}), oldest first."""
    result = yield (
        f"SELECT * FROM commands WHERE sn = %s AND status IN {_PENDING} ORDER BY id",
        (sn, *_PENDING_PARAMS),
    )
    return [d.read.command(row) for row in result.rows]


def terminalsWithPendingCommands(sns: Sequence[str]) -> Op[set[str]]:
    """Of C{sns}, those with a command still to deliver."""
    if not sns:
        return set()
    marks, params = inList(sorted(set(sns)))
    rows = (
        yield (
            f"SELECT DISTINCT sn FROM commands WHERE sn IN {marks} AND status IN {_PENDING}",
            params + _PENDING_PARAMS,
        )
    ).rows
    return {str(row["sn"]) for row in rows}


def claimCommand(
    d: Dialect, sn: str, expired: Callable[[StoredCommand], bool], now: Any
) -> Op[tuple[StoredCommand, bool] | None]:
    """
    C{sn}'s oldest pending command, marked C{sent} (one more attempt) unless C{expired(it)}.
    """
    row = (
        yield (
            f"SELECT * FROM commands WHERE sn = %s AND status IN {_PENDING} ORDER BY id LIMIT 1",
            (sn, *_PENDING_PARAMS),
        )
    ).first
    return (yield from _claimRow(d, row, expired, now))


def _claimRow(
    d: Dialect, row: Mapping[str, Any] | None, expired: Callable[[StoredCommand], bool], now: Any
) -> Op[tuple[StoredCommand, bool] | None]:
    """L{claimCommand} of the oldest pending command, read as C{row} (C{None}: none)."""
    if row is None:
        return None
    command = d.read.command(row)
    if expired(command):
        return command, False
    sent, _ = yield from _setStatus(d, command.id, COMMAND_SENT, None, True, now)
    if sent is None:  # deleted meanwhile (by another process)
        return None
    return sent, sent.status == COMMAND_SENT


def _setStatus(
    d: Dialect,
    commandId: int,
    status: str,
    replyJSON: str | None,
    attempted: bool,
    now: Any,
) -> Op[tuple[StoredCommand | None, bool]]:
    """
    L{updateCommand} without its event: the command after, and whether it became final now
    (its C{command.<status>} event is then the caller's to append).
    """
    final = status in FINAL_COMMAND_STATUSES
    row = (
        yield (
            "UPDATE commands SET status = %s, reply = COALESCE(%s, reply),"
            " attempts = attempts + %s, sent_at = CASE WHEN %s THEN %s ELSE sent_at END,"
            f" finished_at = %s WHERE id = %s AND status NOT IN {_FINAL} RETURNING *",
            (
                status,
                replyJSON,
                1 if attempted else 0,
                bool(attempted),
                now,
                now if final else None,
                commandId,
                *_FINAL_PARAMS,
            ),
        )
    ).first
    if row is None:  # unknown, or final already (cancelled meanwhile): nothing changed
        return (yield from getCommand(d, commandId)), False
    return d.read.command(row), final


def updateCommand(
    d: Dialect,
    commandId: int,
    status: str,
    replyJSON: str | None,
    attempted: bool,
    now: Any,
) -> Op[StoredCommand | None]:
    """
    Set the status (and reply) of a command not final yet; a final status sets C{finishedAt}
    (and appends C{command.<status>}), another clears it.
    """
    command, final = yield from _setStatus(d, commandId, status, replyJSON, attempted, now)
    if final:
        assert command is not None
        yield AppendEvents((commandEvent(command),), now)
    return command


def finishAndClaimCommand(
    d: Dialect,
    commandId: int,
    status: str,
    replyJSON: str | None,
    attempted: bool,
    now: Any,
    sn: str,
    expired: Callable[[StoredCommand], bool],
) -> Op[tuple[StoredCommand | None, tuple[StoredCommand, bool] | None]]:
    """
    L{updateCommand}, then L{claimCommand} of C{sn}, in one transaction (the event of the
    first, if any, appended last).
    """
    if status in FINAL_COMMAND_STATUSES and d.writableWith:
        command, final, row = yield from _finishAndLook(
            d, commandId, status, replyJSON, attempted, now, sn
        )
        claimed = yield from _claimRow(d, row, expired, now)
    else:
        command, final = yield from _setStatus(d, commandId, status, replyJSON, attempted, now)
        claimed = yield from claimCommand(d, sn, expired, now)
    if final:
        assert command is not None
        yield AppendEvents((commandEvent(command),), now)
    return command, claimed


def _finishAndLook(
    d: Dialect,
    commandId: int,
    status: str,
    replyJSON: str | None,
    attempted: bool,
    now: Any,
    sn: str,
) -> Op[tuple[StoredCommand | None, bool, Mapping[str, Any] | None]]:
    """
    L{_setStatus} to the final C{status}, and the row of C{sn}'s oldest pending command, in one
    statement (the update in its C{WITH}: the dialect's C{writableWith}).  The look sees the
    rows as they were before the update, so it leaves C{commandId} out: once final (or if it
    was final or gone already) it is not pending.

    @return: the command after (C{None}: gone), whether it became final now, and the row.
    """
    result = yield (
        "WITH done AS (UPDATE commands SET status = %s, reply = COALESCE(%s, reply),"
        " attempts = attempts + %s, sent_at = CASE WHEN %s THEN %s ELSE sent_at END,"
        f" finished_at = %s WHERE id = %s AND status NOT IN {_FINAL} RETURNING *)"
        " SELECT true AS done_now, * FROM done UNION ALL"
        " (SELECT false, * FROM commands"
        f" WHERE sn = %s AND id <> %s AND status IN {_PENDING} ORDER BY id LIMIT 1)",
        (
            status,
            replyJSON,
            1 if attempted else 0,
            bool(attempted),
            now,
            now,
            commandId,
            *_FINAL_PARAMS,
            sn,
            commandId,
            *_PENDING_PARAMS,
        ),
    )
    done = next((row for row in result.rows if row["done_now"]), None)
    pending = next((row for row in result.rows if not row["done_now"]), None)
    if done is None:  # unknown, or final already (cancelled meanwhile): nothing changed
        return (yield from getCommand(d, commandId)), False, pending
    return d.read.command(done), True, pending


def settleCommand(
    d: Dialect, commandId: int, status: str, only: Collection[str], finishedAt: Any
) -> Op[tuple[StoredCommand, bool] | None]:
    """The final C{status} if, and only if, the command's status is one of C{only}."""
    olds, oldParams = inList(sorted(only))
    row = (
        yield (
            f"UPDATE commands SET status = %s, finished_at = %s WHERE id = %s AND status IN {olds}"
            " RETURNING *",
            (status, finishedAt, commandId, *oldParams),
        )
    ).first
    if row is not None:
        settled = d.read.command(row)
        yield AppendEvents((commandEvent(settled),), finishedAt)
        return settled, True
    command = yield from getCommand(d, commandId)
    return None if command is None else (command, False)


class CommandStoreMixin(OpStore):
    """L{tm20.interfaces.ICommandStore} for a store providing L{OpStore}."""

    def enqueueCommand(
        self,
        sn: str,
        name: str,
        payload: Mapping[str, Any],
        actor: str | None,
        maxAttempts: int,
        expiresAt: datetime | None = None,
        warnings: Sequence[Mapping[str, str]] = (),
    ) -> Deferred[StoredCommand]:
        """See L{tm20.interfaces.ICommandStore.enqueueCommand}."""
        return self.submitCommand(sn, name, payload, actor, maxAttempts, expiresAt, warnings)

    def submitCommand(
        self,
        sn: str,
        name: str,
        payload: Mapping[str, Any],
        actor: str | None,
        maxAttempts: int,
        expiresAt: datetime | None = None,
        warnings: Sequence[Mapping[str, str]] = (),
        audit: tuple[str, str, str | None, Mapping[str, Any]] | None = None,
        claim: bool = False,
    ) -> Deferred[StoredCommand]:
        """See L{tm20.interfaces.ICommandStore.submitCommand}."""
        try:
            payloadJSON = dumpJSON(payload)
            warningsJSON = dumpJSON([dict(w) for w in warnings])
            audited = None
            if audit is not None:
                auditActor, action, target, detail = audit
                audited = (auditActor, action, target, dumpJSON(detail))
        except (TypeError, ValueError) as e:
            return fail(e)
        expires = None if expiresAt is None else self.dialect.timestamp(expiresAt)
        now = self._now()
        op = enqueueCommand(
            self.dialect,
            sn,
            name,
            payloadJSON,
            actor,
            maxAttempts,
            expires,
            warningsJSON,
            now,
            claim,
        )
        if audited is not None:
            op = submitCommand(self.dialect, audited, now, op)
        # one statement (the audit entry in its WITH, or none): no transaction around it needed
        single = audited is None or self.dialect.writableWith
        return self._runOp(True, op, single=single)

    def getCommand(self, commandId: int) -> Deferred[StoredCommand | None]:
        """See L{tm20.interfaces.ICommandStore.getCommand}."""
        return self._runOp(False, getCommand(self.dialect, commandId), single=True)

    def pendingCommands(self, sn: str) -> Deferred[list[StoredCommand]]:
        """See L{tm20.interfaces.ICommandStore.pendingCommands}."""
        return self._runOp(False, pendingCommands(self.dialect, sn))

    def terminalsWithPendingCommands(self, sns: Sequence[str]) -> Deferred[set[str]]:
        """See L{tm20.interfaces.ICommandStore.terminalsWithPendingCommands}."""
        return self._runOp(False, terminalsWithPendingCommands(list(sns)), single=True)

    def claimCommand(
        self, sn: str, expired: Callable[[StoredCommand], bool]
    ) -> Deferred[tuple[StoredCommand, bool] | None]:
        """See L{tm20.interfaces.ICommandStore.claimCommand}."""
        # a read, then one conditional write atomic alone (and a read when it changed
        # nothing): no transaction around them is needed
        op = claimCommand(self.dialect, sn, expired, self._now())
        return self._runOp(True, op, single=True)

    def updateCommand(
        self,
        commandId: int,
        status: str,
        reply: Mapping[str, Any] | None,
        attempted: bool,
    ) -> Deferred[StoredCommand | None]:
        """See L{tm20.interfaces.ICommandStore.updateCommand}."""
        try:
            checkCommandStatus(status)
            replyJSON = None if reply is None else dumpJSON(reply)
        except (TypeError, ValueError) as e:
            return fail(e)
        op = updateCommand(self.dialect, commandId, status, replyJSON, attempted, self._now())
        return self._runOpWithEvents(op)

    def finishAndClaimCommand(
        self,
        commandId: int,
        status: str,
        reply: Mapping[str, Any] | None,
        attempted: bool,
        sn: str,
        expired: Callable[[StoredCommand], bool],
    ) -> Deferred[tuple[StoredCommand | None, tuple[StoredCommand, bool] | None]]:
        """See L{tm20.interfaces.ICommandStore.finishAndClaimCommand}."""
        try:
            checkCommandStatus(status)
            replyJSON = None if reply is None else dumpJSON(reply)
        except (TypeError, ValueError) as e:
            return fail(e)
        op = finishAndClaimCommand(
            self.dialect, commandId, status, replyJSON, attempted, self._now(), sn, expired
        )
        return self._runOpWithEvents(op)

    def settleCommand(
        self, commandId: int, status: str, only: Collection[str], at: datetime | None = None
    ) -> Deferred[tuple[StoredCommand, bool] | None]:
        """See L{tm20.interfaces.ICommandStore.settleCommand}."""
        try:
            checkSettle(status, only)
        except ValueError as e:
            return fail(e)
        finishedAt = self._now() if at is None else self.dialect.timestamp(at)
        op = settleCommand(self.dialect, commandId, status, only, finishedAt)
        return self._runOpWithEvents(op)
