"""The built-in event sink: webhook subscriptions (see L{tm20.events.webhooks})."""

from __future__ import annotations

from tm20.events.webhooks import WebhookSink

webhookSink = WebhookSink()
