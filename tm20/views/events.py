"""The JSON views of webhooks and their delivery attempts, shared by the doors."""

from __future__ import annotations

from typing import Any

from tm20.events.model import STREAM_ACTIVE, SinkAttempt, SinkStream, Webhook
from tm20.views.model import isoTime

__all__ = ["attemptJSON", "webhookJSON"]


def webhookJSON(
    webhook: Webhook, stream: SinkStream | None, withSecret: bool = False
) -> dict[str, Any]:
    """A subscription with its delivery state (the secret only when asked: at creation)."""
    out: dict[str, Any] = {
        "id": webhook.id,
        "url": webhook.url,
        "types": list(webhook.types),
        "sn": webhook.sn,
        "description": webhook.description,
        "state": stream.state if stream is not None else STREAM_ACTIVE,
        "cursor": stream.cursor if stream is not None else 0,
        "failures": stream.failures if stream is not None else 0,
        "retryAt": isoTime(stream.retryAt) if stream is not None else None,
        "failingSince": isoTime(stream.failingSince) if stream is not None else None,
        "lastError": stream.lastError if stream is not None else None,
        "createdAt": isoTime(webhook.createdAt),
        "updatedAt": isoTime(webhook.updatedAt),
    }
    if withSecret:
        out["secret"] = webhook.secret
    return out


def attemptJSON(attempt: SinkAttempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "at": attempt.at.isoformat(),
        "firstEvent": attempt.firstEvent,
        "lastEvent": attempt.lastEvent,
        "events": attempt.events,
        "ok": attempt.ok,
        "status": attempt.status,
        "latencyMs": attempt.latencyMs,
        "error": attempt.error,
        "response": attempt.response,
    }
