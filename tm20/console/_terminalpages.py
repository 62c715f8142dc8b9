"""
A terminal's page and its actions (operators): each form becomes one call of
L{tm20.services.terminals.TerminalService}; a destructive command, opening a door and removing
a user first show a confirmation page that names what will happen.  Mixed into
L{tm20.console._app.Console}.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.web.iweb import IRequest

from tm20.console._base import ConsoleBase, Page
from tm20.console._forms import formValue, terminalTime
from tm20.console._views import ACTIONS, DONE, NOTES, boardRow, userRow
from tm20.model import LogQuery, StoredCommand
from tm20.services.accounts import LoggedIn
from tm20.services.errors import ServiceError
from tm20.services.queue import FINAL_STATUSES
from tm20.services.terminals import userCommands
from tm20.views.model import commandJSON, describeTerminal, logJSON

__all__ = ["TerminalPages"]


class TerminalPages(ConsoleBase):
    async def terminalPage(
        self,
        request: IRequest,
        who: LoggedIn,
        sn: str,
        status: int = 200,
        error: str | None = None,
        confirm: dict[str, Any] | None = None,
    ) -> bytes:
        terminal = await self.terminals.get(sn)
        view = await self.terminals.viewOf(terminal)
        users = await self.store.listUsers(sn, 200, None)
        logs = await self.store.queryLogs(LogQuery(sn=sn, limit=20))
        doors = await self.store.queryDoorEvents(LogQuery(sn=sn, limit=10))
        pending: list[StoredCommand] = await self.store.pendingCommands(sn)
        commands = []
        for command in pending:
            current = await self.context.queue.refresh(command)
            if current is not None:
                commands.append(commandJSON(current))
        done = None
        doneId = formValue(request, "command")
        if doneId.isdigit():
            found = await self.store.getCommand(int(doneId))
            if found is not None and found.sn == sn:
                done = commandJSON(await self.context.queue.refresh(found) or found)
        return self.render(
            request,
            "terminal.html",
            status,
            who,
            t=terminal,
            row=boardRow(view, self.clock.seconds()),
            detail=describeTerminal(view),
            users=[userRow(u) for u in users],
            logs=[logJSON(entry) for entry in logs],
            doors=[logJSON(entry) for entry in doors],
            commands=commands,
            done=done,
            note=NOTES.get(formValue(request, "note")),
            error=error,
            confirm=confirm,
            finals=FINAL_STATUSES,
            access=await self.accessOfTerminal(sn),
        )

    def _terminalAction(self, action: str) -> Page:
        async def act(request: IRequest, who: LoggedIn, sn: str) -> bytes:
            try:
                return await self._act(action, request, who, sn)
            except ServiceError as e:
                if e.status == 404:
                    raise
                return await self.terminalPage(request, who, sn, status=e.status, error=e.detail)

        act.__name__ = f"terminal_{action.replace('-', '_')}"
        return act

    async def _act(self, action: str, request: IRequest, who: LoggedIn, sn: str) -> bytes:
        page = f"/admin/terminals/{quote(sn, safe='')}/"
        actor = who.actor
        if action == "command":
            return await self._command(request, who, sn, page)
        if action == "pull-users":
            await self.terminals.pullUsers(actor, sn)
            return self._redirect(request, page + "?note=users-pulled")
        if action == "pull-logs":
            source = formValue(request, "source") or "new"
            start = end = None
            audited: dict[str, Any] = {"source": source}
            if source == "all":
                start = terminalTime("from", formValue(request, "from"), endOfDay=False)
                end = terminalTime("to", formValue(request, "to"), endOfDay=True)
                audited.update({k: v for k, v in (("from", start), ("to", end)) if v})
            elif source != "new":
                raise ServiceError(400, "invalid_form", "source is new or all", field="source")
            await self.terminals.pullLogs(actor, sn, source == "all", start, end, audited)
            return self._redirect(request, page + "?note=logs-pulled")
        if action == "update":
            changes: dict[str, Any] = {}
            name = formValue(request, "name")
            changes["name"] = name or None
            timezone = formValue(request, "timezone")
            changes["timezone"] = timezone or None
            await self.terminals.update(actor, sn, changes, changes)
            return self._redirect(request, page + "?note=saved")
        if action in ("approve", "reject", "disable", "enable"):
            field, value = {
                "approve": ("approved", True),
                "reject": ("approved", False),
                "disable": ("active", False),
                "enable": ("active", True),
            }[action]
            audited = {field: value}
            reason = formValue(request, "reason")
            if reason:
                audited["reason"] = reason[:500]
            await self.terminals.update(actor, sn, {field: value}, audited)
            return self._redirect(request, page + f"?note={DONE[action]}")
        if action == "reset-identity":
            await self.terminals.resetIdentity(actor, sn)
            return self._redirect(request, page + "?note=identity-reset")
        if action == "push-user":
            return await self._pushUser(request, who, sn, page)
        if action == "remove-user":
            enrollid = formValue(request, "enrollid")
            if not enrollid.isdigit():
                raise ServiceError(400, "invalid_form", "must be a number", field="enrollid")
            if formValue(request, "confirm") != "yes":
                return await self.terminalPage(
                    request,
                    who,
                    sn,
                    confirm={
                        "action": "remove-user",
                        "fields": {"enrollid": enrollid},
                        "what": f"Remove user {int(enrollid)}",
                    },
                )
            _, command = await self.terminals.removeUser(actor, sn, int(enrollid))
            return self._redirect(request, page + f"?command={command.id}")
        raise ServiceError(404, "not_found", "no such action")

    async def _pushUser(self, request: IRequest, who: LoggedIn, sn: str, page: str) -> bytes:
        """A new user on the terminal: name, admin flag, card and/or password (numbers)."""
        form = {k: formValue(request, k) for k in ("enrollid", "name", "admin", "card", "password")}
        if not form["enrollid"].isdigit() or int(form["enrollid"]) < 1:
            raise ServiceError(400, "invalid_form", "must be a number from 1", field="enrollid")
        enrollid = int(form["enrollid"])
        credentials: list[dict[str, Any]] = []
        for field, backupnum in (("password", 10), ("card", 11)):
            if form[field]:
                if not form[field].isdigit():
                    raise ServiceError(400, "invalid_form", "must be digits", field=field)
                credentials.append({"backupnum": backupnum, "record": int(form[field])})
        await self.terminals.get(sn)
        if await self.store.getUser(sn, enrollid) is not None:
            raise ServiceError(
                409, "conflict", f"user {enrollid} exists on {sn!r}", field="enrollid"
            )
        admin = 1 if form["admin"] == "1" else 0
        name = form["name"] or None
        commands = userCommands(enrollid, name, admin, credentials, None, profileChanged=True)
        await self.terminals.audit(
            who.actor,
            "user.create",
            sn,
            {
                "enrollid": enrollid,
                "name": name,
                "admin": admin,
                "credentials": [{"backupnum": c["backupnum"]} for c in credentials],
            },
        )
        _, queued = await self.terminals.applyUser(
            who.actor, sn, enrollid, commands, name, admin, True
        )
        return self._redirect(request, page + f"?command={queued[-1].id}")

    async def _command(self, request: IRequest, who: LoggedIn, sn: str, page: str) -> bytes:
        name = formValue(request, "command")
        if name not in ACTIONS:
            raise ServiceError(400, "invalid_form", "unknown command", field="command")
        params: dict[str, Any] = {}
        what = {"settime": "Set the clock", "reboot": "Reboot the terminal"}.get(name, name)
        if name == "opendoor":
            door = formValue(request, "doornum")
            if not door.isdigit() or not 1 <= int(door) <= 4:
                raise ServiceError(400, "invalid_form", "choose a door, 1 to 4", field="doornum")
            params["doornum"] = int(door)
            what = f"Open door {int(door)}"
        confirmed = formValue(request, "confirm") == "yes"
        if name in ("opendoor", "reboot") and not confirmed:
            fields = {"command": name, **{k: str(v) for k, v in params.items()}}
            return await self.terminalPage(
                request,
                who,
                sn,
                confirm={"action": "command", "fields": fields, "what": what},
            )
        command = await self.terminals.sendCommand(
            who.actor, sn, name, params, confirm=confirmed, wait=False
        )
        return self._redirect(request, page + f"?command={command.id}")
