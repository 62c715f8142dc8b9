"""
Webhook subscriptions as operators see and steer them: each with its delivery state, and the
replay of its events from an id on (the rule both doors follow: a running worker rewinds
itself; without one the stored cursor is rewound and the failure state cleared).

Creating, changing and deleting one is checked here (its URL against C{--webhook-networks}, its
event types, its secret), audited, and the delivery runner picks the change up at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tm20.events.model import STREAM_ACTIVE, STREAM_DISABLED, SinkStream, Webhook, expandTypes
from tm20.events.webhooks import checkURL, generateSecret, secretKey
from tm20.services.audit import Audit
from tm20.services.errors import ServiceError
from tm20.terminal.limits import NetworkList

__all__ = ["WebhookService", "checkTypes"]


def checkTypes(value: Any, field: str) -> tuple[str, ...]:
    """Event type patterns, each checked (a 400 naming the one that matches nothing)."""
    patterns = [p.strip() for p in value] if isinstance(value, list) else value
    if not patterns:
        raise ServiceError(400, "invalid_body", "must list at least one event type", field=field)
    for i, pattern in enumerate(patterns):
        try:
            expandTypes([pattern])
        except ValueError as e:
            raise ServiceError(400, "invalid_body", str(e), field=f"{field}[{i}]") from None
    return tuple(patterns)


class WebhookService:
    """
    @param context: the L{tm20.context.ServerContext} (store, events, config).
    @param audit: writes the audit entry of a change (the changes need it).
    """

    def __init__(self, context: Any, audit: Audit | None = None) -> None:
        self.context = context
        self._auditor = audit

    async def _audit(
        self, actor: str, action: str, target: str | None, detail: Mapping[str, Any]
    ) -> None:
        if self._auditor is None:
            raise TypeError("WebhookService: changes need an audit writer")
        await self._auditor(actor, action, target, detail)

    def _checkURL(self, url: str) -> None:
        try:
            checkURL(url, NetworkList(self.context.config.webhookNetworks))
        except ValueError as e:
            raise ServiceError(400, "invalid_body", str(e), field="url") from None

    async def _refresh(self) -> None:
        events = self.context.events
        if events is not None:
            await events.runner.refresh()

    async def get(self, webhookId: int) -> Webhook:
        webhook: Webhook | None = await self.context.store.getWebhook(webhookId)
        if webhook is None:
            raise ServiceError(404, "not_found", f"no webhook {webhookId}")
        return webhook

    async def stream(self, webhook: Webhook) -> SinkStream | None:
        stream: SinkStream | None = await self.context.store.getSinkStream(webhook.streamKey)
        return stream

    async def listWithState(self) -> list[tuple[Webhook, SinkStream | None]]:
        webhooks: list[Webhook] = await self.context.store.listWebhooks()
        return [(w, await self.stream(w)) for w in webhooks]

    def _worker(self, webhook: Webhook) -> Any:
        events = self.context.events
        return None if events is None else events.runner.workers.get(webhook.streamKey)

    async def replay(self, webhookId: int, start: int) -> Webhook:
        """Deliver C{webhookId}'s events again from event C{start} on (the caller audits)."""
        if start < 1:
            raise ServiceError(400, "invalid_body", "must be an event id (>= 1)", field="from")
        webhook = await self.get(webhookId)
        worker = self._worker(webhook)
        if worker is not None:
            await worker.replay(start)
        else:
            await self.context.store.updateSinkStream(
                webhook.streamKey,
                {
                    "cursor": start - 1,
                    "state": STREAM_ACTIVE,
                    "failures": 0,
                    "retryAt": None,
                    "failingSince": None,
                    "lastError": None,
                },
            )
        return webhook

    # -- changes -----------------------------------------------------------------------------------

    async def create(self, actor: str, body: Mapping[str, Any]) -> Webhook:
        """
        Subscribe C{body["url"]} to C{body["types"]} (every event by default), with the given
        C{secret} or a new one (never audited).
        """
        self._checkURL(body["url"])
        types = checkTypes(body.get("types", ["*"]), "types")
        secret = body.get("secret")
        if secret is None:
            secret = generateSecret()
        else:
            try:
                secretKey(secret)
            except ValueError as e:
                raise ServiceError(400, "invalid_body", str(e), field="secret") from None
        audited = {k: v for k, v in body.items() if k != "secret"}
        await self._audit(actor, "webhook.create", body["url"], audited)
        webhook: Webhook = await self.context.store.createWebhook(
            body["url"], types, body.get("sn"), secret, body.get("description")
        )
        await self._refresh()
        return webhook

    async def update(self, actor: str, webhookId: int, body: Mapping[str, Any]) -> Webhook:
        """
        Change what C{body} names; C{enabled} resumes (a failing stream from scratch) or stops
        its delivery.
        """
        store = self.context.store
        webhook = await self.get(webhookId)
        changes = {k: v for k, v in body.items() if k != "enabled"}
        if "url" in changes:
            self._checkURL(changes["url"])
        if "types" in changes:
            changes["types"] = list(checkTypes(changes["types"], "types"))
        await self._audit(actor, "webhook.update", str(webhookId), body)
        if changes:
            updated = await store.updateWebhook(webhookId, changes)
            if updated is None:
                raise ServiceError(404, "not_found", f"no webhook {webhookId}")
            webhook = updated
            await self._refresh()
        if "enabled" in body:
            worker = self._worker(webhook)
            if body["enabled"]:
                if worker is not None:
                    await worker.enable()
                else:
                    await store.updateSinkStream(
                        webhook.streamKey,
                        {"state": STREAM_ACTIVE, "failures": 0, "retryAt": None},
                    )
            else:
                await store.updateSinkStream(webhook.streamKey, {"state": STREAM_DISABLED})
                if worker is not None:
                    worker.stream = None  # read its state again
                    worker.poke()
        return webhook

    async def delete(self, actor: str, webhookId: int) -> None:
        """Unsubscribe (its stream and attempts go with it)."""
        await self.get(webhookId)
        await self._audit(actor, "webhook.delete", str(webhookId), {})
        if not await self.context.store.deleteWebhook(webhookId):
            raise ServiceError(404, "not_found", f"no webhook {webhookId}")
        await self._refresh()
