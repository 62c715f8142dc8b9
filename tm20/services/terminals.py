"""
What an operator does to a terminal, the same rules for every door (the REST API and the
console): read a terminal with its connection and watch state, change its record (approve,
reject, rename, time zone, disable: a terminal no longer allowed is disconnected), reset its
identity, send it a command (a destructive one only when confirmed), pull its users or logs.
Each change is written to the audit trail with the actor's name before it is made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from twisted.logger import Logger

from tm20.model import (
    COMMAND_CANCELLED,
    COMMAND_SENT,
    StoredCommand,
    Terminal,
    TerminalWatch,
    User,
)
from tm20.protocol.codes import CloseCode
from tm20.protocol.commands import COMMANDS, buildCommand
from tm20.protocol.messages import ProtocolError
from tm20.protocol.serial import snProblem
from tm20.services.errors import ServiceError
from tm20.services.identity import hashSecret
from tm20.services.pulls import PullBusyError
from tm20.services.queue import CommandVanishedError

__all__ = ["TerminalService", "TerminalView", "gone"]


@attrs.frozen
class TerminalView:
    """
    A terminal as an operator sees it: its record, whether it is connected, and what the watch
    knows of it (all C{None}/C{False} when terminals are not watched).
    """

    terminal: Terminal
    connected: bool
    watched: bool
    watch: TerminalWatch | None = None
    silentAfter: float = 0.0
    driftFlagged: bool = False
    lastHeard: float | None = None
    gapBusy: bool = False
    #: the cluster node holding its connection (C{None}: not connected)
    node: str | None = None


class NotCancellable(ServiceError):
    """
    A command that is no longer queued (sent, done or cancelled) cannot be cancelled.

    @ivar command: the command as it is (each door shows it its own way).
    """

    def __init__(self, command: StoredCommand) -> None:
        if command.status == COMMAND_CANCELLED:
            why = "was already cancelled"
        elif command.status == COMMAND_SENT:
            why = "is already sent to the terminal"
        else:
            why = f"is {command.status}"
        super().__init__(
            409,
            "not_cancellable",
            f"command {command.id} {why}: only a queued command can be cancelled",
            commandId=command.id,
        )
        self.command = command


def conflict() -> ServiceError:
    return ServiceError(409, "conflict", "the terminal or user was deleted meanwhile")


@contextmanager
def gone() -> Iterator[None]:
    """A store refusing a write because the terminal (or command) was just deleted: 409."""
    try:
        yield
    except ProtocolError:
        raise
    except (ValueError, CommandVanishedError):
        raise conflict() from None


def checkTimezone(name: str | None) -> str | None:
    """C{name} when it is a known IANA zone (or C{None}); a 400 naming C{timezone} otherwise."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ServiceError(
            400, "invalid_body", f"unknown time zone {name!r}", field="timezone"
        ) from None
    return name


def userCommands(
    enrollid: int,
    name: str | None,
    admin: int | None,
    credentials: list[dict[str, Any]],
    enabled: bool | None,
    profileChanged: bool,
) -> list[tuple[str, dict[str, Any]]]:
    """
    The commands that apply a user change on the terminal, each validated: a C{setuserinfo} per
    credential (or one for the name and admin flag alone), and C{enableuser} + C{setuserinfo
    enable} when C{enabled} is given.
    """
    base: dict[str, Any] = {"enrollid": enrollid}
    if name is not None:
        base["name"] = name
    if admin is not None:
        base["admin"] = admin
    out: list[tuple[str, dict[str, Any]]] = []
    for i, credential in enumerate(credentials):
        params = {**base, "backupnum": credential["backupnum"], "record": credential["record"]}
        try:
            out.append(("setuserinfo", buildCommand("setuserinfo", params)))
        except ProtocolError as e:
            field = (
                f"credentials[{i}]" if e.field in (None, "cmd") else f"credentials[{i}].{e.field}"
            )
            raise ServiceError(400, "invalid_params", e.problem, field=field) from None
    if not credentials and profileChanged:
        out.append(("setuserinfo", buildCommand("setuserinfo", base)))
    if enabled is not None:
        flag = 1 if enabled else 0
        out.append(
            ("enableuser", buildCommand("enableuser", {"enrollid": enrollid, "enflag": flag}))
        )
        out.append(
            ("setuserinfo", buildCommand("setuserinfo", {"enrollid": enrollid, "enable": flag}))
        )
    return out


class TerminalService:
    """
    @param context: the L{tm20.context.ServerContext} (store, registry, registration, queue,
        pulls, commands, watch).
    """

    log = Logger()

    def __init__(self, context: Any) -> None:
        self.context = context

    @property
    def store(self) -> Any:
        return self.context.store

    # -- reading -----------------------------------------------------------------------------------

    async def get(self, sn: str) -> Terminal:
        """The terminal C{sn}; a 404 when there is none."""
        terminal: Terminal | None = await self.store.getTerminal(sn)
        if terminal is None:
            raise ServiceError(404, "not_found", f"no terminal {sn!r}")
        return terminal

    def heldHere(self, sn: str) -> Terminal | None:
        """
        C{sn}'s record as its open, registered connection on this node holds it (the one its
        registration committed, kept current by C{RegistrationService.terminalChanged}), or
        C{None}.  A terminal connected here exists: no need to read it again.  A connection
        being closed (the terminal deleted or disabled) does not count.
        """
        session = self.context.registry.get(sn)
        if session is None or not session.registered or session.sn != sn or not session.isOpen:
            return None
        terminal: Terminal | None = session.terminal
        return terminal

    async def holder(self, sn: str) -> str | None:
        """The node of the cluster (or this process) holding C{sn}'s connection, or C{None}."""
        node: str | None = await self.context.cluster.holder(sn)
        return node

    async def watches(self) -> dict[str, TerminalWatch]:
        """Every terminal's watch row, by C{sn} (empty when terminals are not watched)."""
        if self.context.watch is None:
            return {}
        return {w.sn: w for w in await self.store.listWatches()}

    def view(
        self,
        terminal: Terminal,
        connected: bool,
        watch: TerminalWatch | None,
        node: str | None = None,
    ) -> TerminalView:
        """A L{TerminalView} of C{terminal} (no I/O)."""
        watching = self.context.watch
        if watching is None:
            return TerminalView(terminal, connected, False, node=node)
        return TerminalView(
            terminal,
            connected,
            True,
            watch,
            watching.silence.thresholdFor(watch),
            watching.drift.flagged(watch.clockDrift if watch is not None else None),
            watching.silence.lastHeard(terminal),
            watching.gaps.busy(terminal.sn),
            node,
        )

    async def viewOf(self, terminal: Terminal) -> TerminalView:
        """L{view} of one terminal, its watch read from the store."""
        watch = None
        if self.context.watch is not None:
            watch = await self.store.getWatch(terminal.sn)
        node = await self.holder(terminal.sn)
        return self.view(terminal, node is not None, watch, node)

    async def views(self, approved: bool | None = None) -> list[TerminalView]:
        """Every terminal (only approved or pending ones when C{approved} is given)."""
        terminals: list[Terminal] = await self.store.listTerminals(approved)
        watches = await self.watches()
        holders: dict[str, str] = await self.context.cluster.holders()
        return [
            self.view(t, t.sn in holders, watches.get(t.sn), holders.get(t.sn)) for t in terminals
        ]

    # -- audit -------------------------------------------------------------------------------------

    async def audit(
        self, actor: str, action: str, target: str | None, detail: Mapping[str, Any]
    ) -> None:
        """Write one audit entry (before the change it records is made)."""
        await self.store.addAuditEntry(actor, action, target, dict(detail))
        self._audited(actor, action, target)

    def _audited(self, actor: str, action: str, target: str | None) -> None:
        """The log line of an audit entry written (by L{audit}, or with the change itself)."""
        self.log.info("{actor} {action} {target}", actor=actor, action=action, target=target)

    # -- changing a terminal -----------------------------------------------------------------------

    async def create(
        self,
        actor: str,
        sn: str,
        name: str | None,
        approved: bool,
        timezone: str | None,
        active: bool,
        audited: Mapping[str, Any],
    ) -> Terminal:
        """
        Record a terminal before it first connects: an C{sn} it could never register with (the
        rule of its C{reg}) or an unknown zone is a 400, one that exists a 409.

        @param audited: what the audit entry records (the request).
        """
        problem = snProblem(sn)
        if problem is not None:
            raise ServiceError(400, "invalid_body", problem, field="sn")
        timezone = checkTimezone(timezone)
        if await self.store.getTerminal(sn) is not None:
            raise ServiceError(409, "conflict", f"terminal {sn!r} exists")
        await self.audit(actor, "terminal.create", sn, audited)
        try:
            terminal: Terminal = await self.store.createTerminal(sn, name, approved, timezone)
        except ValueError:
            raise ServiceError(409, "conflict", f"terminal {sn!r} exists") from None
        if not active:
            terminal = await self.store.updateTerminal(sn, {"active": False})
        return terminal

    async def delete(self, actor: str, sn: str) -> None:
        """
        Forget C{sn} (its users, logs and commands with it): a connected terminal is
        disconnected, and no longer watched.
        """
        await self.get(sn)
        await self.audit(actor, "terminal.delete", sn, {})
        if not await self.store.deleteTerminal(sn):
            raise ServiceError(404, "not_found", f"no terminal {sn!r}")
        self.disconnect(sn, "deleted by the operator")
        if self.context.watch is not None:
            self.context.watch.forget(sn)

    def disconnect(self, sn: str, reason: str) -> None:
        """Close C{sn}'s connection (4003), on whichever node of the cluster holds it."""
        d = self.context.cluster.disconnect(sn, CloseCode.DISABLED, reason)
        d.addErrback(
            lambda f: self.log.warn(
                "cannot disconnect {sn}: {error}", sn=sn, error=f.getErrorMessage()
            )
        )

    async def update(
        self, actor: str, sn: str, changes: Mapping[str, Any], audited: Mapping[str, Any]
    ) -> Terminal:
        """
        Change C{sn}'s record (C{name}, C{approved}, C{active}, C{timezone}, C{secret},
        C{silentAfter}); the connection uses the new record at once, and a terminal no longer
        approved or active is disconnected.

        @param audited: what the audit entry records (the request, a secret redacted by the
            caller's choice of words).
        """
        await self.get(sn)
        changes = dict(changes)
        if "timezone" in changes:
            changes["timezone"] = checkTimezone(changes["timezone"])
        silentChange = "silentAfter" in changes
        silentAfter = changes.pop("silentAfter", None)
        if silentChange and self.context.watch is None:
            raise ServiceError(
                400, "invalid_body", "terminals are not watched here", field="silentAfter"
            )
        audited = dict(audited)
        secretChange = "secret" in changes
        secret: str | None = changes.pop("secret", None)
        if secretChange:
            # The audit log says that the secret changed, never what it is.
            audited["secret"] = "removed" if secret is None else "set"
        await self.audit(actor, "terminal.update", sn, audited)
        terminal: Terminal | None = None
        if changes:
            terminal = await self.store.updateTerminal(sn, changes)
            if terminal is None:
                raise ServiceError(404, "not_found", f"no terminal {sn!r}")
        if secretChange:
            terminal = await self.store.setTerminalSecret(
                sn, None if secret is None else hashSecret(secret)
            )
        if silentChange:
            if await self.store.updateWatch(sn, {"silentAfter": silentAfter}) is None:
                raise ServiceError(404, "not_found", f"no terminal {sn!r}")
            if terminal is None:
                terminal = await self.store.getTerminal(sn)
        if terminal is None:
            raise ServiceError(404, "not_found", f"no terminal {sn!r}")
        # Its connection uses the new record at once: the next cloudtime is in the new zone.
        self._changed(terminal)
        if not terminal.approved or not terminal.active:
            self.disconnect(sn, "disabled by the operator")
        return terminal

    async def resetIdentity(self, actor: str, sn: str) -> Terminal:
        """Forget the identity C{sn} was flagged for (it registers anew)."""
        await self.get(sn)
        await self.audit(actor, "terminal.identity.reset", sn, {})
        terminal: Terminal | None = await self.store.resetTerminalIdentity(sn)
        if terminal is None:
            raise ServiceError(404, "not_found", f"no terminal {sn!r}")
        self._changed(terminal)
        return terminal

    def _changed(self, terminal: Terminal) -> None:
        """The connection of C{terminal} uses its new record: here, or on the node holding it."""
        self.context.registration.terminalChanged(terminal)
        d = self.context.cluster.terminalChanged(terminal.sn)
        d.addErrback(
            lambda f: self.log.warn(
                "cannot tell the node holding {sn} of its change: {error}",
                sn=terminal.sn,
                error=f.getErrorMessage(),
            )
        )

    # -- commands ----------------------------------------------------------------------------------

    async def sendCommand(
        self,
        actor: str,
        sn: str,
        name: str,
        params: Mapping[str, Any],
        confirm: bool = False,
        wait: bool = False,
        expiresIn: float | None = None,
    ) -> StoredCommand:
        """
        Queue command C{name} for C{sn} (and wait for its answer when C{wait}).  A destructive
        command (judged on the frame sent: C{opendoor} with C{doornum} 1 opens one door, without
        it every door) needs C{confirm}.

        @raise QueuedCommandTimeout: C{wait} and the terminal did not answer in time.
        """
        # connected here: its record is at hand (a 404 needs a read otherwise)
        terminal = self.heldHere(sn) or await self.get(sn)
        spec = COMMANDS.get(name)
        if spec is None:
            raise ServiceError(400, "invalid_params", f"unknown command {name!r}", field="command")
        try:
            # the one validation of the command: the queue stores this frame as it is
            payload: dict[str, Any] = await self.context.queue.buildPayload(
                sn, name, dict(params), terminal
            )
        except ProtocolError as e:
            field = (
                "command"
                if e.field == "cmd"
                else "params"
                if e.field is None
                else f"params.{e.field}"
            )
            raise ServiceError(400, "invalid_params", e.problem, field=field) from None
        if spec.isDestructive(payload) and not confirm:
            raise ServiceError(
                400,
                "confirmation_required",
                f'{name} is destructive: send "confirm": true to go ahead',
                field="confirm",
            )
        audited: dict[str, Any] = {"command": name, "params": dict(params)}
        if expiresIn is not None:
            audited["expiresIn"] = expiresIn
        # the audit entry is written in the command's own transaction (one commit for both)
        self._audited(actor, "command.submit", sn)
        with gone():
            command: StoredCommand = await self.context.queue.submit(
                sn,
                name,
                dict(params),
                actor,
                wait=wait,
                expiresIn=expiresIn,
                payload=payload,
                audit=(actor, "command.submit", sn, audited),
            )
        return command

    # -- users -------------------------------------------------------------------------------------

    async def cancelCommand(self, actor: str, commandId: int) -> StoredCommand:
        """
        Cancel a queued command (audited); one already sent, done or cancelled cannot be:
        L{NotCancellable} (409).
        """
        outcome: tuple[StoredCommand, bool] | None = await self.context.queue.cancel(commandId)
        if outcome is None:
            raise ServiceError(404, "not_found", f"no command {commandId}")
        after, cancelled = outcome
        if not cancelled:
            raise NotCancellable(after)
        await self.audit(
            actor,
            "command.cancel",
            after.sn,
            {"id": after.id, "command": after.name, "attempts": after.attempts},
        )
        return after

    async def applyUser(
        self,
        actor: str,
        sn: str,
        enrollid: int,
        commands: list[tuple[str, dict[str, Any]]],
        name: str | None,
        admin: int,
        enabled: bool,
    ) -> tuple[User, list[StoredCommand]]:
        """
        Store user C{enrollid} as it will be (and each credential a C{setuserinfo} carries),
        then queue C{commands} (from L{userCommands}) for the terminal.  The caller audits first.
        """
        with gone():
            await self.store.saveUser(sn, enrollid, name, admin, enabled)
            for _, payload in commands:
                if payload["cmd"] == "setuserinfo" and "backupnum" in payload:
                    await self.store.saveCredential(
                        sn, enrollid, payload["backupnum"], payload["record"], None, None
                    )
        queued = []
        for command, payload in commands:
            params = {k: v for k, v in payload.items() if k != "cmd"}
            with gone():
                queued.append(
                    await self.context.queue.submit(sn, command, params, actor, wait=False)
                )
        user: User | None = await self.store.getUser(sn, enrollid)
        if user is None:
            raise conflict()
        return user, queued

    async def removeUser(
        self, actor: str, sn: str, enrollid: int, backupnum: int = 13
    ) -> tuple[int, StoredCommand]:
        """
        Remove user C{enrollid} (C{backupnum} 13: everything; else one credential slot) from the
        store and queue the C{deleteuser} that removes it from the terminal.

        @return: how many rows were deleted, and the queued command.
        """
        await self.get(sn)
        if await self.store.getUser(sn, enrollid) is None:
            raise ServiceError(404, "not_found", f"no user {enrollid} on {sn!r}")
        try:
            payload = buildCommand("deleteuser", {"enrollid": enrollid, "backupnum": backupnum})
        except ProtocolError as e:
            field = "params" if e.field is None else e.field
            raise ServiceError(400, "invalid_params", e.problem, field=field) from None
        await self.audit(actor, "user.delete", f"{sn}/{enrollid}", {"backupnum": backupnum})
        if backupnum == 13:
            deleted = 1 if await self.store.deleteUser(sn, enrollid) else 0
        else:
            deleted = await self.store.deleteCredential(sn, enrollid, backupnum)
        params = {k: v for k, v in payload.items() if k != "cmd"}
        with gone():
            command: StoredCommand = await self.context.queue.submit(
                sn, "deleteuser", params, actor, wait=False
            )
        return deleted, command

    # -- pulls -------------------------------------------------------------------------------------

    async def requireConnected(self, sn: str) -> None:
        """409 unless C{sn} is connected to a node of the cluster (or this process)."""
        if await self.holder(sn) is None:
            raise ServiceError(409, "terminal_offline", f"terminal {sn!r} is not connected")

    async def pullUsers(self, actor: str, sn: str) -> Any:
        """Read every user of C{sn} into the store (a L{tm20.services.pulls} result)."""
        await self.get(sn)
        await self.requireConnected(sn)
        await self.audit(actor, "users.pull", sn, {})
        try:
            with gone():
                return await self.context.pulls.pullUsers(sn)
        except PullBusyError as e:
            raise ServiceError(409, "pull_in_progress", str(e)) from None

    async def pullLogs(
        self,
        actor: str,
        sn: str,
        allLogs: bool,
        start: str | None,
        end: str | None,
        audited: Mapping[str, Any],
    ) -> Any:
        """Read C{sn}'s new logs (or all of them between C{start} and C{end})."""
        await self.get(sn)
        await self.requireConnected(sn)
        await self.audit(actor, "logs.pull", sn, audited)
        try:
            with gone():
                return await self.context.pulls.pullLogs(sn, allLogs, start, end)
        except PullBusyError as e:
            raise ServiceError(409, "pull_in_progress", str(e)) from None
