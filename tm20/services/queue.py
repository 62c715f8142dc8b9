"""
The durable command queue: every operator command is stored before it is sent.

A command goes C{queued} -> C{sent} -> C{succeeded} (the terminal answered C{result:true}) or
C{failed} (it answered C{result:false}, or it disconnected too often) or C{timed_out} (it never
answered, C{maxAttempts} times).  The commands of one terminal are delivered one at a time, oldest
first, by one worker per terminal; a worker starts when a command is submitted for a connected
terminal and after every registration (L{CommandQueue.deliverPending}, hooked to the registration
service's observers), so a command for an offline terminal is delivered after its next C{reg}.
With several nodes on one database (L{tm20.cluster}), a command for a terminal held by another
node is delivered by that node, woken through the database (L{CommandQueue.remote}).

A delivery that times out is retried at once (the terminal is connected, so the next attempt may
get through); one cut by a disconnection waits for the next registration.  Commands left C{sent}
by a server that stopped are delivered again after the terminal's next registration.

Every command has an expiry (L{defaultExpiry} by kind, or the operator's C{expiresIn}): an
C{opendoor} posted while the terminal is offline must not open the door when it reconnects hours
later.  An expired command is never delivered: the worker checks before every attempt and settles
it C{expired} instead.  There is no background sweep: reading a command (L{CommandQueue.refresh})
settles it C{expired} as soon as its time has passed, so the API never shows a dead command as
C{queued}.  A queued command can be C{cancelled} (L{CommandQueue.cancel}); a C{sent} one cannot
(the terminal may be acting on it).  Both statuses are final, and both are written to the audit
log (the expiry by C{tm20}, the cancellation by the token that asked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from tm20.batches import Batcher
from tm20.errors import CommandTimeout, StoreUnavailable, TerminalGone
from tm20.interfaces import ICommandQueue, IStore
from tm20.lanes import inForeground
from tm20.model import (
    COMMAND_CANCELLED,
    COMMAND_EXPIRED,
    COMMAND_FAILED,
    COMMAND_FINAL,
    COMMAND_QUEUED,
    COMMAND_SENT,
    COMMAND_SUCCEEDED,
    COMMAND_TIMED_OUT,
    StoredCommand,
    Terminal,
)
from tm20.protocol.commands import COMMANDS, buildCommand, commandWarnings
from tm20.protocol.messages import CommandReply
from tm20.services.expiry import MAX_EXPIRY, defaultExpiry, expiryOf
from tm20.services.pulls import AddLogs, LogPageStorer, pagingLimits
from tm20.store._rows import utcFromSeconds

__all__ = [
    "CommandQueue",
    "CommandVanishedError",
    "EXPIRY_ACTOR",
    "FINAL_STATUSES",
    "QueuedCommandTimeout",
    "replyAsDict",
]

#: Statuses after which a command is never sent again (nor changed).
FINAL_STATUSES = COMMAND_FINAL

#: The audit log's actor for what the server does by itself (expiring a command).
EXPIRY_ACTOR = "tm20"


#: Paged commands whose records are logs (stored as they are read).
_LOG_COMMANDS = frozenset({"getnewlog", "getalllog"})


def _isPaged(name: str) -> bool:
    spec = COMMANDS.get(name)
    return spec is not None and spec.paged


class CommandVanishedError(Exception):
    """The command was deleted (with its terminal) before it completed."""


class QueuedCommandTimeout(CommandTimeout):
    """
    The terminal did not answer a waited-for command in time.

    @ivar command: the L{StoredCommand} as stored after the attempt (C{queued} when it will be
        tried again, C{timed_out} when it will not).
    """

    def __init__(self, command: StoredCommand) -> None:
        super().__init__(f"terminal {command.sn} did not answer command {command.id}")
        self.command = command


def replyAsDict(reply: CommandReply | None) -> dict[str, Any] | None:
    """The terminal's reply as stored with a command (C{ret}, C{result}, C{reason}, fields)."""
    if reply is None:
        return None
    out: dict[str, Any] = {"ret": reply.ret, "result": reply.result}
    if reply.reason is not None:
        out["reason"] = reply.reason
    out.update(reply.fields)
    return out


class _Waiter:
    """A caller of L{CommandQueue.submit} waiting for the first outcome of its command."""

    def __init__(self, sn: str) -> None:
        self.sn = sn
        self.deferred: Deferred[StoredCommand] = Deferred()

    def fire(self, command: StoredCommand) -> None:
        if not self.deferred.called:
            self.deferred.callback(command)

    def fail(self, error: BaseException) -> None:
        if not self.deferred.called:
            self.deferred.errback(error)


@implementer(ICommandQueue)
class CommandQueue:
    """
    Stores, delivers and retries server-to-terminal commands.

    @ivar maxAttempts: deliveries tried before a command is given up.
    @ivar timeout: seconds to wait for each reply (C{None}: the command service's default).
    """

    log = Logger()

    def __init__(
        self,
        store: IStore,
        commands: Any,
        registration: Any,
        clock: IReactorTime,
        maxAttempts: int = 3,
        timeout: float | None = None,
        addLogs: AddLogs | None = None,
    ) -> None:
        """
        @param store: where commands are kept (L{IStore}).
        @param commands: the L{tm20.services.commands.CommandService} that sends them.
        @param registration: the L{tm20.services.registration.RegistrationService}, for the
            terminals' local time (C{settime}).
        @param clock: the reactor or a C{Clock}.
        @param maxAttempts: deliveries before giving up (at least 1).
        @param timeout: seconds to wait for each reply.
        @param addLogs: stores the logs a paged command reads (see L{PullService}); C{None}:
            the store's own C{addLogs}.
        """
        if maxAttempts < 1:
            raise ValueError("maxAttempts must be at least 1")
        self.store = store
        self._addLogs = addLogs
        self.commands = commands
        self.registration = registration
        self.clock = clock
        self.maxAttempts = maxAttempts
        self.timeout = timeout
        self._workers: set[str] = set()
        self._idleWaiters: dict[str, list[Deferred[None]]] = {}
        self._dirty: set[str] = set()
        self._waiters: dict[int, list[_Waiter]] = {}
        #: Called with the L{StoredCommand} as stored after each delivery attempt, expiry or
        #: cancellation (the reconciler follows its own commands this way); exceptions are
        #: logged.
        self.observers: list[Callable[[StoredCommand], object]] = []
        #: Which registered terminals have commands waiting, asked together.
        self._pendingLook: Batcher[str, bool] = Batcher(self._lookForPending)
        #: Delivery through another node (L{tm20.cluster.routing.CommandRouter}): C{None} for
        #: one process alone.
        self.remote: Any = None

    # -- submitting ----------------------------------------------------------------------------

    def buildPayload(
        self, sn: str, name: str, params: Mapping[str, Any], terminal: Terminal | None = None
    ) -> Deferred[dict[str, Any]]:
        """
        Validate a command and build its frame; C{settime} without C{cloudtime} gets the
        terminal's local time now.

        @param terminal: C{sn}'s L{tm20.model.Terminal} when the caller has just read it (its
            time zone, for C{settime}); C{None}: read when needed.
        @return: a L{Deferred} of the frame, failing with
            L{tm20.protocol.messages.ProtocolError} naming the bad field.
        """
        if name == "settime" and "cloudtime" not in params:

            def withTime(terminal: Any) -> dict[str, Any]:
                cloudtime = self.registration.cloudTimeFor(terminal)
                return buildCommand(name, {**params, "cloudtime": cloudtime})

            if terminal is not None:
                try:
                    return succeed(withTime(terminal))
                except Exception as e:
                    return fail(e)
            d: Deferred[Any] = self.store.getTerminal(sn)
            return d.addCallback(withTime)
        try:
            return succeed(buildCommand(name, params))
        except Exception as e:
            return fail(e)

    @inlineCallbacks
    def submit(
        self,
        sn: str,
        name: str,
        params: Mapping[str, Any],
        actor: str | None,
        wait: bool = True,
        expiresIn: float | None = None,
        payload: Mapping[str, Any] | None = None,
        audit: tuple[str, str, str | None, Mapping[str, Any]] | None = None,
    ) -> Any:
        """
        Validate, store and (when C{sn} is connected) deliver a command.

        A waited-for command for a terminal connected here whose queue is idle is stored
        C{sent} at once (L{ICommandStore.submitCommand} with C{claim}: still committed before
        it is sent) and handed to the terminal's worker, which needs no claim of its own.

        @param sn: the terminal.
        @param name: the command (C{opendoor}, ...).
        @param params: its parameters.
        @param actor: who asked (the API token's name), stored with the command.
        @param wait: wait for the first outcome of the delivery when C{sn} is connected.
        @param expiresIn: seconds it stays deliverable (C{None}: L{defaultExpiry} of C{name}).
        @param payload: the frame L{buildPayload} made of C{name} and C{params} (validated
            already: not validated again); C{None}: built here.
        @param audit: the audit entry of the submission, C{(actor, action, target, detail)},
            written in the command's transaction (C{None}: none).
        @return: a L{Deferred} of the L{StoredCommand}: as stored (C{queued}) when not waiting or
            when the terminal is offline; otherwise after its delivery (C{succeeded},
            C{failed}, or C{queued} again when the terminal disconnected meanwhile).  Fails with
            L{tm20.protocol.messages.ProtocolError} for bad parameters and with
            L{QueuedCommandTimeout} when the terminal did not answer in time.
        """
        if expiresIn is not None and not 0 < expiresIn <= MAX_EXPIRY:
            raise ValueError(f"expiresIn must be between 1 and {MAX_EXPIRY} seconds")
        if payload is None:
            payload = yield self.buildPayload(sn, name, params)
        lifetime = defaultExpiry(name) if expiresIn is None else expiresIn
        expiresAt = utcFromSeconds(self.clock.seconds() + lifetime)
        warnings = commandWarnings(name, params)
        claim = wait and sn not in self._workers and self.commands.isConnected(sn)
        if claim:
            # this caller starts the worker: a kick meanwhile (a registration) only marks sn
            self._workers.add(sn)
        try:
            command = yield self.store.submitCommand(
                sn,
                name,
                payload,
                actor,
                self.maxAttempts,
                expiresAt,
                warnings,
                audit=audit,
                claim=claim,
            )
        except BaseException:
            if claim:
                self._workerDone(None, sn)
            raise
        self.log.info(
            "command {id} {name} for {sn} queued by {actor}, expires in {lifetime} s",
            id=command.id,
            name=name,
            sn=sn,
            actor=actor,
            lifetime=lifetime,
        )
        if claim:
            waiter = _Waiter(sn)
            self._waiters.setdefault(command.id, []).append(waiter)
            # stored "sent" when nothing older was pending: delivered first, without a claim
            first = command if command.status == COMMAND_SENT else None
            inForeground(self._work, sn, first).addBoth(self._workerDone, sn)
            result = yield waiter.deferred
            return result
        if not wait or not self.commands.isConnected(sn):
            self.kick(sn)
            if self.remote is not None and not self.commands.isConnected(sn):
                # held by another node of the cluster: it delivers, this node answers
                holder = yield self.remote.route(command)
                if holder is not None and wait:
                    timeout = self.timeout if self.timeout is not None else self.commands.timeout
                    result = yield self.remote.waitFor(command, timeout, _isPaged(name))
                    return result
            return command
        waiter = _Waiter(sn)
        self._waiters.setdefault(command.id, []).append(waiter)
        self.kick(sn)
        result = yield waiter.deferred
        return result

    # -- expiry and cancellation ---------------------------------------------------------------

    def isExpired(self, command: StoredCommand) -> bool:
        """Whether C{command}'s expiry has passed (on the queue's clock)."""
        expiry = expiryOf(command)
        return expiry is not None and expiry <= utcFromSeconds(self.clock.seconds())

    @inlineCallbacks
    def refresh(self, command: StoredCommand) -> Any:
        """
        C{command} as it stands now: a queued one whose expiry has passed is settled
        C{expired} first (and written to the audit log).

        @return: a L{Deferred} of the L{StoredCommand} (C{None} if it was deleted meanwhile).
        """
        if command.status == COMMAND_QUEUED and self.isExpired(command):
            settled = yield self._expire(command, (COMMAND_QUEUED,))
            return settled
        return command

    @inlineCallbacks
    def _expire(self, command: StoredCommand, only: tuple[str, ...]) -> Any:
        outcome: tuple[StoredCommand, bool] | None = yield self.store.settleCommand(
            command.id, COMMAND_EXPIRED, only, expiryOf(command)
        )
        if outcome is None:
            self._vanished(command)
            return None
        settled, changed = outcome
        if changed:
            self.log.info(
                "command {id} {name} for {sn} expired undelivered (queued by {actor})",
                id=command.id,
                name=command.name,
                sn=command.sn,
                actor=command.actor,
            )
            yield self.store.addAuditEntry(
                EXPIRY_ACTOR,
                "command.expire",
                command.sn,
                {"id": command.id, "command": command.name, "attempts": settled.attempts},
            )
            self._notify(settled)
        return settled

    @inlineCallbacks
    def cancel(self, commandId: int) -> Any:
        """
        Cancel a queued command: it is never delivered.  One already C{sent} (the terminal may
        be acting on it) or finished is left as it is; so is one whose expiry has passed (it is
        settled C{expired}).

        @return: a L{Deferred} of C{(command, cancelled)}: the command as it is now, and whether
            this call cancelled it; or C{None} for an unknown id.
        """
        before: StoredCommand | None = yield self.store.getCommand(commandId)
        if before is None:
            return None
        before = yield self.refresh(before)
        if before is None:
            return None
        if before.status != COMMAND_QUEUED:
            return before, False
        outcome: tuple[StoredCommand, bool] | None = yield self.store.settleCommand(
            commandId, COMMAND_CANCELLED, (COMMAND_QUEUED,)
        )
        if outcome is None:
            return None
        after, changed = outcome
        if changed:
            self.log.info(
                "command {id} {name} for {sn} cancelled",
                id=after.id,
                name=after.name,
                sn=after.sn,
            )
            self._notify(after)
        return after, changed

    @property
    def activeWorkers(self) -> int:
        """Terminals whose queue is being delivered now."""
        return len(self._workers)

    # -- delivering ----------------------------------------------------------------------------

    def deliverPending(self, sn: str) -> None:
        """
        Deliver C{sn}'s queued commands, in order (a registration observer: called after each
        C{reg} that binds a connection).  Whether it has any is read with those of the
        terminals registered meanwhile (one query per batch in a storm, not a claim per
        terminal); one whose worker runs is kicked at once (its worker looks again).
        """
        if sn in self._workers:
            self.kick(sn)
            return
        self._pendingLook(sn).addCallbacks(
            lambda pending: self.kick(sn) if pending else None,
            lambda f: self.kick(sn),  # the worker's own claim tells (and logs) what is wrong
        )

    def _lookForPending(self, sns: list[str]) -> Deferred[list[bool]]:
        d: Deferred[set[str]] = self.store.terminalsWithPendingCommands(sns)
        return d.addCallback(lambda pending: [sn in pending for sn in sns])

    def kick(self, sn: str) -> None:
        """Start the worker of C{sn} if it is connected and none is running."""
        self._dirty.add(sn)
        if sn in self._workers:
            return
        if not self.commands.isConnected(sn):
            self._dirty.discard(sn)
            self._releaseWaiters(sn)
            return
        self._workers.add(sn)
        # the API's commands wait on this worker: it never runs in the background lane, even
        # when a registration's follow-up work starts it
        inForeground(self._work, sn).addBoth(self._workerDone, sn)

    def _workerDone(self, result: object, sn: str) -> None:
        self._workers.discard(sn)
        if sn in self._dirty and self.commands.isConnected(sn):
            # asked for while this worker was ending (a registration of a new connection while
            # the old one's delivery was failing): deliver on the new connection now
            self.kick(sn)
            return
        self._releaseWaiters(sn)
        for d in self._idleWaiters.pop(sn, []):
            d.callback(None)

    def idle(self, sn: str) -> Deferred[None]:
        """A L{Deferred} firing when the worker of C{sn} (if any) has stopped."""
        if sn not in self._workers:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idleWaiters.setdefault(sn, []).append(d)
        return d

    @inlineCallbacks
    def _work(self, sn: str, first: StoredCommand | None = None) -> Any:
        """
        Deliver C{sn}'s commands, oldest first, while it is connected; C{first}: a command
        marked C{sent} already (L{submit}), delivered before anything is claimed.
        """
        # the answer of the last claim (None: nothing to deliver), when `checked`
        claimed: tuple[StoredCommand, bool] | None = None if first is None else (first, True)
        checked = first is not None
        try:
            while True:
                if not checked:
                    if not self.commands.isConnected(sn):
                        return
                    self._dirty.discard(sn)
                    # the oldest pending command, marked sent in the same transaction
                    claimed = yield self.store.claimCommand(sn, self.isExpired)
                checked = False
                if claimed is None:
                    if sn in self._dirty:
                        continue
                    return
                command, sent = claimed
                if not sent:
                    if command.status in (COMMAND_QUEUED, COMMAND_SENT):
                        # expired; one left "sent" by a stopped server is not in flight either
                        yield self._expire(command, (COMMAND_QUEUED, COMMAND_SENT))
                    else:
                        self._notify(command)  # settled meanwhile: never sent
                    continue
                keepGoing, checked, claimed = yield self._deliver(command)
                if not keepGoing:
                    return
        except StoreUnavailable as e:
            self.log.warn(
                "command queue of {sn} paused, the store is unavailable: {error}",
                sn=sn,
                error=str(e),
            )
            self._failWaiters(sn, e)
        except Exception as e:
            self.log.failure("command queue of {sn} stopped: {error}", sn=sn, error=str(e))
            self._failWaiters(sn, e)

    @inlineCallbacks
    def _deliver(self, command: StoredCommand) -> Any:
        """
        One delivery attempt of C{command}, marked C{sent} already (L{ICommandStore.claimCommand}).
        While the terminal is still connected, its outcome is stored in one transaction with
        the claim of the next command (L{ICommandStore.finishAndClaimCommand}).

        @return: a L{Deferred} of C{(keepGoing, checked, claimed)}: C{keepGoing} C{True} to go
            on with the next command, C{False} to stop (the terminal is gone); C{checked}
            whether the next command was claimed, and C{claimed} what that claim answered.
        """
        self.log.info(
            "command {id} {name} sent to {sn} (attempt {attempt}/{max})",
            id=command.id,
            name=command.name,
            sn=command.sn,
            attempt=command.attempts,
            max=command.maxAttempts,
        )
        final = command.attempts >= command.maxAttempts
        replyFields: dict[str, Any] | None = None
        timedOut = False
        keepGoing = True
        try:
            if _isPaged(command.name):
                reply = yield self._executePaged(command)
            else:
                reply = yield self.commands.execute(command.sn, command.payload, self.timeout)
        except CommandTimeout:
            timedOut = True
            status, outcome = (COMMAND_TIMED_OUT if final else COMMAND_QUEUED), "no reply"
        except TerminalGone:
            keepGoing = False
            status, outcome = (COMMAND_FAILED if final else COMMAND_QUEUED), "terminal disconnected"
        else:
            status = COMMAND_SUCCEEDED if reply is None or reply.result else COMMAND_FAILED
            replyFields, outcome = replyAsDict(reply), "replied"
        checked = keepGoing and self.commands.isConnected(command.sn)
        claimed: tuple[StoredCommand, bool] | None = None
        if checked:
            self._dirty.discard(command.sn)  # as before any claim: a later kick is seen
            updated, claimed = yield self.store.finishAndClaimCommand(
                command.id, status, replyFields, False, command.sn, self.isExpired
            )
        else:
            updated = yield self.store.updateCommand(command.id, status, replyFields, False)
        if updated is None:
            self._vanished(command)
            return keepGoing, checked, claimed
        self.log.emit(
            LogLevel.warn if timedOut else LogLevel.info,
            "command {id} {name} to {sn}: {outcome}, now {status} (attempt {attempt}/{max})",
            id=command.id,
            name=command.name,
            sn=command.sn,
            outcome=outcome,
            status=status,
            attempt=command.attempts,
            max=command.maxAttempts,
        )
        self._notify(updated, QueuedCommandTimeout(updated) if timedOut else None)
        return keepGoing, checked, claimed

    @inlineCallbacks
    def _executePaged(self, command: StoredCommand) -> Any:
        """
        Page a paged command (C{getuserlist}, C{getnewlog}, C{getalllog}, C{getallusers}) to
        the end and answer one reply holding every record: C{count}, C{pages}, C{stop} (why the
        paging ended) and C{record}.  Logs read by C{getnewlog}/C{getalllog} are also stored
        (C{getnewlog} marks them read on the terminal), and C{stored} says what was new.
        """
        name = command.name
        params = {k: v for k, v in command.payload.items() if k not in ("cmd", "stn")}
        terminal = yield self.store.getTerminal(command.sn)
        maxPages, maxRecords = pagingLimits(terminal, name)
        storer = (
            LogPageStorer(self._addLogs or self.store.addLogs, command.sn)
            if name in _LOG_COMMANDS
            else None
        )
        paging = yield self.commands.pageAll(
            command.sn,
            name,
            params,
            maxPages=maxPages,
            onPage=storer,
            timeout=self.timeout,
            maxRecords=maxRecords,
        )
        first: CommandReply = paging.first
        fields: dict[str, Any] = {
            "count": len(paging.records),
            "pages": paging.pages,
            "stop": paging.why,
            "record": list(paging.records),
        }
        if storer is not None:
            stored = storer.result()
            fields["stored"] = {
                "inserted": stored.inserted,
                "duplicates": stored.duplicates,
                "invalid": stored.invalid,
            }
        return CommandReply(
            ret=name, sn=first.sn, result=first.result, reason=first.reason, fields=fields
        )

    def _vanished(self, command: StoredCommand) -> None:
        """The command was deleted meanwhile (with its terminal): forget it."""
        self.log.info(
            "command {id} {name} of {sn} was deleted meanwhile",
            id=command.id,
            name=command.name,
            sn=command.sn,
        )
        for waiter in self._waiters.pop(command.id, []):
            waiter.fail(CommandVanishedError(f"command {command.id} was deleted"))

    # -- waiters -------------------------------------------------------------------------------

    def _notify(self, command: StoredCommand, error: BaseException | None = None) -> None:
        """A command changed (delivered, expired, cancelled): its waiters, then the observers."""
        for waiter in self._waiters.pop(command.id, []):
            if error is not None:
                waiter.fail(error)
            else:
                waiter.fire(command)
        for observer in list(self.observers):
            try:
                observer(command)
            except Exception:
                self.log.failure("command observer failed")

    def _releaseWaiters(self, sn: str) -> None:
        """The worker of C{sn} stopped: callers still waiting get their command as stored."""
        if sn in self._workers:
            return
        for commandId, waiters in list(self._waiters.items()):
            if not waiters or waiters[0].sn != sn:
                continue
            del self._waiters[commandId]
            d: Deferred[StoredCommand | None] = self.store.getCommand(commandId)

            def fire(command: StoredCommand | None, waiters: list[_Waiter] = waiters) -> None:
                for waiter in waiters:
                    if command is None:
                        waiter.fail(CommandVanishedError("the command was deleted"))
                    else:
                        waiter.fire(command)

            def failed(f: Any, waiters: list[_Waiter] = waiters) -> None:
                for waiter in waiters:
                    waiter.fail(f.value)

            d.addCallbacks(fire, failed)

    def _failWaiters(self, sn: str, error: BaseException) -> None:
        """The worker of C{sn} failed (the store): callers waiting get the error."""
        for commandId, waiters in list(self._waiters.items()):
            if waiters and waiters[0].sn == sn:
                del self._waiters[commandId]
                for waiter in waiters:
                    waiter.fail(error)
