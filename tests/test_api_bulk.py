"""Pulls at scale: 1 000 users and 50 000 logs from a simulated terminal, over the API."""

from __future__ import annotations

import csv
import io
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.test_api_support import ApiTestCase, simulated
from tm20.interfaces import IStore


class BulkPullTests(ApiTestCase):
    timeout = 120

    @inlineCallbacks
    def test_pull1000UsersAnd50000Logs(self) -> Any:
        yield self.start()
        terminal = simulated("BIG1", users=1000, logs=50_000, pagingStyle="th900")
        yield self.connect(terminal)
        r = yield self.call("POST", "/api/terminals/BIG1/users/pull/")
        self.assertEqual(r.status, 200, r.text)
        credentials = sum(len(u.credentials) for u in terminal.users.values())
        self.assertEqual(
            r.json, {"listed": credentials, "stored": credentials, "missing": 0, "users": 1000}
        )
        r = yield self.call("GET", "/api/terminals/BIG1/users/1000/")
        self.assertEqual(
            {c["backupnum"]: c["record"] for c in r.json["credentials"]},
            dict(terminal.users[1000].credentials),
        )
        r = yield self.call("POST", "/api/terminals/BIG1/logs/pull/", {"source": "all"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(
            r.json, {"received": 50_000, "inserted": 50_000, "duplicates": 0, "invalid": 0}
        )
        count = yield self.running.context.store.countLogs("BIG1")
        self.assertEqual(count, 50_000)
        # the whole export as CSV, streamed
        r = yield self.call("GET", "/api/terminals/BIG1/logs/?format=csv")
        self.assertEqual(r.status, 200)
        rows = list(csv.DictReader(io.StringIO(r.text)))
        self.assertEqual(len(rows), 50_000)
        self.assertEqual(len({row["id"] for row in rows}), 50_000)
        newest = max(e.time for e in terminal.logs)
        self.assertEqual(rows[0]["time"], newest)


class BulkPullPostgresTests(BulkPullTests):
    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_api_bulk")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store
