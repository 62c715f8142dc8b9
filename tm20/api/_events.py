"""
The routes of events and webhooks (L{tm20.api._eventsopenapi}), mixed into L{tm20.api._app.TM20Api}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from tm20.api._auth import Principal
from tm20.api._errors import ApiError
from tm20.api._part import AppPart
from tm20.api._reply import Reply
from tm20.events.model import (
    EventQuery,
    SinkAttempt,
    Webhook,
    expandTypes,
)
from tm20.events.sse import EventStream
from tm20.services.webhooks import WebhookService
from tm20.views.events import attemptJSON, webhookJSON
from tm20.views.model import decodeCursor, encodeCursor

#: Default page size of the event log.
DEFAULT_EVENT_LIMIT = 100


class EventsApi(AppPart):
    """Events and webhooks (the app's parts: L{AppPart})."""

    log = Logger()

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

    async def _webhook(self, webhookId: int) -> Webhook:
        return await WebhookService(self.context).get(webhookId)

    async def _webhookJSON(self, webhook: Webhook, withSecret: bool = False) -> dict[str, Any]:
        stream = await self.store.getSinkStream(webhook.streamKey)
        return webhookJSON(webhook, stream, withSecret)

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

    def _webhooks(self) -> WebhookService:
        """The service, auditing with the app's writer."""
        return WebhookService(self.context, self.terminals.audit)

    async def createWebhook(self, request: IRequest, principal: Principal, query: Any) -> Any:
        body = self._body(request, "WebhookCreate")
        webhook = await self._webhooks().create(principal.name, body)
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
        webhook = await self._webhooks().update(principal.name, id, body)
        return Reply(200, await self._webhookJSON(webhook))

    async def deleteWebhook(
        self, request: IRequest, principal: Principal, query: Any, id: int
    ) -> Any:
        await self._webhooks().delete(principal.name, id)
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
