"""
The REST API: one Klein app whose routes are exactly L{tm20.api._openapi.OPERATIONS}.

Every route authenticates (C{Authorization: Bearer TOKEN}), checks the scope, validates its path
and query parameters and its JSON body against the schemas of the OpenAPI document, calls the
services (command queue, pulls) or the store, and answers JSON; every failure is a JSON error
(L{tm20.api._errors}).  Changes are written to the audit log with the token's name.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import attrs
from klein import Klein
from klein.resource import KleinResource
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from werkzeug.exceptions import MethodNotAllowed, NotFound

from tm20.api._access import AccessApi
from tm20.api._auth import Authenticator, Principal
from tm20.api._errors import ApiError, errorFromFailure, writeJSON
from tm20.api._events import EventsApi
from tm20.api._openapi import (
    OPERATIONS,
    Operation,
    ValidationError,
    buildDocument,
    checkJSONSafe,
    kleinPath,
    validate,
)
from tm20.api._paths import SEGMENT, SegmentConverter, escapeSegments
from tm20.api._reply import Reply
from tm20.interfaces import IPullService
from tm20.model import (
    LogQuery,
    Person,
    StoredCommand,
    Terminal,
    TerminalGroup,
    User,
)
from tm20.protocol.commands import buildCommand
from tm20.protocol.messages import ProtocolError
from tm20.protocol.parser import nestedDeeperThan
from tm20.protocol.timefmt import normaliseDate, normaliseTime
from tm20.services.fleet import wireServices
from tm20.services.personadmin import PersonAdmin, redactedCredentials
from tm20.services.personcsv import parsePersonsCSV
from tm20.services.persons import CsvImportError, PersonService
from tm20.services.queue import (
    FINAL_STATUSES,
    CommandQueue,
    QueuedCommandTimeout,
)
from tm20.services.ratelimit import FailureRateLimiter
from tm20.services.terminals import (
    NotCancellable,
    TerminalService,
    TerminalView,
    gone,
    userCommands,
)
from tm20.terminal.limits import NetworkList
from tm20.views.csvexport import CSVExport
from tm20.views.model import (
    auditJSON,
    commandJSON,
    decodeCursor,
    describeTerminal,
    encodeCursor,
    groupJSON,
    logJSON,
    personJSON,
    personSyncJSON,
    quarantinedJSON,
    userJSON,
)

__all__ = ["MAX_BODY", "ApiResource", "Reply", "TM20Api"]

#: The largest request body accepted (a photo credential is under 200 kB of Base64).
MAX_BODY = 4 * 1024 * 1024
#: Deepest nesting of arrays and objects in a request body (as L{checkJSONSafe} allows).
MAX_BODY_DEPTH = 32
#: Default page size of the lists.
DEFAULT_LIMIT = 50


Handler = Callable[..., Awaitable[Any]]


def _queryValue(request: IRequest, name: str) -> str | None:
    args: Mapping[bytes, list[bytes]] = getattr(request, "args", None) or {}
    values = args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        return values[-1].decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_query", "must be UTF-8", field=name) from None


def _convert(name: str, raw: str, schema: Mapping[str, Any]) -> Any:
    kind = schema.get("type")
    value: Any = raw
    if kind == "integer":
        try:
            value = int(raw, 10)
        except ValueError:
            raise ApiError(400, "invalid_query", "must be an integer", field=name) from None
    elif kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            value = True
        elif lowered in ("false", "0", "no"):
            value = False
        else:
            raise ApiError(400, "invalid_query", "must be true or false", field=name)
    try:
        checkJSONSafe(value, name)
        validate(value, schema, name)
    except ValidationError as e:
        raise ApiError(400, "invalid_query", e.problem, field=e.field) from None
    return value


def _terminalTime(name: str, value: str | None, endOfDay: bool) -> str | None:
    """A C{since}/C{until} filter as C{YYYY-MM-DD HH:MM:SS} (a date alone: start or end)."""
    if value is None:
        return None
    try:
        if " " in value.strip():
            text = value.strip()
            if text.count(":") == 1:
                text += ":00"
            return normaliseTime(text)
        day = normaliseDate(value)
    except ValueError:
        raise ApiError(400, "invalid_query", "must be YYYY-MM-DD[ HH:MM:SS]", field=name) from None
    return f"{day} 23:59:59" if endOfDay else f"{day} 00:00:00"


def _protocolField(error: ProtocolError, prefix: str) -> str:
    if error.field in (None, "cmd"):
        return "command" if error.field == "cmd" else prefix.rstrip(".") or "params"
    return f"{prefix}{error.field}"


def _invalidParams(error: ProtocolError, prefix: str) -> ApiError:
    return ApiError(400, "invalid_params", error.problem, field=_protocolField(error, prefix))


class ApiResource(KleinResource):
    """
    The Klein resource of a L{TM20Api}, which it keeps as C{api} (so that whoever holds the
    mounted resource, a test for instance, can reach the app's limiter and services).
    """

    log = Logger()

    def __init__(self, api: TM20Api) -> None:
        super().__init__(api.app)
        self.api = api

    def render(self, request: IRequest) -> Any:
        # Klein logs a traceback for a path that is not UTF-8 once percent-decoded
        # (/api/%ff) and answers in plain text: one line here, and a JSON 400.
        parts = {
            "path": b"/".join([*request.prepath, *request.postpath]),
            "host": request.getRequestHostname(),
        }
        for field, raw in parts.items():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                peer = request.getClientAddress()
                self.log.info(
                    "refused an API request from {peer}: {field} not UTF-8",
                    peer=getattr(peer, "host", "?"),
                    field=field,
                )
                return _writeError(
                    request,
                    ApiError(
                        400,
                        f"invalid_{field}",
                        f"the {field} is not UTF-8 (once percent-decoded)",
                        field=field,
                    ),
                )
        # Keep an encoded "/" (%2F) inside its path segment: see tm20.api._paths.
        postpath = getattr(request, "postpath", None)
        if postpath:
            request.postpath = escapeSegments(postpath)
        return super().render(request)


class TM20Api(EventsApi, AccessApi):
    """
    The Klein app of C{/api}.

    @ivar app: the L{Klein} app (mount C{app.resource()} at C{/api}).
    @ivar queue: the L{CommandQueue} (hooked to registrations).
    @ivar pulls: the pull service (L{IPullService}: the cluster's, routed, on PostgreSQL).
    """

    log = Logger()

    def __init__(
        self,
        context: Any,
        queue: CommandQueue | None = None,
        pulls: IPullService | None = None,
        limiter: FailureRateLimiter | None = None,
    ) -> None:
        """
        @param context: the L{tm20.context.ServerContext}.
        @param queue: the command queue (one is made, and hooked to the registration
            observers, when C{None}).
        @param pulls: the pull service (one is made when C{None}).
        @param limiter: counts failed authentications per source (one on C{context.clock}
            with the default budget when C{None}).
        """
        self.context = context
        self.store = context.store
        if getattr(context, "cluster", None) is None:
            from tm20.cluster.local import LocalNode

            context.cluster = LocalNode(context.registry, "local")
        self.auth = Authenticator(
            context.store,
            context.config.apiTokens,
            limiter if limiter is not None else FailureRateLimiter(context.clock),
            NetworkList(context.config.trustedProxies),
        )
        if queue is not None and getattr(context, "queue", None) is None:
            context.queue = queue
        if pulls is not None and getattr(context, "pulls", None) is None:
            context.pulls = pulls
        wireServices(context)
        self.queue: CommandQueue = context.queue
        self.pulls: IPullService = context.pulls
        self.persons: PersonService = context.persons
        self.terminals = TerminalService(context)
        self.admin = PersonAdmin(context, self.terminals.audit)
        self.app = Klein()
        self.app.url_map.converters[SEGMENT] = SegmentConverter
        for op in OPERATIONS:
            handler: Handler = getattr(self, op.operationId)
            self.app.route(
                kleinPath(op.path),
                methods=[op.method],
                endpoint=op.operationId,
                strict_slashes=False,
            )(self._endpoint(op, handler))
        self.app.handle_errors(NotFound)(self._notFound)
        self.app.handle_errors(MethodNotAllowed)(self._methodNotAllowed)

    def resource(self) -> IResource:
        """The resource to mount at C{/api} (an L{ApiResource})."""
        return ApiResource(self)

    # -- plumbing ----------------------------------------------------------------------------------

    def _endpoint(self, op: Operation, handler: Handler) -> Callable[..., Awaitable[Any]]:
        async def endpoint(request: IRequest, **pathArgs: Any) -> Any:
            try:
                principal = await self.auth.authenticate(request)
                self.auth.authorize(principal, op.scope)
                self._checkPath(op, pathArgs)
                query = self._query(op, request)
                result = await handler(request, principal, query=query, **pathArgs)
            except CancelledError:
                raise
            except Exception:
                return _writeError(request, errorFromFailure(Failure(), request))
            if isinstance(result, Reply):
                return writeJSON(request, result.status, result.body, dict(result.headers))
            return result

        endpoint.__name__ = op.operationId
        return endpoint

    @staticmethod
    def _checkPath(op: Operation, pathArgs: Mapping[str, Any]) -> None:
        """Path values outside their schema name nothing that exists: 404."""
        for param in op.parameters:
            if param["in"] != "path":
                continue
            value = pathArgs.get(param["name"])
            try:
                checkJSONSafe(value, param["name"])
                validate(value, param["schema"], param["name"])
            except ValidationError:
                raise ApiError(404, "not_found", f"no such {param['name']}") from None

    @staticmethod
    def _query(op: Operation, request: IRequest) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for param in op.parameters:
            if param["in"] != "query":
                continue
            raw = _queryValue(request, param["name"])
            if raw is not None:
                values[param["name"]] = _convert(param["name"], raw, param["schema"])
        return values

    @staticmethod
    def _body(request: IRequest, schema: str, required: bool = True) -> dict[str, Any]:
        content = getattr(request, "content", None)
        raw = b""
        if content is not None:
            content.seek(0)
            raw = content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise ApiError(413, "body_too_large", f"the body exceeds {MAX_BODY} bytes")
        if not raw.strip():
            if required:
                raise ApiError(400, "invalid_body", "a JSON body is required", field="body")
            return {}
        try:
            text = raw.decode("utf-8")
            if nestedDeeperThan(text, MAX_BODY_DEPTH):
                raise RecursionError
            body = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(
                400, "invalid_json", "the body is not valid JSON", field="body"
            ) from None
        except RecursionError:
            raise ApiError(
                400,
                "invalid_json",
                f"the body nests arrays and objects deeper than {MAX_BODY_DEPTH} levels",
                field="body",
            ) from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "the body must be a JSON object", field="body")
        try:
            checkJSONSafe(body)
            validate(body, schema)
        except ValidationError as e:
            raise ApiError(400, "invalid_body", e.problem, field=e.field or "body") from None
        return body

    async def _notFound(self, request: IRequest, failure: Failure) -> bytes:
        try:
            await self.auth.authenticate(request)
        except Exception:
            return _writeError(request, errorFromFailure(Failure(), request))
        return writeJSON(request, 404, {"error": "not_found", "detail": "no such route"})

    def _methodNotAllowed(self, request: IRequest, failure: Failure) -> bytes:
        allowed = sorted(getattr(failure.value, "valid_methods", None) or [])
        return writeJSON(
            request,
            405,
            {"error": "method_not_allowed", "detail": "allowed: " + ", ".join(allowed)},
            {"Allow": ", ".join(allowed)},
        )

    async def _terminal(self, sn: str) -> Terminal:
        return await self.terminals.get(sn)

    async def _user(self, sn: str, enrollid: int) -> User:
        await self._terminal(sn)
        user: User | None = await self.store.getUser(sn, enrollid)
        if user is None:
            raise ApiError(404, "not_found", f"no user {enrollid} on {sn!r}")
        return user

    async def _audit(
        self, principal: Principal, action: str, target: str | None, detail: Mapping[str, Any]
    ) -> None:
        await self.terminals.audit(principal.name, action, target, detail)

    async def _idPage(
        self,
        query: Mapping[str, Any],
        fetch: Callable[[int, int | None], Awaitable[Sequence[Any]]],
        key: Callable[[Any], int],
        view: Callable[[Any], dict[str, Any]],
    ) -> Reply:
        """
        A page of a list ordered by an integer key: C{limit} items from the C{cursor}'s key on,
        and the cursor of the next page when the page is full.
        """
        limit = query.get("limit", DEFAULT_LIMIT)
        cursor = None
        if "cursor" in query:
            cursor = _cursorValue(
                query["cursor"], lambda v: isinstance(v, int) and not isinstance(v, bool)
            )
        items = await fetch(limit, cursor)
        nextCursor = encodeCursor(key(items[-1])) if len(items) == limit else None
        return Reply(200, {"items": [view(item) for item in items], "next": nextCursor})

    # -- meta --------------------------------------------------------------------------------------

    async def openapi(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        return Reply(200, buildDocument())

    # -- terminals ---------------------------------------------------------------------------------

    async def listTerminals(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Reply:
        status = query.get("status")
        approved = None if status is None else status == "approved"
        items = []
        for view in await self.terminals.views(approved):
            if "connected" in query and query["connected"] != view.connected:
                continue
            if "active" in query and query["active"] != view.terminal.active:
                continue
            item = self._describe(view)
            if "state" in query and query["state"] not in item["states"]:
                continue
            items.append(item)
        return Reply(200, {"items": items, "count": len(items)})

    @staticmethod
    def _describe(view: TerminalView) -> dict[str, Any]:
        """A terminal as the API shows it: L{terminalJSON}, its watch and its states."""
        return describeTerminal(view)

    async def _out(self, terminal: Terminal) -> dict[str, Any]:
        """L{_describe} for one terminal (its watch read from the store)."""
        return self._describe(await self.terminals.viewOf(terminal))

    async def createTerminal(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        body = self._body(request, "TerminalCreate")
        sn = body["sn"]
        terminal = await self.terminals.create(
            principal.name,
            sn,
            body.get("name"),
            body.get("approved", True),
            body.get("timezone"),
            body.get("active") is not False,
            body,
        )
        return Reply(
            201,
            await self._out(terminal),
            {"Location": f"/api/terminals/{quote(sn, safe='')}/"},
        )

    async def getTerminal(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        terminal = await self._terminal(sn)
        return Reply(200, await self._out(terminal))

    async def updateTerminal(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        body = self._body(request, "TerminalPatch")
        await self._terminal(sn)
        changes = _unaliased(body, _TERMINAL_ALIASES)
        if "whitelisted" in changes:
            whitelisted = changes.pop("whitelisted")
            if "approved" in changes and changes["approved"] != whitelisted:
                raise ApiError(
                    400, "invalid_body", "approved and whitelisted disagree", field="whitelisted"
                )
            changes["approved"] = whitelisted
        terminal = await self.terminals.update(principal.name, sn, changes, body)
        return Reply(200, await self._out(terminal))

    async def resetTerminalIdentity(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        terminal = await self.terminals.resetIdentity(principal.name, sn)
        return Reply(200, await self._out(terminal))

    async def deleteTerminal(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        await self.terminals.delete(principal.name, sn)
        return Reply(204, None)

    async def listConnected(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        items = [self._describe(v) for v in await self.terminals.views() if v.connected]
        return Reply(200, {"items": items, "count": len(items)})

    # -- commands ----------------------------------------------------------------------------------

    async def sendCommand(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        body = self._body(request, "CommandRequest")
        name: str = body["command"]
        params: dict[str, Any] = body.get("params") or {}
        try:
            command: StoredCommand = await self.terminals.sendCommand(
                principal.name,
                sn,
                name,
                params,
                confirm=body.get("confirm") is True,
                wait=body.get("wait", True),
                expiresIn=body.get("expiresIn"),
            )
        except QueuedCommandTimeout as e:
            raise ApiError(
                504,
                "timeout",
                f"the terminal did not answer {name} in time"
                + (" (it will be tried again)" if e.command.status not in FINAL_STATUSES else ""),
                commandId=e.command.id,
                command=commandJSON(e.command),
            ) from None
        status = 200 if command.status in FINAL_STATUSES else 202
        return Reply(status, commandJSON(command), {"Location": f"/api/commands/{command.id}"})

    async def getCommand(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        command: StoredCommand | None = await self.store.getCommand(id)
        if command is not None:
            command = await self.queue.refresh(command)
        if command is None:
            raise ApiError(404, "not_found", f"no command {id}")
        return Reply(200, commandJSON(command))

    async def cancelCommand(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        try:
            after = await self.terminals.cancelCommand(principal.name, id)
        except NotCancellable as e:
            raise ApiError(
                e.status, e.code, e.detail, **e.extra, command=commandJSON(e.command)
            ) from None
        return Reply(200, commandJSON(after))

    async def listPendingCommands(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        await self._terminal(sn)
        pending: list[StoredCommand] = await self.store.pendingCommands(sn)
        items = []
        for command in pending:
            current: StoredCommand | None = await self.queue.refresh(command)
            if current is not None and current.status not in FINAL_STATUSES:
                items.append(commandJSON(current))
        return Reply(200, {"items": items})

    # -- users -------------------------------------------------------------------------------------

    async def listUsers(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any], sn: str
    ) -> Reply:
        await self._terminal(sn)
        return await self._idPage(
            query,
            lambda limit, cursor: self.store.listUsers(sn, limit, cursor),
            lambda item: item.enrollid,
            userJSON,
        )

    async def getUser(
        self, request: IRequest, principal: Principal, query: Any, sn: str, enrollid: int
    ) -> Reply:
        user = await self._user(sn, enrollid)
        return Reply(200, userJSON(user, withRecords=True))

    async def _applyUser(
        self,
        principal: Principal,
        sn: str,
        enrollid: int,
        commands: list[tuple[str, dict[str, Any]]],
        name: str | None,
        admin: int,
        enabled: bool,
    ) -> dict[str, Any]:
        user, queued = await self.terminals.applyUser(
            principal.name, sn, enrollid, commands, name, admin, enabled
        )
        return {
            "user": userJSON(user, withRecords=True),
            "commands": [commandJSON(c) for c in queued],
        }

    async def createUser(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        body = self._body(request, "UserCreate")
        await self._terminal(sn)
        enrollid: int = body["enrollid"]
        if await self.store.getUser(sn, enrollid) is not None:
            raise ApiError(409, "conflict", f"user {enrollid} exists on {sn!r}")
        name = body.get("name")
        admin = body.get("admin", 0)
        enabled = body.get("enabled", True)
        commands = userCommands(
            enrollid,
            name,
            admin,
            body.get("credentials", []),
            None if enabled else False,
            profileChanged=True,
        )
        await self._audit(principal, "user.create", sn, redactedCredentials(body))
        result = await self._applyUser(principal, sn, enrollid, commands, name, admin, enabled)
        return Reply(
            201,
            result,
            {"Location": f"/api/terminals/{quote(sn, safe='')}/users/{enrollid}/"},
        )

    async def updateUser(
        self, request: IRequest, principal: Principal, query: Any, sn: str, enrollid: int
    ) -> Reply:
        body = self._body(request, "UserPatch")
        user = await self._user(sn, enrollid)
        name = body.get("name", user.name)
        admin = body.get("admin", user.admin)
        enabled = body.get("enabled", user.enabled)
        commands = userCommands(
            enrollid,
            name,
            admin,
            body.get("credentials", []),
            body.get("enabled"),
            profileChanged="name" in body or "admin" in body,
        )
        await self._audit(principal, "user.update", f"{sn}/{enrollid}", redactedCredentials(body))
        result = await self._applyUser(principal, sn, enrollid, commands, name, admin, enabled)
        return Reply(200, result)

    async def deleteUser(
        self,
        request: IRequest,
        principal: Principal,
        query: Mapping[str, Any],
        sn: str,
        enrollid: int,
    ) -> Reply:
        await self._user(sn, enrollid)
        deleted, command = await self.terminals.removeUser(
            principal.name, sn, enrollid, query.get("backupnum", 13)
        )
        return Reply(200, {"deleted": deleted, "commands": [commandJSON(command)]})

    async def pullUsers(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        result = await self.terminals.pullUsers(principal.name, sn)
        return Reply(200, attrs.asdict(result))

    # -- logs --------------------------------------------------------------------------------------

    async def pullLogs(self, request: IRequest, principal: Principal, query: Any, sn: str) -> Reply:
        body = self._body(request, "LogPullRequest", required=False)
        await self._terminal(sn)
        allLogs = body.get("source", "new") == "all"
        if not allLogs and ("from" in body or "to" in body):
            raise ApiError(400, "invalid_body", "from/to need source all", field="from")
        if allLogs:
            dates: dict[str, Any] = {k: body[k] for k in ("from", "to") if k in body}
            try:
                buildCommand("getalllog", dates)
            except ProtocolError as e:
                raise _invalidParams(e, "") from None
        result = await self.terminals.pullLogs(
            principal.name, sn, allLogs, body.get("from"), body.get("to"), body
        )
        return Reply(200, attrs.asdict(result))

    async def listTerminalLogs(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any], sn: str
    ) -> Any:
        await self._terminal(sn)
        return await self._logs(request, query, sn, doorEvents=False)

    async def listDoorEvents(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any], sn: str
    ) -> Any:
        await self._terminal(sn)
        return await self._logs(request, query, sn, doorEvents=True)

    async def listLogs(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Any:
        return await self._logs(request, query, query.get("terminal"), doorEvents=False)

    async def _logs(
        self, request: IRequest, query: Mapping[str, Any], sn: str | None, doorEvents: bool
    ) -> Any:
        since = _terminalTime("since", query.get("since"), endOfDay=False)
        until = _terminalTime("until", query.get("until"), endOfDay=True)
        before = None
        if "cursor" in query:
            value = _cursorValue(
                query["cursor"],
                lambda v: (
                    isinstance(v, list)
                    and len(v) == 2
                    and isinstance(v[0], str)
                    and isinstance(v[1], int)
                    and not isinstance(v[1], bool)
                ),
            )
            before = (value[0], value[1])
        base = LogQuery(
            sn=sn,
            since=since,
            until=until,
            enrollid=query.get("enrollid"),
            limit=query.get("limit", DEFAULT_LIMIT),
            before=before,
            access=query.get("access"),
            accessReason=query.get("accessReason"),
        )
        read = self.store.queryDoorEvents if doorEvents else self.store.queryLogs
        if _wantsCSV(request, query):

            def fetch(cursor: tuple[str, int] | None, limit: int) -> Any:
                return read(attrs.evolve(base, before=cursor or before, limit=limit))

            kind = "door-events" if doorEvents else "logs"
            export = CSVExport(fetch, query.get("limit"), filename=f"{sn or 'all'}-{kind}.csv")
            return await export.prepare()
        logs = await read(base)
        nextCursor = encodeCursor([logs[-1].time, logs[-1].id]) if len(logs) == base.limit else None
        return Reply(200, {"items": [logJSON(entry) for entry in logs], "next": nextCursor})

    # -- quarantine --------------------------------------------------------------------------------

    async def listTerminalQuarantine(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any], sn: str
    ) -> Reply:
        await self._terminal(sn)
        return await self._quarantine(query, sn)

    async def listQuarantine(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Reply:
        return await self._quarantine(query, query.get("terminal"))

    async def _quarantine(self, query: Mapping[str, Any], sn: str | None) -> Reply:
        return await self._idPage(
            query,
            lambda limit, cursor: self.store.listQuarantine(sn, limit, cursor),
            lambda item: item.id,
            quarantinedJSON,
        )

    # -- persons -----------------------------------------------------------------------------------

    async def _person(self, enrollid: int) -> Person:
        return await self.admin.get(self.admin.persons, enrollid)

    async def listPersons(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Reply:
        return await self._idPage(
            query, self.store.listPersons, lambda item: item.enrollid, personJSON
        )

    async def createPerson(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        body = self._body(request, "PersonCreate")
        person = await self.admin.create(principal.name, self.admin.persons, body)
        return Reply(
            201,
            personJSON(person, withRecords=True),
            {"Location": f"/api/persons/{person.enrollid}/"},
        )

    async def importPersons(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        text = _csvBody(request)
        rows, errors = parsePersonsCSV(text)
        try:
            if errors:
                raise CsvImportError(errors)
            result = await self.admin.importRows(principal.name, rows)
        except CsvImportError as e:
            first = e.errors[0]
            raise ApiError(
                400,
                "invalid_csv",
                f"line {first.line}, {first.field}: {first.detail}",
                field=first.field,
                line=first.line,
                errors=[attrs.asdict(error) for error in e.errors[:1000]],
            ) from None
        return Reply(200, result)

    async def getPerson(
        self, request: IRequest, principal: Principal, query: Any, enrollid: int
    ) -> Reply:
        return Reply(200, personJSON(await self._person(enrollid), withRecords=True))

    async def updatePerson(
        self, request: IRequest, principal: Principal, query: Any, enrollid: int
    ) -> Reply:
        body = self._body(request, "PersonPatch")
        person = await self.admin.update(principal.name, self.admin.persons, enrollid, body)
        return Reply(200, personJSON(person, withRecords=True))

    async def deletePerson(
        self, request: IRequest, principal: Principal, query: Any, enrollid: int
    ) -> Reply:
        await self.admin.delete(principal.name, self.admin.persons, enrollid)
        return Reply(204, None)

    async def getPersonSync(
        self, request: IRequest, principal: Principal, query: Any, enrollid: int
    ) -> Reply:
        person = await self._person(enrollid)
        entries = await self.persons.personSync(person)
        return Reply(
            200,
            {"enrollid": enrollid, "terminals": [personSyncJSON(*entry) for entry in entries]},
        )

    async def claimPersonSync(
        self, request: IRequest, principal: Principal, query: Any, enrollid: int, sn: str
    ) -> Reply:
        person = await self._person(enrollid)
        await self._terminal(sn)
        await self._audit(principal, "person.claim", f"{sn}/{enrollid}", {})
        with _gone():
            await self.persons.claim(person, sn)
        for entry in await self.persons.personSync(person):
            if entry[0] == sn:
                return Reply(200, personSyncJSON(*entry))
        raise _conflict()

    async def getTerminalPersonCounts(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        await self._terminal(sn)
        counts = await self.persons.terminalCounts(sn)
        return Reply(200, {"sn": sn, **counts})

    # -- groups ------------------------------------------------------------------------------------

    async def _group(self, name: str) -> TerminalGroup:
        return await self.admin.get(self.admin.groups, name)

    async def listGroups(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        groups: list[TerminalGroup] = await self.store.listGroups()
        return Reply(200, {"items": [groupJSON(g) for g in groups], "count": len(groups)})

    async def createGroup(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        body = self._body(request, "GroupCreate")
        group = await self.admin.create(principal.name, self.admin.groups, body)
        return Reply(
            201, groupJSON(group), {"Location": f"/api/groups/{quote(group.name, safe='')}/"}
        )

    async def getGroup(
        self, request: IRequest, principal: Principal, query: Any, name: str
    ) -> Reply:
        return Reply(200, groupJSON(await self._group(name)))

    async def updateGroup(
        self, request: IRequest, principal: Principal, query: Any, name: str
    ) -> Reply:
        body = self._body(request, "GroupPatch")
        group = await self.admin.update(principal.name, self.admin.groups, name, body)
        return Reply(200, groupJSON(group))

    async def deleteGroup(
        self, request: IRequest, principal: Principal, query: Any, name: str
    ) -> Reply:
        await self.admin.delete(principal.name, self.admin.groups, name)
        return Reply(204, None)

    # -- audit -------------------------------------------------------------------------------------

    async def listAudit(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Reply:
        return await self._idPage(
            query, self.store.listAuditEntries, lambda item: item.id, auditJSON
        )


def _writeError(request: IRequest, error: ApiError) -> bytes:
    """Answer C{error}, with its headers (and C{WWW-Authenticate} on a C{401})."""
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return writeJSON(request, error.status, error.body(), headers)


def _conflict() -> ApiError:
    return ApiError(409, "conflict", "the terminal or user was deleted meanwhile")


_gone = gone


def _csvBody(request: IRequest) -> str:
    content = getattr(request, "content", None)
    raw = b""
    if content is not None:
        content.seek(0)
        raw = content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "body_too_large", f"the body exceeds {MAX_BODY} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_body", "the CSV must be UTF-8", field="body") from None
    if "\x00" in text:
        raise ApiError(400, "invalid_body", "the CSV must not contain NUL", field="body")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_body", "the CSV must be valid Unicode", field="body") from None
    return text


def _wantsCSV(request: IRequest, query: Mapping[str, Any]) -> bool:
    if "format" in query:
        return bool(query["format"] == "csv")
    accept = request.getHeader(b"accept") or b""
    if isinstance(accept, bytes):
        accept = accept.decode("latin-1")
    return "text/csv" in accept.lower()


def _cursorValue(cursor: str, check: Callable[[Any], bool]) -> Any:
    try:
        value = decodeCursor(cursor)
    except ValueError:
        value = None
    if value is None or not check(value):
        raise ApiError(400, "invalid_query", "invalid cursor", field="cursor")
    try:
        checkJSONSafe(value, "cursor")
    except ValidationError:
        raise ApiError(400, "invalid_query", "invalid cursor", field="cursor") from None
    return value


#: The original README's names of terminal fields, to ours.
_TERMINAL_ALIASES = {"is_active": "active", "is_whitelisted": "whitelisted"}


def _unaliased(body: Mapping[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    """C{body} with aliased keys renamed; an alias and its name both given must agree."""
    out = {k: v for k, v in body.items() if k not in aliases}
    for alias, name in aliases.items():
        if alias not in body:
            continue
        if name in out and out[name] != body[alias]:
            raise ApiError(400, "invalid_body", f"{alias} and {name} disagree", field=alias)
        out[name] = body[alias]
    return out
