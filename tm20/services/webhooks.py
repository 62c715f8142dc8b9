"""
Webhook subscriptions as operators see and steer them: each with its delivery state, and the
replay of its events from an id on (the rule both doors follow: a running worker rewinds
itself; without one the stored cursor is rewound and the failure state cleared).
"""

from __future__ import annotations

from typing import Any

from tm20.events.model import STREAM_ACTIVE, SinkStream, Webhook
from tm20.services.errors import ServiceError

__all__ = ["WebhookService"]


class WebhookService:
    """@param context: the L{tm20.context.ServerContext} (store, events)."""

    def __init__(self, context: Any) -> None:
        self.context = context

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
