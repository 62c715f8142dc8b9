"""
A real tm20 server on loopback for tests, and a raw WebSocket client that sends and reads frames.

Tests listen on 127.0.0.1 port 0 with a real store (a SQLite file in the test's temp dir, unless
one is given) and tear everything down through L{TM20Service.stopService}.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import attrs
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests import pgharness
from tm20.config import ServerConfig
from tm20.service import TM20Service, buildServer
from tm20.store.sqlite import SQLiteStore


def sleep(seconds: float) -> Deferred[None]:
    """Wait on the real reactor (the step of a polling loop)."""
    return deferLater(reactor, seconds, lambda: None)


@inlineCallbacks
def privateDatabase(testCase: TestCase, prefix: str) -> Any:
    """
    Start a private PostgreSQL cluster for C{testCase} (destroyed at its cleanup) and create a
    database in it: fires with (the L{pgharness.Cluster}, the database's URL).  For tests that
    stop, kill or freeze the server, which must never be a shared one.
    """
    cluster = yield threads.deferToThread(pgharness.Cluster)
    testCase.addCleanup(cluster.destroy)
    yield threads.deferToThread(cluster.start)
    return cluster, pgharness.createDatabase(prefix, serverURL=cluster.url())


@attrs.define
class RunningServer:
    service: TM20Service
    port: int

    @property
    def server(self) -> Any:
        return self.service.server

    @property
    def context(self) -> Any:
        return self.service.server.context

    def wsURL(self, path: str = "/pub/chat") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def httpURL(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@inlineCallbacks
def startServer(testCase: TestCase, store: Any = None, **configChanges: Any) -> Any:
    """Start a server for C{testCase}; it is stopped by a cleanup.  @return: L{RunningServer}."""
    if store is None:
        store = SQLiteStore(testCase.mktemp() + ".sqlite3", reactor=reactor)
    # The automatic fetch of missing logs sends commands of its own to terminals whose counters
    # show logs the server lacks: off unless a test asks (tests/test_watch_*.py do).
    configChanges.setdefault("fetchMissingLogs", False)
    config = ServerConfig(ports=("tcp:0:interface=127.0.0.1",), **configChanges)
    service = TM20Service(buildServer(config, reactor, store))
    service.startService()
    ports = yield service.ready
    testCase.addCleanup(service.stopService)
    return RunningServer(service, ports[0].getHost().port)


class RawClient(WebSocketClientProtocol):  # type: ignore[misc]
    """A bare WebSocket client: send frames, read frames in order, see the close code."""

    def __init__(self) -> None:
        super().__init__()
        self.received: deque[Any] = deque()
        self.waiting: deque[Deferred[Any]] = deque()
        self.opened: Deferred[RawClient] = Deferred()
        self.closed: Deferred[tuple[bool, int | None, str | None]] = Deferred()
        self.pings = 0

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        frame = json.loads(payload.decode("utf-8"))
        if self.waiting:
            self.waiting.popleft().callback(frame)
        else:
            self.received.append(frame)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"closed before open: {code} {reason}"))
        self.closed.callback((wasClean, code, reason))
        while self.waiting:
            self.waiting.popleft().errback(ConnectionError(f"closed: {code} {reason}"))

    def send(self, frame: Any) -> None:
        data = frame if isinstance(frame, bytes) else json.dumps(frame).encode("utf-8")
        self.sendMessage(data, isBinary=False)

    def next(self, timeout: float = 5.0) -> Deferred[Any]:
        """The next frame from the server."""
        if self.received:
            d: Deferred[Any] = Deferred()
            d.callback(self.received.popleft())
            return d
        d = Deferred()
        self.waiting.append(d)
        d.addTimeout(timeout, reactor)
        return d

    @inlineCallbacks
    def request(self, frame: Any, timeout: float = 5.0) -> Any:
        """Send C{frame}, return the next frame (its reply)."""
        self.send(frame)
        reply = yield self.next(timeout)
        return reply


@inlineCallbacks
def connectRaw(testCase: TestCase, running: RunningServer, path: str = "/pub/chat") -> Any:
    """Open a raw WebSocket to the server; closed by a cleanup."""
    factory = WebSocketClientFactory(running.wsURL(path))
    factory.protocol = RawClient
    factory.setProtocolOptions(maxMessagePayloadSize=0, autoPingInterval=0)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", running.port)
    proto = yield endpoint.connect(factory)
    client = yield proto.opened

    def close() -> Any:
        if client.state == client.STATE_OPEN:
            client.sendClose(1000)
        return client.closed

    testCase.addCleanup(close)
    return client


@inlineCallbacks
def registeredClient(
    testCase: TestCase, running: RunningServer, sn: str = "ZX0006827500", **devinfo: Any
) -> Any:
    """A raw client that has sent C{reg} and read its reply."""
    client = yield connectRaw(testCase, running)
    reply = yield client.request(
        {"cmd": "reg", "sn": sn, "cpusn": "123456789", "devinfo": {"modelname": "tfs30", **devinfo}}
    )
    testCase.assertEqual(reply["ret"], "reg")
    testCase.assertIs(reply["result"], True)
    return client
