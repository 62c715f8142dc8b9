"""
The routes of events and webhooks (L{tm20.api._eventsopenapi}), mixed into L{tm20.api._app.TM20Api}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from tm20.api._auth import Principal
from tm20.api._errors import ApiError
from tm20.api._reply import Reply
from tm20.events.model import (
    STREAM_ACTIVE,
    STREAM_DISABLED,
    EventQuery,
    SinkAttempt,
    Webhook,
    expandTypes,
)
from tm20.events.sse import EventStream
from tm20.events.webhooks import checkURL, generateSecret, secretKey
from tm20.services.webhooks import WebhookService
from tm20.terminal.limits import NetworkList
from tm20.views.events import attemptJSON, webhookJSON
from tm20.views.model import decodeCursor, encodeCursor

#: Default page size of the event log.
DEFAULT_EVENT_LIMIT = 100


def _types(value: Any, field: str) -> tuple[str, ...]:
    """Event type patterns, each checked (a 400 naming the one that matches nothing)."""
    patterns = [p.strip() for p in value] if isinstance(value, list) else value
    if not patterns:
        raise ApiError(400, "invalid_body", "must list at least one event type", field=field)
    for i, pattern in enumerate(patterns):
        try:
            expandTypes([pattern])
        except ValueError as e:
            raise ApiError(400, "invalid_body", str(e), field=f"{field}[{i}]") from None
    return tuple(patterns)


class EventsApi:
    """Events and webhooks; needs C{context}, C{store} and C{_audit} of the app."""

    log = Logger()
    context: Any
    store: Any

    if TYPE_CHECKING:  # the app's

        async def _audit(
            self, principal: Principal, action: str, target: str | None, detail: Mapping[str, Any]
        ) -> None: ...

        @staticmethod
        def _body(request: IRequest, schema: str, required: bool = True) -> dict[str, Any]: ...

    # -- plumbing ----------------------------------------------------------------------------------

    def _eventQuery(self, request: IRequest, query: Mapping[str, Any], limit: int) -> EventQuery:
        types = None
        if "type" in query:
            patterns = [p.strip() for p in query["type"].split(",") if p.strip()]
            try:
                types = expandTypes(patterns) if patterns else None
            except ValueError as e:
                raise ApiError(400, "invalid_query", str(e), field="type") from None
        return EventQuery(after=query.get("after", 0), types=types, sn=query.get("sn"), limit=limit)

    def _networks(self) -> NetworkList:
        return NetworkList(self.context.config.webhookNetworks)

    def _checkURL(self, url: str) -> None:
        try:
            checkURL(url, self._networks())
        except ValueError as e:
            raise ApiError(400, "invalid_body", str(e), field="url") from None

    async def _webhook(self, webhookId: int) -> Webhook:
        webhook: Webhook | None = await self.store.getWebhook(webhookId)
        if webhook is None:
            raise ApiError(404, "not_found", f"no webhook {webhookId}")
        return webhook

    async def _webhookJSON(self, webhook: Webhook, withSecret: bool = False) -> dict[str, Any]:
        stream = await self.store.getSinkStream(webhook.streamKey)
        return webhookJSON(webhook, stream, withSecret)

    async def _refresh(self) -> None:
        events = self.context.events
        if events is not None:
            await events.runner.refresh()

    def _worker(self, webhook: Webhook) -> Any:
        events = self.context.events
        return None if events is None else events.runner.workers.get(webhook.streamKey)

    # -- events ------------------------------------------------------------------------------------

    async def listEvents(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Any:
        limit = query.get("limit", DEFAULT_EVENT_LIMIT)
        eventQuery = self._eventQuery(request, query, limit)
        events = await self.store.listEvents(eventQuery)
        body = {
            "items": [event.asJSON() for event in events],
            "next": events[-1].id if events else eventQuery.after,
            "more": len(events) == limit,
        }
        return Reply(200, body)

    async def streamEvents(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any]
    ) -> Any:
        eventQuery = self._eventQuery(request, query, 0)
        lastId = request.getHeader(b"last-event-id")
        if lastId:
            try:
                after = int(lastId.decode("ascii").strip(), 10)
                if after < 0:
                    raise ValueError
            except (UnicodeDecodeError, ValueError):
                raise ApiError(
                    400, "invalid_header", "must be an event id", field="Last-Event-ID"
                ) from None
            eventQuery = EventQuery(after=after, types=eventQuery.types, sn=eventQuery.sn)
        events = self.context.events
        if events is None:
            raise ApiError(503, "unavailable", "the event feed is not running")
        stream = EventStream(
            request,
            self.store,
            events.feed,
            self.context.clock,
            eventQuery,
            self.context.config.sseHeartbeat,
        )
        await stream.run()
        return None  # the stream wrote (and finished) the response itself

    # -- webhooks ----------------------------------------------------------------------------------

    async def listWebhooks(self, request: IRequest, principal: Principal, query: Any) -> Any:
        webhooks: list[Webhook] = await self.store.listWebhooks()
        items = [await self._webhookJSON(w) for w in webhooks]
        return Reply(200, {"items": items, "count": len(items)})

    async def createWebhook(self, request: IRequest, principal: Principal, query: Any) -> Any:
        body = self._body(request, "WebhookCreate")
        self._checkURL(body["url"])
        types = _types(body.get("types", ["*"]), "types")
        secret = body.get("secret")
        if secret is None:
            secret = generateSecret()
        else:
            try:
                secretKey(secret)
            except ValueError as e:
                raise ApiError(400, "invalid_body", str(e), field="secret") from None
        audited = {k: v for k, v in body.items() if k != "secret"}
        await self._audit(principal, "webhook.create", body["url"], audited)
        webhook: Webhook = await self.store.createWebhook(
            body["url"], types, body.get("sn"), secret, body.get("description")
        )
        await self._refresh()
        return Reply(
            201,
            await self._webhookJSON(webhook, withSecret=True),
            {"Location": f"/api/webhooks/{webhook.id}"},
        )

    async def getWebhook(self, request: IRequest, principal: Principal, query: Any, id: int) -> Any:
        return Reply(200, await self._webhookJSON(await self._webhook(id)))

    async def updateWebhook(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Any:
        body = self._body(request, "WebhookPatch")
        webhook = await self._webhook(id)
        changes = {k: v for k, v in body.items() if k != "enabled"}
        if "url" in changes:
            self._checkURL(changes["url"])
        if "types" in changes:
            changes["types"] = list(_types(changes["types"], "types"))
        await self._audit(principal, "webhook.update", str(id), body)
        if changes:
            updated = await self.store.updateWebhook(id, changes)
            if updated is None:
                raise ApiError(404, "not_found", f"no webhook {id}")
            webhook = updated
            await self._refresh()
        if "enabled" in body:
            worker = self._worker(webhook)
            if body["enabled"]:
                if worker is not None:
                    await worker.enable()
                else:
                    await self.store.updateSinkStream(
                        webhook.streamKey,
                        {"state": STREAM_ACTIVE, "failures": 0, "retryAt": None},
                    )
            else:
                await self.store.updateSinkStream(webhook.streamKey, {"state": STREAM_DISABLED})
                if worker is not None:
                    worker.stream = None  # read its state again
                    worker.poke()
        return Reply(200, await self._webhookJSON(webhook))

    async def deleteWebhook(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Any:
        await self._webhook(id)
        await self._audit(principal, "webhook.delete", str(id), {})
        if not await self.store.deleteWebhook(id):
            raise ApiError(404, "not_found", f"no webhook {id}")
        await self._refresh()
        return Reply(204, None)

    async def replayWebhook(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Any:
        body = self._body(request, "WebhookReplay")
        await self._webhook(id)
        await self._audit(principal, "webhook.replay", str(id), body)
        webhook = await WebhookService(self.context).replay(id, body["from"])
        return Reply(200, await self._webhookJSON(webhook))

    async def listWebhookAttempts(
        self, request: IRequest, principal: Principal, query: Mapping[str, Any], id: int
    ) -> Any:
        webhook = await self._webhook(id)
        limit = query.get("limit", 50)
        before = None
        if "cursor" in query:
            try:
                before = decodeCursor(query["cursor"])
            except ValueError:
                before = None
            if not isinstance(before, int) or isinstance(before, bool) or before < 1:
                raise ApiError(400, "invalid_query", "invalid cursor", field="cursor")
        attempts: list[SinkAttempt] = await self.store.listSinkAttempts(
            webhook.streamKey, limit, before
        )
        nextCursor = encodeCursor(attempts[-1].id) if len(attempts) == limit else None
        return Reply(200, {"items": [attemptJSON(a) for a in attempts], "next": nextCursor})


__all__ = ["EventsApi", "attemptJSON", "webhookJSON"]
