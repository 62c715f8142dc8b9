"""
The Server-Sent Events feed (C{GET /api/events/stream}): the event log from a cursor on, then
live, each event as::

    id: 42
    event: log.created
    data: {"id": 42, "type": "log.created", "sn": "...", "at": "...", "data": {...}}

A client that reconnects sends C{Last-Event-ID} (browsers do it by themselves) and gets every
event after it: nothing is missed.  An idle stream gets a comment line (C{: keep-alive}) every
C{heartbeat} seconds so proxies keep it open.  A client that reads slowly pauses the stream (the
socket's backpressure), it is not buffered in memory.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from tm20.events.feed import EventFeed
from tm20.events.model import Event, EventQuery

#: Events read from the store per page.
PAGE_SIZE = 500


def formatEvent(event: Event) -> bytes:
    """One SSE message."""
    data = json.dumps(event.asJSON(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


@implementer(IPushProducer)
class _Pause:
    """Registered on the request: the transport pauses us when the client reads too slowly."""

    def __init__(self) -> None:
        self.paused = False
        self.resumed: Deferred[None] | None = None
        self.stopped = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        resumed, self.resumed = self.resumed, None
        if resumed is not None and not resumed.called:
            resumed.callback(None)

    def stopProducing(self) -> None:
        self.stopped = True
        self.resumeProducing()


class EventStream:
    """One open SSE response (see the module docstring)."""

    log = Logger()

    def __init__(
        self,
        request: Any,
        store: Any,
        feed: EventFeed,
        clock: Any,
        query: EventQuery,
        heartbeat: float,
    ) -> None:
        self.request = request
        self.store = store
        self.feed = feed
        self.clock = clock
        self.query = query
        self.heartbeat = heartbeat
        self._closed = False
        self._waiting: Deferred[Any] | None = None
        self._pause = _Pause()

    def _gone(self, _: object) -> None:
        self._closed = True
        waiting = self._waiting
        if waiting is not None and not waiting.called:
            waiting.cancel()

    async def _wait(self, d: Deferred[Any]) -> Any:
        self._waiting = d
        try:
            return await d
        except CancelledError:
            return None
        finally:
            self._waiting = None

    async def run(self) -> None:
        """Stream until the client goes away or the server stops."""
        request = self.request
        request.notifyFinish().addBoth(self._gone)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        request.registerProducer(self._pause, True)
        request.write(b": tm20 events\n\n")
        cursor = self.query.after
        lastWrite = self.clock.seconds()
        while not self._closed and not self.feed.stopped:
            if self._pause.paused:
                self._pause.resumed = Deferred()
                await self._wait(self._pause.resumed)
                continue
            try:
                events = await self._wait(
                    self.store.listEvents(attrs.evolve(self.query, after=cursor, limit=PAGE_SIZE))
                )
            except Exception as e:
                self.log.warn("SSE stream: reading events failed: {error}", error=e)
                events = None
            if self._closed:
                break
            if events:
                request.write(b"".join(formatEvent(event) for event in events))
                cursor = events[-1].id
                lastWrite = self.clock.seconds()
                continue
            idle = self.clock.seconds() - lastWrite
            if idle >= self.heartbeat:
                request.write(b": keep-alive\n\n")
                lastWrite = self.clock.seconds()
                continue
            timeout = min(self.heartbeat - idle, self.feed.pollInterval)
            await self._wait(self.feed.wait(timeout))
        if not self._closed:
            request.unregisterProducer()
            request.finish()


__all__ = ["PAGE_SIZE", "EventStream", "formatEvent"]
