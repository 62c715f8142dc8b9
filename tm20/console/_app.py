"""
The operator console: a Klein app mounted at C{/admin/}, server-rendered with Jinja2
(autoescaped), a little plain JavaScript from C{static/} (live board, live events), no CDN.

It is a door: every action calls the same services as the REST API
(L{tm20.services.terminals.TerminalService}, L{tm20.services.accounts.AccountService}), which
hold the rules and write the audit trail with the actor C{console:NAME}.  The console only
translates forms into calls and results into pages, and guards the door: a session cookie, a
role per route, a CSRF token and a same-origin check on every POST, failed logins rate-limited
per source (L{tm20.console._base}).

This module holds the app and its routes, login and logout, the board, the logs, the live
events and the audit trail; a terminal's page is in L{tm20.console._terminalpages}, the admin
pages in L{tm20.console._adminpages}.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import attrs
from jinja2 import Environment, PackageLoader, select_autoescape
from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from tm20.access.model import REASONS
from tm20.console._accesspages import AccessPages
from tm20.console._adminpages import AdminPages
from tm20.console._forms import formValue, safeNext, terminalTime
from tm20.console._security import (
    clearCookie,
    sameOrigin,
    securityHeaders,
    sessionToken,
    setCookie,
)
from tm20.console._static import StaticFiles
from tm20.console._terminalpages import TerminalPages
from tm20.console._views import BOARD_STATES, LOG_PAGE, boardRow
from tm20.events.model import EVENT_TYPES, EventQuery, expandTypes
from tm20.events.sse import EventStream
from tm20.model import LogQuery
from tm20.services.accounts import AccountService, LoggedIn
from tm20.services.errors import ServiceError, serviceErrorFrom
from tm20.services.ratelimit import FailureRateLimiter
from tm20.services.terminals import TerminalService
from tm20.terminal.limits import NetworkList
from tm20.views.csvexport import CSVExport
from tm20.views.model import logJSON

__all__ = ["Console"]


class Console(TerminalPages, AdminPages, AccessPages):
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
        self._accessRoutes()
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

    def staticFile(self, request: IRequest, name: str) -> bytes:
        securityHeaders(request)
        return self.static.serve(request, name)

    # -- login -------------------------------------------------------------------------------------

    async def loginPage(self, request: IRequest) -> bytes:
        return self.render(request, "login.html", next=safeNext(formValue(request, "next")))

    async def login(self, request: IRequest) -> bytes:
        try:
            return await self._login(request)
        except CancelledError:
            raise
        except Exception:
            error = serviceErrorFrom(Failure(), request)
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
        nextURL = safeNext(formValue(request, "next"))
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
        name = formValue(request, "username")
        password = formValue(request, "password")
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
            state=formValue(request, "state"),
            q=formValue(request, "q"),
        )

    async def boardJSON(self, request: IRequest, who: LoggedIn) -> bytes:
        rows = await self._rows()
        counts = {state: sum(state in r["states"] for r in rows) for state in BOARD_STATES}
        return self._json(request, {"rows": rows, "counts": counts, "total": len(rows)})

    # -- logs --------------------------------------------------------------------------------------

    def _logQuery(self, request: IRequest) -> tuple[LogQuery, dict[str, str]]:
        names = ("sn", "enrollid", "since", "until", "mode", "inout", "access", "reason", "cursor")
        form = {k: formValue(request, k) for k in names}
        if form["access"] not in ("", "granted", "denied", "none"):
            raise ServiceError(400, "invalid_form", "granted, denied or none", field="access")
        if form["reason"] and form["reason"] not in REASONS:
            raise ServiceError(400, "invalid_form", "not a reason of a decision", field="reason")
        numbers: dict[str, int | None] = {}
        for name in ("enrollid", "mode", "inout"):
            numbers[name] = None
            if form[name]:
                if not form[name].isdigit():
                    raise ServiceError(400, "invalid_form", "must be a number", field=name)
                numbers[name] = int(form[name])
        before = None
        if form["cursor"]:
            time, _, ident = form["cursor"].rpartition("|")
            if not ident.isdigit():
                raise ServiceError(400, "invalid_form", "invalid cursor", field="cursor")
            before = (time, int(ident))
        query = LogQuery(
            sn=form["sn"] or None,
            since=terminalTime("since", form["since"], endOfDay=False),
            until=terminalTime("until", form["until"], endOfDay=True),
            enrollid=numbers["enrollid"],
            mode=numbers["mode"],
            inout=numbers["inout"],
            limit=LOG_PAGE,
            before=before,
            access=form["access"] or None,
            accessReason=form["reason"] or None,
        )
        return query, form

    async def logsPage(self, request: IRequest, who: LoggedIn) -> bytes:
        try:
            query, form = self._logQuery(request)
        except ServiceError as e:
            return self.render(
                request, "logs.html", 400, who, form={}, logs=[], error=e.detail, reasons=REASONS
            )
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
            reasons=REASONS,
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
            type=formValue(request, "type"),
            sn=formValue(request, "sn"),
        )

    async def eventStream(self, request: IRequest, who: LoggedIn) -> Any:
        events = self.context.events
        if events is None:
            raise ServiceError(503, "unavailable", "the event feed is not running")
        types = None
        pattern = formValue(request, "type")
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
            EventQuery(after=after, types=types, sn=formValue(request, "sn") or None),
            self.context.config.sseHeartbeat,
        )
        await stream.run()
        return None

    # -- audit, accounts ---------------------------------------------------------------------------

    async def auditPage(self, request: IRequest, who: LoggedIn) -> bytes:
        before = formValue(request, "before")
        entries = await self.store.listAuditEntries(100, int(before) if before.isdigit() else None)
        older = f"/admin/audit?before={entries[-1].id}" if len(entries) == 100 else None
        return self.render(request, "audit.html", who=who, entries=entries, older=older)
