"""
The PostgreSQL pool's transactions (L{tm20.store._pgpool.Pool.runInteraction}), on a real
PostgreSQL: C{BEGIN} travels with the first statement (one round trip less per transaction)
and a transaction is still all or nothing; one that runs no statement sends nothing.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import psycopg2
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import pgharness
from tm20.store._pgpool import Cursor, Pool


class PoolTransactionTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Generator[Deferred[Any], Any, None]:
        url = pgharness.createDatabase("tm20_pooltx")
        self.addCleanup(pgharness.dropDatabase, url)
        self.pool = Pool(url, reactor, size=1, name="pooltx")
        yield self.pool.start()
        self.addCleanup(self.pool.close)

        async def create(cur: Cursor) -> None:
            await cur.execute("CREATE TABLE t (n integer PRIMARY KEY)")

        yield self.pool.runInteraction(create)

    def count(self) -> Deferred[Any]:
        return self.pool.runQuery("SELECT count(*) FROM t")

    @inlineCallbacks
    def test_firstStatementIsInTheTransaction(self) -> Generator[Deferred[Any], Any, None]:
        """The first statement is rolled back with the rest when a later one fails."""

        async def work(cur: Cursor) -> None:
            await cur.execute("INSERT INTO t VALUES (%s)", (1,))
            await cur.execute("INSERT INTO t VALUES (%s)", (1,))  # duplicate key

        yield self.assertFailure(self.pool.runInteraction(work), psycopg2.IntegrityError)
        self.assertEqual((yield self.count()), [(0,)])

    @inlineCallbacks
    def test_firstStatementFailing(self) -> Generator[Deferred[Any], Any, None]:
        """A failing first statement leaves the connection usable (rolled back)."""

        async def bad(cur: Cursor) -> None:
            await cur.execute("INSERT INTO nowhere VALUES (1)")

        yield self.assertFailure(self.pool.runInteraction(bad), psycopg2.ProgrammingError)

        async def good(cur: Cursor) -> Any:
            await cur.execute("INSERT INTO t VALUES (%s)", (2,))
            await cur.execute("SELECT n FROM t")
            return cur.fetchall()

        self.assertEqual((yield self.pool.runInteraction(good)), [(2,)])

    @inlineCallbacks
    def test_readsInsideOneTransaction(self) -> Generator[Deferred[Any], Any, None]:
        """Every statement of an interaction runs in one transaction (the same xid)."""

        async def xids(cur: Cursor) -> Any:
            await cur.execute("SELECT txid_current()")
            first = cur.fetchall()
            await cur.execute("SELECT txid_current()")
            return first, cur.fetchall()

        first, second = yield self.pool.runInteraction(xids)
        self.assertEqual(first, second)

    @inlineCallbacks
    def test_noStatementNothingSent(self) -> Generator[Deferred[Any], Any, None]:
        """An interaction that runs no statement succeeds; the connection is not left open in a
        transaction (the next one sees its own transaction)."""

        async def nothing(cur: Cursor) -> str:
            return "none"

        self.assertEqual((yield self.pool.runInteraction(nothing)), "none")

        async def state(cur: Cursor) -> Any:
            await cur.execute("SELECT now() = statement_timestamp()")
            return cur.fetchall()

        # a transaction begun earlier (by a stray BEGIN) would make now() older than this
        # statement's timestamp
        self.assertEqual((yield self.pool.runInteraction(state)), [(True,)])
