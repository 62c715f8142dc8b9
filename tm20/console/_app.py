"""
The operator console: a Klein app mounted at C{/admin/}, server-rendered with Jinja2
(autoescaped), a little plain JavaScript from C{static/} (live board, live events), no CDN.

It is a door: every action calls the same services as the REST API
(L{tm20.services.terminals.TerminalService}, L{tm20.services.accounts.AccountService}), which
hold the rules and write the audit trail with the actor C{console:NAME}.  This module only
translates forms into calls and results into pages, and guards the door: a session cookie, a
role per route, a CSRF token and a same-origin check on every POST, failed logins rate-limited
per source.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import attrs
from jinja2 import Environment, PackageLoader, select_autoescape
from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from tm20.api._csv import CSVExport
from tm20.api._errors import errorFromFailure
from tm20.api._events import webhookJSON
from tm20.api._serialize import commandJSON, describeTerminal, logJSON
from tm20.console._security import (
    clearCookie,
    csrfValid,
    sameOrigin,
    securityHeaders,
    sessionToken,
    setCookie,
)
from tm20.console._static import StaticFiles
from tm20.events.model import EVENT_TYPES, EventQuery, expandTypes
from tm20.events.sse import EventStream
from tm20.model import CONSOLE_ROLES, LogQuery, StoredCommand
from tm20.protocol.timefmt import normaliseDate, normaliseTime
from tm20.services.accounts import AccountService, LoggedIn, roleAllows
from tm20.services.errors import ServiceError
from tm20.services.queue import FINAL_STATUSES
from tm20.services.ratelimit import FailureRateLimiter
from tm20.services.terminals import TerminalService, TerminalView, userCommands
from tm20.services.tokens import SCOPES, TokenService
from tm20.services.webhooks import WebhookService
from tm20.terminal.limits import NetworkList, hostOf

__all__ = ["BOARD_STATES", "Console"]

#: The states the board counts and filters on, in the order shown.
BOARD_STATES = ("connected", "offline", "pending", "flagged", "silent", "inactive")
#: Logs per page of the search.
LOG_PAGE = 50
#: The commands the console offers on a terminal's page (more through the API).
ACTIONS = ("opendoor", "settime", "reboot")

Page = Callable[..., Awaitable[Any]]


def boardStates(view: TerminalView) -> list[str]:
    """The board's words for a terminal's states (the API's, with disconnected as offline)."""
    states = describeTerminal(view)["states"]
    return ["offline" if s == "disconnected" else s for s in states]


def _ago(value: datetime | None, now: float) -> str:
    if value is None:
        return "never"
    seconds = max(0, int(now - value.timestamp()))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}min ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def boardRow(view: TerminalView, now: float) -> dict[str, Any]:
    """One row of the board (also what C{terminals.json} sends to the live board)."""
    terminal = view.terminal
    devinfo = terminal.devinfo or {}
    drift = view.watch.clockDrift if view.watch is not None else None
    return {
        "sn": terminal.sn,
        "name": terminal.name or "",
        "states": boardStates(view),
        "timezone": terminal.timezone or "",
        "model": terminal.modelname or "",
        "firmware": terminal.firmware or "",
        "lastSeen": terminal.lastSeen.isoformat() if terminal.lastSeen else None,
        "lastSeenAgo": _ago(terminal.lastSeen, now),
        "drift": None if drift is None else round(float(drift)),
        "users": devinfo.get("useduser"),
        "logs": devinfo.get("usedlog"),
        "backlog": devinfo.get("usednewlog"),
        "url": f"/admin/terminals/{quote(terminal.sn, safe='')}/",
    }


def _arg(request: IRequest, name: str) -> str:
    values = (getattr(request, "args", None) or {}).get(name.encode("ascii")) or []
    if not values:
        return ""
    try:
        return str(values[-1].decode("utf-8")).strip()
    except UnicodeDecodeError:
        raise ServiceError(400, "invalid_form", "must be UTF-8", field=name) from None


def _terminalTime(name: str, value: str, endOfDay: bool) -> str | None:
    if not value:
        return None
    try:
        text = value.replace("T", " ").strip()
        if " " in text:
            if text.count(":") == 1:
                text += ":00"
            return normaliseTime(text)
        day = normaliseDate(text)
    except ValueError:
        raise ServiceError(
            400, "invalid_form", "must be YYYY-MM-DD[ HH:MM[:SS]]", field=name
        ) from None
    return f"{day} 23:59:59" if endOfDay else f"{day} 00:00:00"


class Console:
    """
    @param context: the L{tm20.context.ServerContext}.
    @param accounts: the account service (sessions, logins).
    @param limiter: counts failed logins per source.
    """

    log = Logger()

    def __init__(
        self,
        context: Any,
        accounts: AccountService,
        limiter: FailureRateLimiter | None = None,
    ) -> None:
        self.context = context
        self.store = context.store
        self.clock = context.clock
        self.terminals = TerminalService(context)
        self.accounts = accounts
        self.limiter = limiter if limiter is not None else FailureRateLimiter(context.clock)
        self.trusted = NetworkList(context.config.trustedProxies)
        self.templates = Environment(
            loader=PackageLoader("tm20.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.static = StaticFiles()
        self.app = Klein()
        self._routes()

    def resource(self) -> Any:
        return self.app.resource()

    # -- plumbing ----------------------------------------------------------------------------------

    def _routes(self) -> None:
        route = self.app.route
        route("/", methods=["GET"])(self._guard("viewer", self.board))
        route("/terminals.json", methods=["GET"])(self._guard("viewer", self.boardJSON))
        route("/terminals/<sn>/", methods=["GET"])(self._guard("viewer", self.terminalPage))
        for action in (
            "command",
            "pull-logs",
            "pull-users",
            "update",
            "approve",
            "reject",
            "disable",
            "enable",
            "reset-identity",
            "remove-user",
            "push-user",
        ):
            route(f"/terminals/<sn>/{action}", methods=["POST"], endpoint=f"t-{action}")(
                self._guard("operator", self._terminalAction(action), post=True)
            )
        route("/logs", methods=["GET"])(self._guard("viewer", self.logsPage))
        route("/logs.csv", methods=["GET"])(self._guard("viewer", self.logsCSV))
        route("/events", methods=["GET"])(self._guard("viewer", self.eventsPage))
        route("/events/stream", methods=["GET"])(self._guard("viewer", self.eventStream))
        route("/audit", methods=["GET"])(self._guard("viewer", self.auditPage))
        route("/accounts", methods=["GET"])(self._guard("admin", self.accountsPage))
        route("/accounts", methods=["POST"], endpoint="accounts-post")(
            self._guard("admin", self.accountsAction, post=True)
        )
        route("/tokens", methods=["GET"])(self._guard("admin", self.tokensPage))
        route("/tokens", methods=["POST"], endpoint="tokens-post")(
            self._guard("admin", self.tokensAction, post=True)
        )
        route("/webhooks", methods=["GET"])(self._guard("admin", self.webhooksPage))
        route("/webhooks/<int:webhookId>/replay", methods=["POST"])(
            self._guard("admin", self.webhookReplay, post=True)
        )
        route("/login", methods=["GET"])(self.loginPage)
        route("/login", methods=["POST"])(self.login)
        route("/logout", methods=["POST"])(self._guard("viewer", self.logout, post=True))
        route("/static/<name>", methods=["GET"])(self.staticFile)
        self.app.handle_errors(NotFound)(self._notFound)
        self.app.handle_errors(MethodNotAllowed)(self._notAllowed)

    def _notFound(self, request: IRequest, failure: Failure) -> bytes:
        return self.render(
            request, "error.html", 404, None, title="Not found", message="No such page."
        )

    def _notAllowed(self, request: IRequest, failure: Failure) -> bytes:
        allowed = sorted(getattr(failure.value, "valid_methods", None) or [])
        request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
        return self.render(
            request, "error.html", 405, None, title="Not allowed", message="Not allowed here."
        )

    def render(
        self,
        request: IRequest,
        template: str,
        status: int = 200,
        who: LoggedIn | None = None,
        **values: Any,
    ) -> bytes:
        securityHeaders(request)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        page = self.templates.get_template(template).render(
            who=who,
            role=who.account.role if who is not None else None,
            can=(lambda needed: who is not None and roleAllows(who.account.role, needed)),
            csrf=who.session.csrf if who is not None else "",
            **values,
        )
        return page.encode("utf-8")

    def _json(self, request: IRequest, body: Any, status: int = 200) -> bytes:
        securityHeaders(request)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _redirect(self, request: IRequest, to: str) -> bytes:
        securityHeaders(request)
        request.setResponseCode(303)
        request.setHeader(b"location", to.encode("utf-8"))
        return b""

    def _forbidden(self, request: IRequest, who: LoggedIn | None, why: str) -> bytes:
        return self.render(request, "error.html", 403, who, title="Forbidden", message=why)

    def _source(self, request: IRequest) -> str:
        return hostOf(request.getClientAddress())

    def _guard(self, needed: str, page: Page, post: bool = False) -> Callable[..., Any]:
        """
        A route that needs a live session of at least role C{needed}; a POST also needs the
        same origin and the session's CSRF token (403 otherwise).
        """

        async def guarded(request: IRequest, **kwargs: Any) -> Any:
            try:
                if post and not sameOrigin(request):
                    self.log.info("console: refused a cross-origin POST")
                    return self._forbidden(request, None, "This request came from another site.")
                who = await self.accounts.session(sessionToken(request))
                if who is None:
                    if post or request.path.endswith((b".json", b"/stream")):
                        return self.render(
                            request,
                            "error.html",
                            401,
                            None,
                            title="Logged out",
                            message="Your session ended: log in again.",
                        )
                    return self._redirect(
                        request, "/admin/login?" + urlencode({"next": request.uri.decode()})
                    )
                if post and not csrfValid(request, who.session.csrf):
                    self.log.info(
                        "console: refused a POST without its CSRF token from {actor}",
                        actor=who.actor,
                    )
                    return self._forbidden(request, who, "The form's security token is missing.")
                if not roleAllows(who.account.role, needed):
                    return self._forbidden(
                        request, who, f"This needs the {needed} role; you are {who.account.role}."
                    )
                return await page(request, who, **kwargs)
            except CancelledError:
                raise
            except ServiceError as e:
                return self.render(
                    request, "error.html", e.status, None, title="Refused", message=e.detail
                )
            except Exception:
                # the API's mapping: a database out of reach is a 503 (logged once, no
                # traceback), anything else a 500 logged with its traceback, no detail shown
                error = errorFromFailure(Failure(), request)
                message = {
                    503: "The database is unavailable; try again in a moment.",
                }.get(error.status, "Something went wrong; the server log says what.")
                return self.render(
                    request, "error.html", error.status, None, title="Error", message=message
                )

        guarded.__name__ = page.__name__
        return guarded

    def staticFile(self, request: IRequest, name: str) -> bytes:
        securityHeaders(request)
        return self.static.serve(request, name)

    # -- login -------------------------------------------------------------------------------------

    async def loginPage(self, request: IRequest) -> bytes:
        return self.render(request, "login.html", next=_safeNext(_arg(request, "next")))

    async def login(self, request: IRequest) -> bytes:
        try:
            return await self._login(request)
        except CancelledError:
            raise
        except Exception:
            error = errorFromFailure(Failure(), request)
            return self.render(
                request,
                "login.html",
                error.status,
                error="The database is unavailable; try again in a moment."
                if error.status == 503
                else "Something went wrong; the server log says what.",
                next="/admin/",
            )

    async def _login(self, request: IRequest) -> bytes:
        if not sameOrigin(request):
            return self._forbidden(request, None, "This request came from another site.")
        source = self._source(request)
        nextURL = _safeNext(_arg(request, "next"))
        retry = self.limiter.retryAfter(source)
        if retry > 0:
            request.setHeader(b"retry-after", str(int(retry) + 1).encode("ascii"))
            return self.render(
                request,
                "login.html",
                429,
                error=f"Too many failed logins: wait {int(retry) + 1} seconds.",
                next=nextURL,
            )
        name = _arg(request, "username")
        password = _arg(request, "password")
        who = await self.accounts.login(name, password)
        if who is None or who.token is None:
            self.limiter.failed(source)
            self.log.info(
                "console: failed login for {name!r} from {source}", name=name, source=source
            )
            return self.render(
                request,
                "login.html",
                401,
                error="Wrong name or password.",
                next=nextURL,
                username=name,
            )
        await self.terminals.audit(who.actor, "console.login", None, {"source": source})
        setCookie(request, who.token)
        return self._redirect(request, nextURL)

    async def logout(self, request: IRequest, who: LoggedIn) -> bytes:
        await self.accounts.logout(sessionToken(request))
        await self.terminals.audit(who.actor, "console.logout", None, {})
        clearCookie(request)
        return self._redirect(request, "/admin/login")

    # -- board -------------------------------------------------------------------------------------

    async def _rows(self) -> list[dict[str, Any]]:
        now = self.clock.seconds()
        views = await self.terminals.views()
        return [boardRow(v, now) for v in views]

    async def board(self, request: IRequest, who: LoggedIn) -> bytes:
        rows = await self._rows()
        counts = {state: sum(state in r["states"] for r in rows) for state in BOARD_STATES}
        return self.render(
            request,
            "board.html",
            who=who,
            rows=rows,
            counts=counts,
            total=len(rows),
            states=BOARD_STATES,
            state=_arg(request, "state"),
            q=_arg(request, "q"),
        )

    async def boardJSON(self, request: IRequest, who: LoggedIn) -> bytes:
        rows = await self._rows()
        counts = {state: sum(state in r["states"] for r in rows) for state in BOARD_STATES}
        return self._json(request, {"rows": rows, "counts": counts, "total": len(rows)})

    # -- a terminal --------------------------------------------------------------------------------

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
        doneId = _arg(request, "command")
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
            users=[_userRow(u) for u in users],
            logs=[logJSON(entry) for entry in logs],
            doors=[logJSON(entry) for entry in doors],
            commands=commands,
            done=done,
            note=_NOTES.get(_arg(request, "note")),
            error=error,
            confirm=confirm,
            finals=FINAL_STATUSES,
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
            source = _arg(request, "source") or "new"
            start = end = None
            audited: dict[str, Any] = {"source": source}
            if source == "all":
                start = _terminalTime("from", _arg(request, "from"), endOfDay=False)
                end = _terminalTime("to", _arg(request, "to"), endOfDay=True)
                audited.update({k: v for k, v in (("from", start), ("to", end)) if v})
            elif source != "new":
                raise ServiceError(400, "invalid_form", "source is new or all", field="source")
            await self.terminals.pullLogs(actor, sn, source == "all", start, end, audited)
            return self._redirect(request, page + "?note=logs-pulled")
        if action == "update":
            changes: dict[str, Any] = {}
            name = _arg(request, "name")
            changes["name"] = name or None
            timezone = _arg(request, "timezone")
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
            reason = _arg(request, "reason")
            if reason:
                audited["reason"] = reason[:500]
            await self.terminals.update(actor, sn, {field: value}, audited)
            return self._redirect(request, page + f"?note={_DONE[action]}")
        if action == "reset-identity":
            await self.terminals.resetIdentity(actor, sn)
            return self._redirect(request, page + "?note=identity-reset")
        if action == "push-user":
            return await self._pushUser(request, who, sn, page)
        if action == "remove-user":
            enrollid = _arg(request, "enrollid")
            if not enrollid.isdigit():
                raise ServiceError(400, "invalid_form", "must be a number", field="enrollid")
            if _arg(request, "confirm") != "yes":
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
        form = {k: _arg(request, k) for k in ("enrollid", "name", "admin", "card", "password")}
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
        name = _arg(request, "command")
        if name not in ACTIONS:
            raise ServiceError(400, "invalid_form", "unknown command", field="command")
        params: dict[str, Any] = {}
        what = {"settime": "Set the clock", "reboot": "Reboot the terminal"}.get(name, name)
        if name == "opendoor":
            door = _arg(request, "doornum")
            if not door.isdigit() or not 1 <= int(door) <= 4:
                raise ServiceError(400, "invalid_form", "choose a door, 1 to 4", field="doornum")
            params["doornum"] = int(door)
            what = f"Open door {int(door)}"
        confirmed = _arg(request, "confirm") == "yes"
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

    # -- logs --------------------------------------------------------------------------------------

    def _logQuery(self, request: IRequest) -> tuple[LogQuery, dict[str, str]]:
        form = {k: _arg(request, k) for k in ("sn", "enrollid", "since", "until", "cursor")}
        enrollid = None
        if form["enrollid"]:
            if not form["enrollid"].isdigit():
                raise ServiceError(400, "invalid_form", "must be a number", field="enrollid")
            enrollid = int(form["enrollid"])
        before = None
        if form["cursor"]:
            time, _, ident = form["cursor"].rpartition("|")
            if not ident.isdigit():
                raise ServiceError(400, "invalid_form", "invalid cursor", field="cursor")
            before = (time, int(ident))
        query = LogQuery(
            sn=form["sn"] or None,
            since=_terminalTime("since", form["since"], endOfDay=False),
            until=_terminalTime("until", form["until"], endOfDay=True),
            enrollid=enrollid,
            limit=LOG_PAGE,
            before=before,
        )
        return query, form

    async def logsPage(self, request: IRequest, who: LoggedIn) -> bytes:
        try:
            query, form = self._logQuery(request)
        except ServiceError as e:
            return self.render(request, "logs.html", 400, who, form={}, logs=[], error=e.detail)
        logs = await self.store.queryLogs(query)
        nextURL = None
        if len(logs) == query.limit:
            last = logs[-1]
            nextURL = "/admin/logs?" + urlencode(
                {
                    **{k: v for k, v in form.items() if v and k != "cursor"},
                    "cursor": f"{last.time}|{last.id}",
                }
            )
        csvURL = "/admin/logs.csv?" + urlencode(
            {k: v for k, v in form.items() if v and k != "cursor"}
        )
        quarantined = await self.store.listQuarantine(query.sn, 20, None)
        return self.render(
            request,
            "logs.html",
            who=who,
            form=form,
            logs=[logJSON(entry) for entry in logs],
            nextURL=nextURL,
            csvURL=csvURL,
            quarantined=quarantined,
        )

    async def logsCSV(self, request: IRequest, who: LoggedIn) -> Any:
        query, form = self._logQuery(request)
        base = attrs.evolve(query, before=None)

        def fetch(cursor: tuple[str, int] | None, limit: int) -> Any:
            return self.store.queryLogs(attrs.evolve(base, before=cursor, limit=limit))

        securityHeaders(request)
        export = CSVExport(fetch, None, filename=f"{query.sn or 'all'}-logs.csv")
        return await export.prepare()

    # -- live events -------------------------------------------------------------------------------

    async def eventsPage(self, request: IRequest, who: LoggedIn) -> bytes:
        return self.render(
            request,
            "events.html",
            who=who,
            types=EVENT_TYPES,
            type=_arg(request, "type"),
            sn=_arg(request, "sn"),
        )

    async def eventStream(self, request: IRequest, who: LoggedIn) -> Any:
        events = self.context.events
        if events is None:
            raise ServiceError(503, "unavailable", "the event feed is not running")
        types = None
        pattern = _arg(request, "type")
        if pattern:
            try:
                types = expandTypes([p.strip() for p in pattern.split(",") if p.strip()])
            except ValueError as e:
                raise ServiceError(400, "invalid_form", str(e), field="type") from None
        lastId = request.getHeader(b"last-event-id")
        if lastId and lastId.strip().isdigit():
            after = int(lastId.strip())
        else:
            after = int(await self.store.lastEventId())
        securityHeaders(request)
        stream = EventStream(
            request,
            self.store,
            events.feed,
            self.clock,
            EventQuery(after=after, types=types, sn=_arg(request, "sn") or None),
            self.context.config.sseHeartbeat,
        )
        await stream.run()
        return None

    # -- audit, accounts ---------------------------------------------------------------------------

    async def auditPage(self, request: IRequest, who: LoggedIn) -> bytes:
        before = _arg(request, "before")
        entries = await self.store.listAuditEntries(100, int(before) if before.isdigit() else None)
        older = f"/admin/audit?before={entries[-1].id}" if len(entries) == 100 else None
        return self.render(request, "audit.html", who=who, entries=entries, older=older)

    async def accountsPage(
        self, request: IRequest, who: LoggedIn, status: int = 200, error: str | None = None
    ) -> bytes:
        accounts = await self.accounts.list()
        return self.render(
            request,
            "accounts.html",
            status,
            who,
            error=error,
            accounts=[
                {
                    "name": a.name,
                    "role": a.role,
                    "disabled": a.disabled,
                    "created": datetime.fromtimestamp(a.createdAt, tz=UTC).isoformat(
                        timespec="seconds"
                    ),
                }
                for a in accounts
            ],
            roles=CONSOLE_ROLES,
        )

    # -- admin: accounts, tokens, webhooks -----------------------------------------------------

    async def accountsAction(self, request: IRequest, who: LoggedIn) -> bytes:
        action = _arg(request, "action")
        name = _arg(request, "name")
        try:
            if action == "create":
                await self.accounts.create(name, _arg(request, "role"), _arg(request, "password"))
                audited: dict[str, Any] = {"role": _arg(request, "role")}
            elif action == "role":
                await self.accounts.setRole(name, _arg(request, "role"))
                audited = {"role": _arg(request, "role")}
            elif action == "password":
                await self.accounts.setPassword(name, _arg(request, "password"))
                audited = {"password": "set"}
            elif action in ("disable", "enable"):
                if name == who.account.name and action == "disable":
                    raise ServiceError(
                        400, "invalid_form", "you cannot disable yourself", field="name"
                    )
                await self.accounts.setDisabled(name, action == "disable")
                audited = {}
            else:
                raise ServiceError(400, "invalid_form", "unknown action", field="action")
        except ServiceError as e:
            return await self.accountsPage(request, who, e.status, e.detail)
        await self.terminals.audit(who.actor, f"account.{action}", name, audited)
        return self._redirect(request, "/admin/accounts")

    async def tokensPage(
        self,
        request: IRequest,
        who: LoggedIn,
        status: int = 200,
        error: str | None = None,
        secret: str | None = None,
        created: str | None = None,
    ) -> bytes:
        tokens = await TokenService(self.store).list()
        return self.render(
            request,
            "tokens.html",
            status,
            who,
            tokens=tokens,
            error=error,
            secret=secret,
            created=created,
            scopes=SCOPES,
        )

    async def tokensAction(self, request: IRequest, who: LoggedIn) -> bytes:
        tokens = TokenService(self.store)
        action = _arg(request, "action")
        name = _arg(request, "name")
        try:
            if action == "create":
                scopes = [s for s in SCOPES if _arg(request, f"scope-{s}") == "on"]
                secret = await tokens.create(name, scopes)
                await self.terminals.audit(who.actor, "token.create", name, {"scopes": scopes})
                # shown once, on this answer only (never stored, never in a URL)
                return await self.tokensPage(request, who, secret=secret, created=name)
            if action == "revoke":
                await self.terminals.audit(who.actor, "token.revoke", name, {})
                await tokens.revoke(name)
                return self._redirect(request, "/admin/tokens")
            raise ServiceError(400, "invalid_form", "unknown action", field="action")
        except ServiceError as e:
            return await self.tokensPage(request, who, e.status, e.detail)

    async def webhooksPage(
        self, request: IRequest, who: LoggedIn, status: int = 200, error: str | None = None
    ) -> bytes:
        hooks = await WebhookService(self.context).listWithState()
        last = int(await self.store.lastEventId())
        return self.render(
            request,
            "webhooks.html",
            status,
            who,
            hooks=[webhookJSON(w, stream) for w, stream in hooks],
            error=error,
            lastEvent=last,
            note=_NOTES.get(_arg(request, "note")),
        )

    async def webhookReplay(self, request: IRequest, who: LoggedIn, webhookId: int) -> bytes:
        start = _arg(request, "from")
        try:
            if not start.isdigit():
                raise ServiceError(400, "invalid_form", "must be an event id", field="from")
            service = WebhookService(self.context)
            await service.get(webhookId)
            await self.terminals.audit(
                who.actor, "webhook.replay", str(webhookId), {"from": int(start)}
            )
            await service.replay(webhookId, int(start))
        except ServiceError as e:
            return await self.webhooksPage(request, who, e.status, e.detail)
        return self._redirect(request, "/admin/webhooks?note=replayed")


_DONE = {"approve": "approved", "reject": "rejected", "disable": "disabled", "enable": "enabled"}

_NOTES = {
    "users-pulled": "Users pulled from the terminal.",
    "logs-pulled": "Logs pulled from the terminal.",
    "saved": "Saved.",
    "approved": "Approved: the terminal may register.",
    "rejected": "Rejected: the terminal is disconnected and may not register.",
    "disabled": "Disabled: the terminal is disconnected.",
    "enabled": "Enabled.",
    "identity-reset": "Identity reset: the next registration binds the terminal anew.",
    "replayed": "Replay started: the events are delivered again from that id on.",
}


def _safeNext(value: str) -> str:
    """Where to go after login: a path of the console only (never another site)."""
    if value.startswith("/admin/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin/"


def _userRow(user: Any) -> dict[str, Any]:
    kinds = {"fingerprint": 0, "password": 0, "card": 0, "face": 0, "palm": 0, "photo": 0}
    for credential in user.credentials:
        n = credential.backupnum
        if 0 <= n <= 9:
            kinds["fingerprint"] += 1
        elif n == 10:
            kinds["password"] += 1
        elif n == 11:
            kinds["card"] += 1
        elif 20 <= n <= 27:
            kinds["face"] += 1
        elif 30 <= n <= 37:
            kinds["palm"] += 1
        elif n == 50:
            kinds["photo"] += 1
    return {
        "enrollid": user.enrollid,
        "name": user.name or "",
        "admin": user.admin,
        "enabled": user.enabled,
        "credentials": ", ".join(f"{k} {v}" for k, v in kinds.items() if v) or "none",
    }
