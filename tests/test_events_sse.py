"""
C{GET /api/events/stream}: Server-Sent Events over a real loopback HTTP connection, resumed with
C{Last-Event-ID} with nothing missing, heartbeats while idle, filters, authentication.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater

from tests import pgharness
from tests.test_api_support import ADMIN, ApiTestCase, simulated
from tm20.interfaces import IStore
from tm20.store.postgres import PostgresStore


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(None)


class SSEClient:
    """One open stream: its raw text, its parsed messages, and a way to hang up."""

    def __init__(self, response: Any, collector: _Collect) -> None:
        self.response = response
        self.collector = collector

    @property
    def text(self) -> str:
        return self.collector.data.decode("utf-8")

    def messages(self) -> list[dict[str, Any]]:
        out = []
        for block in self.text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if line and not line.startswith(":") and ": " in line:
                    name, value = line.split(": ", 1)
                    fields[name] = value
            if "data" in fields:
                out.append(
                    {
                        "id": int(fields["id"]),
                        "event": fields["event"],
                        **json.loads(fields["data"]),
                    }
                )
        return out

    def ids(self) -> list[int]:
        return [m["id"] for m in self.messages()]

    def close(self) -> Deferred[None]:
        transport = getattr(self.collector, "transport", None)
        if transport is not None:
            transport.stopProducing()
        return self.collector.done


class SSETests(ApiTestCase):
    @inlineCallbacks
    def open(self, query: str = "", headers: dict[str, str] | None = None) -> Any:
        sent = {"Authorization": [f"Bearer {ADMIN}"], "Accept": ["text/event-stream"]}
        for name, value in (headers or {}).items():
            sent[name] = [value]
        response = yield treq.get(
            self.url(f"/api/events/stream{query}"), headers=sent, persistent=False, unbuffered=True
        )
        collector = _Collect()
        response.deliverBody(collector)
        client = SSEClient(response, collector)
        self.addCleanup(client.close)
        return client

    @inlineCallbacks
    def wait(self, check: Any, what: str) -> Any:
        for _ in range(500):
            if check():
                return
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail(f"never happened: {what}")

    @inlineCallbacks
    def test_streamResumeAndHeartbeat(self) -> Any:
        yield self.start(sseHeartbeat=0.2)
        store = self.running.context.store
        early = yield store.appendEvent("terminal.connected", "A", {"n": 1})
        client = yield self.open("?after=0")
        self.assertEqual(client.response.code, 200)
        self.assertTrue(
            client.response.headers.getRawHeaders("content-type")[0].startswith("text/event-stream")
        )
        yield self.wait(lambda: client.ids() == [early.id], "the stored event")
        terminal = simulated("ZX0000000009", users=1, logs=0)
        connection = yield self.connect(terminal)
        connection.punch(1, "2026-04-30 08:00:00")
        yield connection.whenAllLogsAcknowledged()
        yield self.wait(
            lambda: "log.created" in [m["event"] for m in client.messages()], "a live punch"
        )
        yield self.wait(lambda: ": keep-alive" in client.text, "a heartbeat")
        seen = client.ids()
        self.assertEqual(seen, sorted(seen))
        yield client.close()
        # while nobody listens
        missed = []
        for i in range(3):
            event = yield store.appendEvent("terminal.updated", "A", {"i": i})
            missed.append(event.id)
        again = yield self.open(headers={"Last-Event-ID": str(seen[-1])})
        yield self.wait(lambda: again.ids() == missed, "resumed after Last-Event-ID")
        message = again.messages()[0]
        self.assertEqual(message["type"], "terminal.updated")
        self.assertEqual(message["data"], {"i": 0})
        self.assertEqual(message["sn"], "A")

    @inlineCallbacks
    def test_filters(self) -> Any:
        yield self.start()
        store = self.running.context.store
        client = yield self.open("?type=door.*&sn=B")
        yield store.appendEvent("door.event", "A", {})
        wanted = yield store.appendEvent("door.event", "B", {})
        yield store.appendEvent("log.created", "B", {})
        last = yield store.appendEvent("door.event", "B", {})
        yield self.wait(lambda: client.ids() == [wanted.id, last.id], "only B's door events")

    @inlineCallbacks
    def test_refusals(self) -> Any:
        yield self.start()
        r = yield self.call("GET", "/api/events/stream", headers={"Last-Event-ID": "x"})
        self.assertEqual((r.status, r.json["field"]), (400, "Last-Event-ID"))
        r = yield self.call("GET", "/api/events/stream?type=nope")
        self.assertEqual((r.status, r.json["field"]), (400, "type"))
        r = yield self.call("GET", "/api/events/stream", token=None)
        self.assertEqual(r.status, 401)

    @inlineCallbacks
    def test_serverStopEndsTheStream(self) -> Any:
        yield self.start()
        client = yield self.open()
        yield self.wait(lambda: client.text.startswith(": tm20"), "the stream opened")
        yield self.running.service.stopService()
        yield client.collector.done


class SSEPostgresTests(SSETests):
    """The same, on PostgreSQL."""

    def makeStore(self) -> IStore:
        url = pgharness.createSchema("tm20_events_sse")
        self.addCleanup(pgharness.dropSchema, url)
        return PostgresStore(url, reactor=reactor)
