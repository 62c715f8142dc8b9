"""
The admin pages: console accounts (L{tm20.services.accounts}), API tokens
(L{tm20.services.tokens}: a secret shown once), webhooks (L{tm20.services.webhooks}: state,
failures, replay).  Mixed into L{tm20.console._app.Console}.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.web.iweb import IRequest

from tm20.console._base import ConsoleBase
from tm20.console._forms import formValue
from tm20.console._views import NOTES
from tm20.model import CONSOLE_ROLES
from tm20.services.accounts import LoggedIn
from tm20.services.errors import ServiceError
from tm20.services.tokens import SCOPES, TokenService
from tm20.services.webhooks import WebhookService
from tm20.views.events import webhookJSON

__all__ = ["AdminPages"]


class AdminPages(ConsoleBase):
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

    async def accountsAction(self, request: IRequest, who: LoggedIn) -> bytes:
        action = formValue(request, "action")
        name = formValue(request, "name")
        try:
            if action == "create":
                await self.accounts.create(
                    name, formValue(request, "role"), formValue(request, "password")
                )
                audited: dict[str, Any] = {"role": formValue(request, "role")}
            elif action == "role":
                await self.accounts.setRole(name, formValue(request, "role"))
                audited = {"role": formValue(request, "role")}
            elif action == "password":
                await self.accounts.setPassword(name, formValue(request, "password"))
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
        action = formValue(request, "action")
        name = formValue(request, "name")
        try:
            if action == "create":
                scopes = [s for s in SCOPES if formValue(request, f"scope-{s}") == "on"]
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
            note=NOTES.get(formValue(request, "note")),
        )

    async def webhookReplay(self, request: IRequest, who: LoggedIn, webhookId: int) -> bytes:
        start = formValue(request, "from")
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
