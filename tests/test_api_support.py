"""
Helpers of the API tests (no tests here): a real server on loopback with the API, HTTP calls
with treq, and simulated terminals connected to it.

L{ApiTestCase.makeStore} is the one place a store is made, so a subclass runs the same tests on
PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.serverfixture import RunningServer, startServer
from tm20.api._app import ApiResource, TM20Api
from tm20.api._auth import hashToken
from tm20.interfaces import IStore
from tm20.services.ratelimit import FailureRateLimiter
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal
from tm20.store.sqlite import SQLiteStore

#: The static token of the tests (both scopes), as given to --api-token.
ADMIN = "admin-secret-0123456789"
#: A stored token with the read scope only.
READER = "reader-secret-0123456789"
#: A stored token with the write scope only.
WRITER = "writer-secret-0123456789"


@attrs.frozen
class Response:
    """An HTTP answer: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw.decode("utf-8"))

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8")


class ApiTestCase(TestCase):
    """A test case with a running server (C{self.running}) once L{start} has run."""

    timeout = 60
    running: RunningServer

    def makeStore(self) -> IStore:
        """The store of the server under test (SQLite here; PostgreSQL in a subclass)."""
        return SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor)

    @inlineCallbacks
    def start(self, **config: Any) -> Any:
        """Start the server with the static token L{ADMIN} and the stored L{READER}, L{WRITER}."""
        config.setdefault("apiTokens", (f"admin:{ADMIN}",))
        self.running = yield startServer(self, store=self.makeStore(), **config)
        store = self.running.context.store
        yield store.addApiToken("reader", hashToken(READER), ("read",))
        yield store.addApiToken("writer", hashToken(WRITER), ("write",))
        return self.running

    def url(self, path: str) -> str:
        return self.running.httpURL(path)

    @property
    def api(self) -> TM20Api:
        """The L{TM20Api} mounted at C{/api} of the running server."""
        resource = self.running.server.root.children[b"api"]
        assert isinstance(resource, ApiResource)
        return resource.api

    def limitFailures(self, limiter: FailureRateLimiter) -> FailureRateLimiter:
        """Count the API's failed authentications with C{limiter} (on a test clock, say)."""
        self.api.auth.limiter = limiter
        return limiter

    @inlineCallbacks
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = ADMIN,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Any:
        """One HTTP request to the server; @return: a L{Response}."""
        sent: dict[str, list[str]] = {}
        if token is not None:
            sent["Authorization"] = [f"Bearer {token}"]
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent["Content-Type"] = ["application/json"]
        for name, value in (headers or {}).items():
            sent[name] = [value]
        response = yield treq.request(
            method, self.url(path), headers=sent, data=data, persistent=False
        )
        content = yield treq.content(response)
        headers_ = {
            k.decode("latin-1").lower(): v[-1].decode("latin-1")
            for k, v in response.headers.getAllRawHeaders()
        }
        return Response(response.code, headers_, content)

    @inlineCallbacks
    def connect(self, terminal: SimulatedTerminal, **options: Any) -> Any:
        """Connect a simulated terminal and wait for its registration; disconnected at cleanup."""
        options.setdefault("retryPolicy", lambda attempt: 0.05)
        connection = TerminalConnection(terminal, self.running.wsURL(), reactor=reactor, **options)
        connection.start()
        self.addCleanup(connection.disconnect)
        yield connection.whenRegistered()
        return connection

    @inlineCallbacks
    def until(self, check: Any, what: str, attempts: int = 400) -> Any:
        """Poll C{check()} (may return a Deferred) every 10 ms until it is true."""
        for _ in range(attempts):
            value = yield check()
            if value:
                return value
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail(f"never happened: {what}")

    def commandStatus(self, commandId: int) -> Deferred[Any]:
        d: Deferred[Any] = self.running.context.store.getCommand(commandId)
        return d.addCallback(lambda c: c.status)


def simulated(sn: str = "SIM000001", **options: Any) -> SimulatedTerminal:
    """A simulated terminal on the wall clock, with its logs already uploaded."""
    terminal = SimulatedTerminal(sn, **options)
    if terminal.logs:
        batch = terminal.nextLogBatch(len(terminal.logs))
        assert batch is not None
        terminal.ackLogs({"ret": "sendlog", "result": True})
    return terminal
