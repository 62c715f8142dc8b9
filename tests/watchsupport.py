"""
Helpers of the watch tests (no tests here): a real server on loopback whose wall time and timers
run on a L{Clock} (set to the real time at start, so terminals on the wall clock agree with it),
with the automatic fetch of missing logs on; simulated terminals over real WebSockets.

L{WatchTestCase.makeStore} is SQLite; the C{...Postgres} subclasses of the tests use
L{postgresStore}.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock

from tests.serverfixture import RunningServer
from tests.test_api_support import ADMIN, READER, WRITER, ApiTestCase
from tm20.api._auth import hashToken
from tm20.config import ServerConfig
from tm20.interfaces import IStore
from tm20.service import TM20Service, buildServer


def postgresStore(case: Any, name: str, clock: Any = None) -> IStore:
    """
    A PostgreSQL store on a throwaway database of the test cluster.

    @param clock: the store's wall clock (the reactor's when C{None}).
    """
    from tests import pgharness
    from tm20.store.postgres import PostgresStore

    url = pgharness.createDatabase(name)
    case.addCleanup(pgharness.dropDatabase, url)
    store: IStore = PostgresStore.fromURL(url, reactor, clock=clock)
    return store


class WatchTestCase(ApiTestCase):
    """An L{ApiTestCase} whose server's wall clock and timers are C{self.clock}."""

    clock: Clock

    @inlineCallbacks
    def start(self, **config: Any) -> Any:
        config.setdefault("apiTokens", (f"admin:{ADMIN}",))
        config.setdefault("fetchMissingLogs", True)
        sinks = config.pop("sinks", None)
        self.clock = Clock()
        self.clock.advance(time.time())
        settings = ServerConfig(ports=("tcp:0:interface=127.0.0.1",), **config)
        service = TM20Service(
            buildServer(settings, reactor, self.makeStore(), clock=self.clock, sinks=sinks)
        )
        service.startService()
        ports = yield service.ready
        self.addCleanup(service.stopService)
        self.running = RunningServer(service, ports[0].getHost().port)
        store = self.running.context.store
        yield store.addApiToken("reader", hashToken(READER), ("read",))
        yield store.addApiToken("writer", hashToken(WRITER), ("write",))
        return self.running

    @property
    def watch(self) -> Any:
        return self.running.context.watch

    @inlineCallbacks
    def eventTypes(self, sn: str, types: str) -> Any:
        """The types of C{sn}'s events of C{types} (comma-separated), through the API."""
        r = yield self.call("GET", f"/api/events/?type={types}&sn={sn}")
        assert r.status == 200, r.text
        return [e["type"] for e in r.json["items"]]

    @inlineCallbacks
    def terminalWatch(self, sn: str) -> Any:
        """The C{watch} object of C{GET /api/terminals/{sn}/}."""
        r = yield self.call("GET", f"/api/terminals/{sn}/")
        assert r.status == 200, r.text
        return r.json["watch"]


__all__ = ["WRITER", "WatchTestCase", "postgresStore"]
