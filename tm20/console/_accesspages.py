"""
The access control pages (operators edit, viewers read): rules, holidays, visitor codes, the
doors' answer to unknown credentials, the latest decisions; on a terminal's page its decisions
and the plan it can enforce offline.  Every change is a call of
L{tm20.services.accessadmin.AccessAdmin} (the API's rules, the same audit actions); a refusal
is shown next to the field it names, the form kept.  Mixed into L{tm20.console._app.Console}.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from klein import Klein
from twisted.web.iweb import IRequest

from tm20.access.model import UNKNOWN_ALLOW, UNKNOWN_DENY, GroupAccess
from tm20.console._accessviews import (
    codeDecisionTime,
    codeRow,
    decisionRow,
    formField,
    planView,
    ruleBody,
    ruleForm,
    ruleRow,
    submittedRule,
)
from tm20.console._base import ConsoleBase
from tm20.console._forms import formValue, formValues, localInstant
from tm20.model import LogQuery
from tm20.services.accessadmin import AccessAdmin, AccessError
from tm20.services.accounts import LoggedIn
from tm20.services.errors import ServiceError

__all__ = ["AccessPages"]

#: Decisions per list (each of punches and codes).
DECISION_PAGE = 50
_RULE_FIELDS = ("description", "persons", "personGroups", "terminals", "terminalGroups")
_Refused = (AccessError, ServiceError)


class AccessPages(ConsoleBase):
    app: Klein

    if TYPE_CHECKING:  # L{tm20.console._terminalpages.TerminalPages}'s

        async def terminalPage(
            self,
            request: IRequest,
            who: LoggedIn,
            sn: str,
            status: int = 200,
            error: str | None = None,
            confirm: dict[str, Any] | None = None,
        ) -> bytes: ...

    # -- plumbing ----------------------------------------------------------------------------------

    def _accessRoutes(self) -> None:
        route = self.app.route
        viewer, operator = "viewer", "operator"
        route("/access/", methods=["GET"])(self._guard(viewer, self.accessHome))
        route("/access/rules", methods=["GET"])(self._guard(viewer, self.rulesPage))
        route("/access/rules/new", methods=["GET"])(self._guard(operator, self.ruleNewPage))
        route("/access/rules/new", methods=["POST"], endpoint="rule-create")(
            self._guard(operator, self.ruleCreate, post=True)
        )
        route("/access/rules/<int:ruleId>", methods=["GET"])(
            self._guard(operator, self.ruleEditPage)
        )
        route("/access/rules/<int:ruleId>", methods=["POST"], endpoint="rule-save")(
            self._guard(operator, self.ruleSave, post=True)
        )
        route("/access/rules/<int:ruleId>/delete", methods=["POST"])(
            self._guard(operator, self.ruleDelete, post=True)
        )
        route("/access/holidays", methods=["GET"])(self._guard(viewer, self.holidaysPage))
        route("/access/holidays", methods=["POST"], endpoint="holidays-post")(
            self._guard(operator, self.holidaysAction, post=True)
        )
        route("/access/codes", methods=["GET"])(self._guard(viewer, self.codesPage))
        route("/access/codes", methods=["POST"], endpoint="codes-post")(
            self._guard(operator, self.codeCreate, post=True)
        )
        route("/access/codes/<int:codeId>/revoke", methods=["POST"])(
            self._guard(operator, self.codeRevoke, post=True)
        )
        route("/access/groups", methods=["GET"])(self._guard(viewer, self.groupsPage))
        route("/access/groups", methods=["POST"], endpoint="groups-post")(
            self._guard(operator, self.groupSave, post=True)
        )
        route("/access/decisions", methods=["GET"])(self._guard(viewer, self.decisionsPage))
        route("/terminals/<sn>/push-access", methods=["POST"])(
            self._guard(operator, self.pushAccess, post=True)
        )

    @property
    def _admin(self) -> AccessAdmin:
        access = getattr(self.context, "access", None)
        if access is None:
            raise ServiceError(503, "unavailable", "this store keeps no access rules")
        return AccessAdmin(self.store, access, self.clock, self.context.queue)

    async def _names(self) -> dict[int, str]:
        """Persons' names by enrollid (the first 5 000)."""
        persons = await self.store.listPersons(5000, None)
        return {p.enrollid: p.name or "" for p in persons}

    async def _choices(self) -> dict[str, Any]:
        """What a rule or a code may name: the persons, groups and terminals that exist."""
        persons = await self.store.listPersons(5000, None)
        groups = await self.store.listGroups()
        terminals = await self.store.listTerminals(None)
        return {
            "persons": [(str(p.enrollid), f"{p.name or ''} ({p.enrollid})") for p in persons],
            "groups": [g.name for g in groups],
            "terminalChoices": [
                (t.sn, f"{t.name} ({t.sn})" if t.name else t.sn) for t in terminals
            ],
        }

    async def accessHome(self, request: IRequest, who: LoggedIn) -> bytes:
        return self._redirect(request, "/admin/access/rules")

    # -- rules -------------------------------------------------------------------------------------

    async def rulesPage(
        self, request: IRequest, who: LoggedIn, status: int = 200, error: str | None = None
    ) -> bytes:
        rules = await self.store.listAccessRules()
        names = await self._names()
        return self.render(
            request,
            "access_rules.html",
            status,
            who,
            section="rules",
            rules=[ruleRow(r, names) for r in rules],
            error=error,
            confirm=None,
            note={
                "created": "Rule created.",
                "saved": "Rule saved.",
                "deleted": "Rule deleted.",
            }.get(formValue(request, "note")),
        )

    async def _ruleFormPage(
        self,
        request: IRequest,
        who: LoggedIn,
        ruleId: int | None,
        form: dict[str, Any],
        status: int = 200,
        errors: dict[str, str] | None = None,
    ) -> bytes:
        return self.render(
            request,
            "access_rule.html",
            status,
            who,
            section="rules",
            ruleId=ruleId,
            form=form,
            errors=errors or {},
            days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
            **(await self._choices()),
        )

    async def ruleNewPage(self, request: IRequest, who: LoggedIn) -> bytes:
        return await self._ruleFormPage(request, who, None, ruleForm(None))

    async def ruleEditPage(self, request: IRequest, who: LoggedIn, ruleId: int) -> bytes:
        rule = await self.store.getAccessRule(ruleId)
        if rule is None:
            raise ServiceError(404, "not_found", f"no rule {ruleId}")
        return await self._ruleFormPage(request, who, ruleId, ruleForm(rule))

    def _formValues(self, request: IRequest) -> dict[str, list[str]]:
        args = getattr(request, "args", None) or {}
        return {
            key.decode("ascii", "replace"): formValues(request, key.decode("ascii", "replace"))
            for key in args
        }

    async def _submitRule(self, request: IRequest, who: LoggedIn, ruleId: int | None) -> bytes:
        form = submittedRule(self._formValues(request))
        origin: list[int] = []
        try:
            body, origin = ruleBody(form)
            if ruleId is None:
                rule = await self._admin.createRule(body)
                action, note = "access.rule.create", "created"
            else:
                if await self.store.getAccessRule(ruleId) is None:
                    raise ServiceError(404, "not_found", f"no rule {ruleId}")
                rule = await self._admin.replaceRule(ruleId, body)
                if rule is None:
                    raise ServiceError(404, "not_found", f"no rule {ruleId}")
                action, note = "access.rule.replace", "saved"
        except _Refused as e:
            if e.status in (404, 503):
                raise
            errors = {formField(e.field, origin): e.detail}
            form["windows"].append({"days": [], "start": "", "end": ""})
            return await self._ruleFormPage(request, who, ruleId, form, e.status, errors)
        await self.terminals.audit(who.actor, action, str(rule.id), body)
        return self._redirect(request, f"/admin/access/rules?note={note}#rule-{rule.id}")

    async def ruleCreate(self, request: IRequest, who: LoggedIn) -> bytes:
        return await self._submitRule(request, who, None)

    async def ruleSave(self, request: IRequest, who: LoggedIn, ruleId: int) -> bytes:
        return await self._submitRule(request, who, ruleId)

    async def ruleDelete(self, request: IRequest, who: LoggedIn, ruleId: int) -> bytes:
        rule = await self.store.getAccessRule(ruleId)
        if rule is None:
            raise ServiceError(404, "not_found", f"no rule {ruleId}")
        if formValue(request, "confirm") != "yes":
            rules = await self.store.listAccessRules()
            names = await self._names()
            return self.render(
                request,
                "access_rules.html",
                200,
                who,
                section="rules",
                rules=[ruleRow(r, names) for r in rules],
                error=None,
                note=None,
                confirm={"id": ruleId, "what": ruleRow(rule, names)},
            )
        await self._admin.deleteRule(ruleId)
        await self.terminals.audit(who.actor, "access.rule.delete", str(ruleId), {})
        return self._redirect(request, "/admin/access/rules?note=deleted")

    # -- holidays ----------------------------------------------------------------------------------

    async def holidaysPage(
        self,
        request: IRequest,
        who: LoggedIn,
        status: int = 200,
        errors: dict[str, str] | None = None,
        form: dict[str, Any] | None = None,
    ) -> bytes:
        holidays = await self.store.listHolidays()
        groups = await self.store.listGroups()
        return self.render(
            request,
            "access_holidays.html",
            status,
            who,
            section="holidays",
            holidays=holidays,
            groups=[g.name for g in groups],
            errors=errors or {},
            form=form or {"terminalGroups": []},
        )

    async def holidaysAction(self, request: IRequest, who: LoggedIn) -> bytes:
        action = formValue(request, "action")
        form: dict[str, Any] = {
            "name": formValue(request, "name"),
            "start": formValue(request, "start"),
            "end": formValue(request, "end"),
            "terminalGroups": [g for g in formValues(request, "terminalGroups") if g],
        }
        try:
            if action == "create":
                body: dict[str, Any] = {
                    "name": form["name"],
                    "start": form["start"],
                    "terminalGroups": form["terminalGroups"],
                }
                if form["end"]:
                    body["end"] = form["end"]
                holiday = await self._admin.addHoliday(body)
                await self.terminals.audit(
                    who.actor, "access.holiday.create", str(holiday.id), body
                )
            elif action == "delete":
                holidayId = formValue(request, "id")
                if not holidayId.isdigit() or not await self._admin.deleteHoliday(int(holidayId)):
                    raise ServiceError(404, "not_found", f"no holiday {holidayId}")
                await self.terminals.audit(who.actor, "access.holiday.delete", holidayId, {})
            else:
                raise ServiceError(400, "invalid_form", "unknown action", field="action")
        except _Refused as e:
            if e.status in (404, 503):
                raise
            errors = {formField(e.field): e.detail}
            return await self.holidaysPage(request, who, e.status, errors, form)
        return self._redirect(request, "/admin/access/holidays")

    # -- visitor codes -----------------------------------------------------------------------------

    async def codesPage(
        self,
        request: IRequest,
        who: LoggedIn,
        status: int = 200,
        errors: dict[str, str] | None = None,
        form: dict[str, Any] | None = None,
        created: dict[str, Any] | None = None,
    ) -> bytes:
        codes = await self.store.listQrCodes(200, None)
        names = await self._names()
        now = datetime.fromtimestamp(self.clock.seconds(), UTC)
        zone = self.context.config.defaultTimezone or "UTC"
        return self.render(
            request,
            "access_codes.html",
            status,
            who,
            section="codes",
            codes=[codeRow(c, now, names) for c in codes],
            errors=errors or {},
            form=form or {"zone": zone, "terminals": [], "terminalGroups": []},
            created=created,
            **(await self._choices()),
        )

    async def codeCreate(self, request: IRequest, who: LoggedIn) -> bytes:
        form: dict[str, Any] = {
            k: formValue(request, k)
            for k in ("enrollid", "visitorName", "validFrom", "validUntil", "zone", "code")
        }
        form["singleUse"] = formValue(request, "singleUse") == "on"
        form["terminals"] = [v for v in formValues(request, "terminals") if v]
        form["terminalGroups"] = [v for v in formValues(request, "terminalGroups") if v]
        try:
            zone = form["zone"] or "UTC"
            body: dict[str, Any] = {
                "terminals": form["terminals"],
                "terminalGroups": form["terminalGroups"],
                "singleUse": form["singleUse"],
                "validUntil": localInstant("validUntil", form["validUntil"], zone),
            }
            validFrom = localInstant("validFrom", form["validFrom"], zone)
            if validFrom is not None:
                body["validFrom"] = validFrom
            if form["enrollid"]:
                if not form["enrollid"].isdigit():
                    raise ServiceError(400, "invalid_form", "must be a number", field="enrollid")
                body["enrollid"] = int(form["enrollid"])
            if form["visitorName"]:
                body["visitorName"] = form["visitorName"][:200]
            if form["code"]:
                body["code"] = form["code"]
            code, text = await self._admin.createCode(body)
        except _Refused as e:
            if e.status == 503:
                raise
            errors = {formField(e.field): e.detail}
            return await self.codesPage(request, who, e.status, errors, form)
        audited = {k: v for k, v in body.items() if k != "code"}
        await self.terminals.audit(who.actor, "access.qrcode.create", str(code.id), audited)
        # the code's text: on this answer only (only its hash is stored), never in a URL
        return await self.codesPage(request, who, created={"id": code.id, "text": text})

    async def codeRevoke(self, request: IRequest, who: LoggedIn, codeId: int) -> bytes:
        code = await self._admin.revokeCode(codeId)
        if code is None:
            raise ServiceError(404, "not_found", f"no code {codeId}")
        await self.terminals.audit(who.actor, "access.qrcode.revoke", str(codeId), {})
        return self._redirect(request, "/admin/access/codes")

    # -- unknown credentials per group -------------------------------------------------------------

    async def groupsPage(
        self, request: IRequest, who: LoggedIn, status: int = 200, error: str | None = None
    ) -> bytes:
        groups = await self.store.listGroups()
        settings = {g.group: g for g in await self.store.listGroupAccess()}
        rows = [settings.get(g.name) or GroupAccess(group=g.name) for g in groups]
        return self.render(
            request,
            "access_groups.html",
            status,
            who,
            section="groups",
            rows=rows,
            choices=(UNKNOWN_DENY, UNKNOWN_ALLOW),
            error=error,
            note="Saved." if formValue(request, "note") == "saved" else None,
        )

    async def groupSave(self, request: IRequest, who: LoggedIn) -> bytes:
        name = formValue(request, "group")
        body = {
            "unknownEnrollid": formValue(request, "unknownEnrollid"),
            "unknownCode": formValue(request, "unknownCode"),
        }
        try:
            if await self.store.getGroup(name) is None:
                raise ServiceError(404, "not_found", f"no group {name!r}")
            await self._admin.setGroupAccess(name, body)
        except _Refused as e:
            if e.status in (404, 503):
                raise
            return await self.groupsPage(request, who, e.status, f"{e.field}: {e.detail}")
        await self.terminals.audit(who.actor, "access.group.update", name, body)
        return self._redirect(request, "/admin/access/groups?note=saved")

    # -- decisions ---------------------------------------------------------------------------------

    async def _decisions(
        self, sn: str | None, decision: str, limit: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The latest punch decisions and code decisions, newest first."""
        names = await self._names()
        logs = await self.store.queryLogs(
            LogQuery(sn=sn, access=decision or "decided", limit=limit)
        )
        punches = [
            decisionRow("punch", e.sn, e.enrollid, e.accessGranted, e.accessReason, e.time, names)
            for e in logs
        ]
        granted = None if not decision else decision == "granted"
        found = await self.store.listAccessDecisions(sn, limit, None, granted)
        codes = [
            decisionRow(
                d["kind"],
                d["sn"],
                d["enrollid"],
                d["granted"],
                d["reason"],
                codeDecisionTime(d["decidedAt"]),
                names,
            )
            for d in found
        ]
        return punches, codes

    async def decisionsPage(self, request: IRequest, who: LoggedIn) -> bytes:
        sn = formValue(request, "sn")
        decision = formValue(request, "decision")
        if decision not in ("", "granted", "denied"):
            raise ServiceError(400, "invalid_form", "granted or denied", field="decision")
        punches, codes = await self._decisions(sn or None, decision, DECISION_PAGE)
        terminals = await self.store.listTerminals(None)
        return self.render(
            request,
            "access_decisions.html",
            who=who,
            section="decisions",
            punches=punches,
            codes=codes,
            sn=sn,
            decision=decision,
            terminals=[t.sn for t in terminals],
        )

    # -- on a terminal's page ----------------------------------------------------------------------

    async def accessOfTerminal(self, sn: str) -> dict[str, Any] | None:
        """A terminal's latest decisions and its device plan (or why there is none)."""
        if getattr(self.context, "access", None) is None:
            return None
        punches, codes = await self._decisions(sn, "", 10)
        plan: dict[str, Any] | None = None
        problem = None
        try:
            plan = planView(self._admin.devicePlan(sn))
        except AccessError as e:
            problem = e.detail
        return {"punches": punches, "codes": codes, "plan": plan, "planProblem": problem}

    async def pushAccess(self, request: IRequest, who: LoggedIn, sn: str) -> bytes:
        await self.terminals.get(sn)
        page = f"/admin/terminals/{quote(sn, safe='')}/"
        try:
            _, commands = await self._admin.pushDevicePlan(sn, who.actor)
        except AccessError as e:
            return await self.terminalPage(request, who, sn, status=e.status, error=e.detail)
        await self.terminals.audit(who.actor, "access.device.push", sn, {"commands": len(commands)})
        return self._redirect(request, page + "?note=access-pushed")
