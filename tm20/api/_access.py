"""
The routes of access control (L{tm20.api._openapi.ACCESS_OPERATIONS}), mixed into
L{tm20.api._app.TM20Api}: they translate, the rules are L{tm20.services.accessadmin}'s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from twisted.web.iweb import IRequest

from tm20.access.model import GroupAccess
from tm20.api._auth import Principal
from tm20.api._errors import ApiError
from tm20.api._part import AppPart
from tm20.api._reply import Reply
from tm20.services.accessadmin import AccessAdmin, AccessError
from tm20.views.access import (
    codeJSON,
    devicePlanJSON,
    groupAccessJSON,
    holidayJSON,
    ruleJSON,
)
from tm20.views.model import decodeCursor, encodeCursor

__all__ = ["AccessApi"]


@contextmanager
def _accessErrors() -> Iterator[None]:
    try:
        yield
    except AccessError as e:
        if e.field is None:
            raise ApiError(e.status, e.code, e.detail) from None
        raise ApiError(e.status, e.code, e.detail, field=e.field) from None


def _cursorId(query: Mapping[str, Any]) -> int | None:
    if "cursor" not in query:
        return None
    try:
        value = decodeCursor(query["cursor"])
    except ValueError:
        value = None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, "invalid_query", "not a cursor of this list", field="cursor")
    return value


class AccessApi(AppPart):
    """Access control routes (the app's parts: L{AppPart})."""

    @property
    def _admin(self) -> AccessAdmin:
        access = getattr(self.context, "access", None)
        if access is None:
            raise ApiError(503, "unavailable", "this store keeps no access rules")
        return AccessAdmin(self.store, access, self.context.clock, self.context.queue)

    # -- rules -----------------------------------------------------------------------------------

    async def listAccessRules(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        rules = await self.store.listAccessRules()
        return Reply(200, {"items": [ruleJSON(r) for r in rules]})

    async def createAccessRule(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        body = self._body(request, "AccessRuleWrite")
        with _accessErrors():
            rule = await self._admin.createRule(body)
        await self._audit(principal, "access.rule.create", str(rule.id), body)
        return Reply(201, ruleJSON(rule), {"Location": f"/api/access/rules/{rule.id}"})

    async def getAccessRule(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        rule = await self.store.getAccessRule(id)
        if rule is None:
            raise ApiError(404, "not_found", f"no rule {id}")
        return Reply(200, ruleJSON(rule))

    async def replaceAccessRule(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        body = self._body(request, "AccessRuleWrite")
        if await self.store.getAccessRule(id) is None:
            raise ApiError(404, "not_found", f"no rule {id}")
        with _accessErrors():
            rule = await self._admin.replaceRule(id, body)
        if rule is None:
            raise ApiError(404, "not_found", f"no rule {id}")
        await self._audit(principal, "access.rule.replace", str(id), body)
        return Reply(200, ruleJSON(rule))

    async def deleteAccessRule(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        if not await self._admin.deleteRule(id):
            raise ApiError(404, "not_found", f"no rule {id}")
        await self._audit(principal, "access.rule.delete", str(id), {})
        return Reply(204, None)

    # -- holidays --------------------------------------------------------------------------------

    async def listHolidays(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        holidays = await self.store.listHolidays()
        return Reply(200, {"items": [holidayJSON(h) for h in holidays]})

    async def createHoliday(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        body = self._body(request, "HolidayWrite")
        with _accessErrors():
            holiday = await self._admin.addHoliday(body)
        await self._audit(principal, "access.holiday.create", str(holiday.id), body)
        return Reply(201, holidayJSON(holiday))

    async def deleteHoliday(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        if not await self._admin.deleteHoliday(id):
            raise ApiError(404, "not_found", f"no holiday {id}")
        await self._audit(principal, "access.holiday.delete", str(id), {})
        return Reply(204, None)

    # -- codes -----------------------------------------------------------------------------------

    async def listQrCodes(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Reply:
        limit = query.get("limit", 50)
        codes = await self.store.listQrCodes(limit, _cursorId(query))
        nextCursor = encodeCursor(codes[-1].id) if len(codes) == limit else None
        return Reply(200, {"items": [codeJSON(c) for c in codes], "next": nextCursor})

    async def createQrCode(self, request: IRequest, principal: Principal, query: Any) -> Reply:
        body = self._body(request, "QrCodeCreate")
        with _accessErrors():
            code, text = await self._admin.createCode(body)
        audited = {k: v for k, v in body.items() if k != "code"}
        await self._audit(principal, "access.qrcode.create", str(code.id), audited)
        return Reply(201, codeJSON(code, text), {"Location": f"/api/access/qrcodes/{code.id}"})

    async def getQrCode(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        code = await self.store.getQrCode(id)
        if code is None:
            raise ApiError(404, "not_found", f"no code {id}")
        return Reply(200, codeJSON(code))

    async def revokeQrCode(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Reply:
        code = await self._admin.revokeCode(id)
        if code is None:
            raise ApiError(404, "not_found", f"no code {id}")
        await self._audit(principal, "access.qrcode.revoke", str(id), {})
        return Reply(200, codeJSON(code))

    # -- group settings --------------------------------------------------------------------------

    async def _groupAccess(self, name: str) -> GroupAccess:
        if await self.store.getGroup(name) is None:
            raise ApiError(404, "not_found", f"no group {name!r}")
        for settings in await self.store.listGroupAccess():
            if settings.group == name:
                return settings
        return GroupAccess(group=name)

    async def getGroupAccess(
        self, request: IRequest, principal: Principal, query: Any, name: str
    ) -> Reply:
        return Reply(200, groupAccessJSON(await self._groupAccess(name)))

    async def updateGroupAccess(
        self, request: IRequest, principal: Principal, query: Any, name: str
    ) -> Reply:
        body = self._body(request, "GroupAccessWrite")
        await self._groupAccess(name)
        with _accessErrors():
            settings = await self._admin.setGroupAccess(name, body)
        await self._audit(principal, "access.group.update", name, body)
        return Reply(200, groupAccessJSON(settings))

    # -- what the terminal enforces offline -------------------------------------------------------

    async def _planTerminal(self, sn: str) -> None:
        if await self.store.getTerminal(sn) is None:
            raise ApiError(404, "not_found", f"no terminal {sn!r}")

    async def getDevicePlan(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        await self._planTerminal(sn)
        with _accessErrors():
            plan = self._admin.devicePlan(sn)
        return Reply(200, devicePlanJSON(plan))

    async def pushDevicePlan(
        self, request: IRequest, principal: Principal, query: Any, sn: str
    ) -> Reply:
        await self._planTerminal(sn)
        with _accessErrors():
            plan, commands = await self._admin.pushDevicePlan(sn, principal.name)
        await self._audit(principal, "access.device.push", sn, {"commands": len(commands)})
        return Reply(202, {**devicePlanJSON(plan), "commands": [c.id for c in commands]})

    # -- decisions -------------------------------------------------------------------------------

    async def listAccessDecisions(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Reply:
        limit = query.get("limit", 50)
        items = await self.store.listAccessDecisions(query.get("terminal"), limit, _cursorId(query))
        nextCursor = encodeCursor(items[-1]["id"]) if len(items) == limit else None
        return Reply(200, {"items": items, "next": nextCursor})
