"""
The PostgreSQL pool's transactions, on a real PostgreSQL: the C{BEGIN} travels with the first
statement (one round trip less) and still makes one transaction of the interaction, all or
nothing; one that runs no statement sends nothing; an interaction run with C{transaction=False}
has none.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import psycopg2.errors
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
        yield self.pool.runInteraction(self._create)

    @staticmethod
    async def _create(cur: Cursor) -> None:
        await cur.execute("CREATE TABLE t (x integer)")

    async def _count(self, cur: Cursor) -> int:
        await cur.execute("SELECT count(*) FROM t")
        row = cur.fetchone()
        assert row is not None
        return int(row[0])

    async def _xids(self, cur: Cursor) -> tuple[Any, Any]:
        await cur.execute("SELECT txid_current()")
        first = cur.fetchall()
        await cur.execute("SELECT txid_current()")
        second = cur.fetchall()
        return first[0][0], second[0][0]

    @inlineCallbacks
    def test_oneTransaction(self) -> Generator[Deferred[Any], Any, None]:
        """The statements of one interaction share one transaction; the first one's rows show."""
        first, second = yield self.pool.runInteraction(self._xids)
        self.assertEqual(first, second)

    @inlineCallbacks
    def test_noTransaction(self) -> Generator[Deferred[Any], Any, None]:
        """C{transaction=False}: each statement commits alone."""
        first, second = yield self.pool.runInteraction(self._xids, transaction=False)
        self.assertNotEqual(first, second)

    @inlineCallbacks
    def test_firstStatementRolledBack(self) -> Generator[Deferred[Any], Any, None]:
        """What the first statement wrote is rolled back when the interaction fails."""

        async def insertThenFail(cur: Cursor) -> None:
            await cur.execute("INSERT INTO t (x) VALUES (1)")
            raise RuntimeError("the interaction fails")

        yield self.assertFailure(self.pool.runInteraction(insertThenFail), RuntimeError)
        self.assertEqual((yield self.pool.runInteraction(self._count)), 0)

    @inlineCallbacks
    def test_failingFirstStatement(self) -> Generator[Deferred[Any], Any, None]:
        """A first statement that fails (its BEGIN ran) leaves the connection usable."""

        async def fail(cur: Cursor) -> None:
            await cur.execute("SELECT * FROM no_such_table")

        yield self.assertFailure(self.pool.runInteraction(fail), psycopg2.errors.UndefinedTable)

        async def insert(cur: Cursor) -> None:
            await cur.execute("INSERT INTO t (x) VALUES (2)")

        yield self.pool.runInteraction(insert)
        self.assertEqual((yield self.pool.runInteraction(self._count)), 1)

    @inlineCallbacks
    def test_committed(self) -> Generator[Deferred[Any], Any, None]:
        """What an interaction wrote is committed (seen by a later one)."""

        async def insert(cur: Cursor) -> int:
            await cur.execute("INSERT INTO t (x) VALUES (1), (2) RETURNING x")
            return len(cur.fetchall())

        self.assertEqual((yield self.pool.runInteraction(insert)), 2)
        self.assertEqual((yield self.pool.runInteraction(self._count)), 2)

    @inlineCallbacks
    def test_laterStatementFailing(self) -> Generator[Deferred[Any], Any, None]:
        """The first statement is rolled back with the rest when a later one fails."""

        async def work(cur: Cursor) -> None:
            await cur.execute("INSERT INTO t (x) VALUES (1)")
            await cur.execute("SELECT * FROM no_such_table")

        yield self.assertFailure(self.pool.runInteraction(work), psycopg2.errors.UndefinedTable)
        self.assertEqual((yield self.pool.runInteraction(self._count)), 0)

    @inlineCallbacks
    def test_noStatementNothingSent(self) -> Generator[Deferred[Any], Any, None]:
        """
        An interaction that runs no statement succeeds, and leaves no transaction open on the
        connection (the next interaction's transaction is its own).
        """

        async def nothing(cur: Cursor) -> str:
            return "none"

        self.assertEqual((yield self.pool.runInteraction(nothing)), "none")

        async def state(cur: Cursor) -> Any:
            await cur.execute("SELECT now() = statement_timestamp()")
            return cur.fetchall()

        # a transaction begun earlier (by a stray BEGIN) would make now() older than this
        # statement's timestamp
        self.assertEqual((yield self.pool.runInteraction(state)), [(True,)])
