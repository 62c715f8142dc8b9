"""
Any node answers for any terminal: a command or a pull asked on this node for a terminal held
by another goes through the database, and this node waits for its outcome.

  - B{Commands} (L{CommandRouter}): the command is already in the durable queue
    (L{tm20.services.queue.CommandQueue.submit} stored it); the holder is told to deliver
    (C{deliver}), delivers at once and tells this node after each attempt (C{settled}); this
    node reads the row and answers as a local delivery would: the command after its first
    attempt (C{succeeded}, C{failed}, C{queued} again when the terminal disconnected), or
    L{QueuedCommandTimeout} when it got no reply in time (the notification carries the row as
    the holder stored it, L{tm20.cluster.settled}).  Every C{recheck} seconds the row is
    read even without a notification, and a terminal no longer held by any live node ends the
    wait (the command stays queued, as for a terminal that disconnects locally).
  - B{Pulls} (L{ClusterPulls}): recorded as a call (C{cluster_calls}) taken by the node holding
    the terminal (C{FOR UPDATE SKIP LOCKED}: one node runs it), which stores the result; the
    asker reads it and answers with the same result, or the same error, as a local pull.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from zope.interface import implementer

from tm20.cluster.node import ClusterNode
from tm20.cluster.settled import commandFromMessage
from tm20.errors import CommandTimeout, StoreUnavailable, TerminalGone
from tm20.interfaces import IPullService
from tm20.model import COMMAND_QUEUED, COMMAND_TIMED_OUT, StoredCommand
from tm20.services.pulls import LogPullResult, PullBusyError, UserPullResult, UserRefreshResult
from tm20.services.queue import FINAL_STATUSES, CommandVanishedError, QueuedCommandTimeout

__all__ = ["ClusterPulls", "CommandRouter", "RECHECK"]

#: Seconds between reads of a waited-for row when no notification came.
RECHECK = 1.0
#: Seconds a cross-node wait may outlast the command timeout (notification and row reads).
_SLACK = 2.0
#: Page-by-page commands (getnewlog...) may run this many command timeouts in all.
_PAGED_FACTOR = 20
#: The longest a remote pull is waited for.
_CALL_DEADLINE = 1800.0


class _Wakeups:
    """Deferreds waiting for a notification about one id, or for a recheck timer."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._waiting: dict[int, list[Deferred[dict[str, Any] | None]]] = {}

    def wait(self, key: int, atMost: float) -> Deferred[dict[str, Any] | None]:
        """Fire with the notification about C{key}, or C{None} after C{atMost} seconds."""
        d: Deferred[dict[str, Any] | None] = Deferred()
        self._waiting.setdefault(key, []).append(d)

        def timeUp() -> None:
            waiting = self._waiting.get(key, [])
            if d in waiting:
                waiting.remove(d)
                if not waiting:
                    self._waiting.pop(key, None)
                d.callback(None)

        timer = self.clock.callLater(max(atMost, 0.0), timeUp)

        def cancelTimer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(cancelTimer)

    def wake(self, key: int, message: dict[str, Any]) -> None:
        for d in self._waiting.pop(key, []):
            d.callback(message)


class CommandRouter:
    """Queued commands for terminals held by other nodes: wake the holder, wait for it."""

    log = Logger()

    def __init__(self, node: ClusterNode, recheck: float = RECHECK) -> None:
        self.node = node
        self.store = node.store
        self.clock = node.clock
        self.recheck = recheck
        self._wakeups = _Wakeups(self.clock)
        self._callWakeups = _Wakeups(self.clock)
        node.onOutcome = self._outcome
        #: Commands handed to another node, for the metrics and tests.
        self.routed = 0

    def _outcome(self, op: str, message: dict[str, Any]) -> None:
        key = message.get("command" if op == "settled" else "call")
        if isinstance(key, int):
            (self._wakeups if op == "settled" else self._callWakeups).wake(key, message)

    @inlineCallbacks
    def route(self, command: StoredCommand) -> Any:
        """
        Tell the node holding C{command.sn} (if another live node holds it) to deliver now.

        @return: L{Deferred} of that node's id, or C{None} (no other node holds it: the
            command waits for the terminal's next registration anywhere).
        """
        try:
            holder = yield self.store.terminalHolder(command.sn)
        except StoreUnavailable as e:
            self.log.warn(
                "command {id} for {sn} stays queued: cannot find its node ({error})",
                id=command.id,
                sn=command.sn,
                error=str(e),
            )
            return None
        if holder is None or holder == self.node.nodeId:
            return None
        self.routed += 1
        yield self.node.send(
            holder,
            {"op": "deliver", "sn": command.sn, "command": command.id, "reply": self.node.nodeId},
        )
        return holder

    @inlineCallbacks
    def waitFor(self, command: StoredCommand, timeout: float, paged: bool) -> Any:
        """
        Wait for the first outcome of C{command}, delivered by another node.

        @return: L{Deferred} of the L{StoredCommand} (final, or C{queued} again when the terminal
            disconnected or is held by no node); fails with L{QueuedCommandTimeout} when the
            terminal did not answer in time, L{CommandVanishedError} when it was deleted.
        """
        deadline = self.clock.seconds() + timeout * (_PAGED_FACTOR if paged else 1) + _SLACK
        initial = command.attempts
        current = command
        while True:
            left = deadline - self.clock.seconds()
            message = yield self._wakeups.wait(command.id, min(self.recheck, max(left, 0.0)))
            # the holder's notification carries the row as it stored it (unless too long)
            carried = None
            if message is not None and isinstance(message.get("row"), dict):
                carried = commandFromMessage(message["row"])
            if carried is not None and carried.id == command.id:
                current = carried
            else:
                current = yield self.store.getCommand(command.id)
            if current is None:
                raise CommandVanishedError(f"command {command.id} was deleted")
            if current.status in FINAL_STATUSES:
                if current.status == COMMAND_TIMED_OUT:
                    raise QueuedCommandTimeout(current)
                return current
            if current.attempts >= initial + 2:
                # the first attempt ended without a reply and was retried: a timeout
                raise QueuedCommandTimeout(current)
            if current.status == COMMAND_QUEUED and current.attempts > initial:
                if message is not None:
                    if message.get("connected"):
                        raise QueuedCommandTimeout(current)
                    return current  # the terminal disconnected: queued for its next reg
                holder = yield self.store.terminalHolder(current.sn)
                if holder is None:
                    return current
            elif current.status == COMMAND_QUEUED and current.attempts == initial:
                holder = yield self.store.terminalHolder(current.sn)
                if holder is None:
                    return current  # the terminal went away before it was sent
            if self.clock.seconds() >= deadline:
                raise QueuedCommandTimeout(current)

    # -- calls ---------------------------------------------------------------------------------

    @inlineCallbacks
    def call(self, sn: str, kind: str, params: Mapping[str, Any]) -> Any:
        """
        Have the node holding C{sn} run C{kind} and wait for its result.

        @return: L{Deferred} of the result (a dict); fails with the error the holder met
            (L{PullBusyError}, L{TerminalGone}, L{CommandTimeout}, L{StoreUnavailable}).
        """
        holder = yield self.store.terminalHolder(sn)
        if holder is None:
            raise TerminalGone(f"terminal {sn} is not connected")
        callId = yield self.store.askCall(sn, kind, params, self.node.nodeId)
        self.log.info(
            "{kind} of {sn} asked of node {holder} (call {id})",
            kind=kind,
            sn=sn,
            holder=holder,
            id=callId,
        )
        yield self.node.send(holder, {"op": "call", "sn": sn})
        deadline = self.clock.seconds() + _CALL_DEADLINE
        try:
            while True:
                yield self._callWakeups.wait(callId, self.recheck)
                call = yield self.store.getCall(callId)
                if call is None:
                    raise TerminalGone(f"the {kind} of {sn} was lost")
                if call["status"] == "done":
                    error = call["error"]
                    if error:
                        raise _callError(error)
                    return call["result"]
                if call["status"] == "asked":
                    holder = yield self.store.terminalHolder(sn)
                    if holder is None:
                        raise TerminalGone(f"terminal {sn} is not connected")
                if self.clock.seconds() >= deadline:
                    raise CommandTimeout(f"the {kind} of {sn} did not finish in time")
        finally:
            self.store.deleteCall(callId).addErrback(lambda f: None)


def _callError(error: Mapping[str, Any]) -> Exception:
    code, message = error.get("code"), str(error.get("message", ""))
    if code == "pull_in_progress":
        return PullBusyError(message)
    if code in ("terminal_offline", "node_lost"):
        return TerminalGone(message or "the terminal's node stopped")
    if code == "timeout":
        return CommandTimeout(message)
    if code == "unavailable":
        return StoreUnavailable(message)
    return RuntimeError(message)


@implementer(IPullService)
class ClusterPulls:
    """
    The pull service seen from any node: a terminal connected here is pulled here, one held by
    another node is pulled there (L{CommandRouter.call}).  The local checks (L{busy},
    L{refreshUsers}: the reconciler's, for terminals connected here) are the local
    L{tm20.services.pulls.PullService}'s.
    """

    def __init__(self, local: IPullService, router: CommandRouter, commands: Any) -> None:
        self.local = local
        self.router = router
        self.commands = commands

    def busy(self, sn: str) -> bool:
        return self.local.busy(sn)

    def refreshUsers(self, sn: str) -> Deferred[UserRefreshResult]:
        return self.local.refreshUsers(sn)

    def pullUsers(self, sn: str) -> Deferred[UserPullResult]:
        if self.commands.isConnected(sn):
            return self.local.pullUsers(sn)
        return self.router.call(sn, "pull.users", {}).addCallback(
            lambda result: UserPullResult(**result)
        )

    def pullLogs(
        self, sn: str, allLogs: bool = False, since: str | None = None, until: str | None = None
    ) -> Deferred[LogPullResult]:
        if self.commands.isConnected(sn):
            return self.local.pullLogs(sn, allLogs, since, until)
        params = {"all": allLogs, "from": since, "to": until}
        return self.router.call(sn, "pull.logs", params).addCallback(
            lambda result: LogPullResult(**result)
        )
