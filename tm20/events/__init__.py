"""
Events out: the event log read behind cursors.

  - L{tm20.events.model}: events, queries, delivery streams, webhooks (values).
  - L{tm20.events.payloads}: what each event type says (the stores call these).
  - L{tm20.events.feed}: wake-ups when new events may be there (no polling storms).
  - L{tm20.events.sinks}: what a sink plugin declares and returns (L{tm20.interfaces.IEventSink}).
  - L{tm20.events.runner}: the sink runner: one durable cursor per stream, ordered retries.
  - L{tm20.events.webhooks}: the webhook sink (Standard Webhooks signatures, safety limits).
  - L{tm20.events.sse}: the Server-Sent Events feed of C{/api/events/stream}.
  - L{tm20.events.service}: wiring (retention pruning, connection events, start and stop).
"""
