"""
Tests for L{tm20.store.postgres.PostgresStore}: the L{StoreContractTests} (the same as SQLite's)
plus what only PostgreSQL has: concurrent migration, group commit, statement deadlines, recovery
after backends are killed, LISTEN/NOTIFY and the bounded log queue.

PostgreSQL comes from L{tests.pgharness}: C{TM20_TEST_DATABASE_URL}, or a private cluster.  Each
test gets a fresh empty database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

import psycopg2
from twisted.internet import defer, reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase
from txpostgres import txpostgres
from zope.interface import provider

from tests.serverfixture import sleep
from tm20.errors import StoreUnavailable
from tm20.events.model import EventQuery, NewEvent
from tm20.model import (
    COMMAND_FAILED,
    COMMAND_SENT,
    COMMAND_SUCCEEDED,
    LogInsertResult,
    LogQuery,
)
from tm20.protocol.messages import LogRecord
from tm20.services.groupcommit import LogQueueFull
from tm20.services.ingest import LogIngest
from tm20.store import storeFromURL
from tm20.store._migrations import loadMigrations
from tm20.store._postgres_events import appendEvents
from tm20.store.postgres import PostgresStore, StatementTimeout, migrate

from . import pgharness
from .accessstorecontract import AccessStoreContractTests
from .eventstorecontract import EventStoreContractTests
from .storecontract import SN, T0, StoreContractTests, at, punch

#: The versions of the shipped PostgreSQL migrations.
SHIPPED = [migration.version for migration in loadMigrations("postgres")]


@inlineCallbacks
def eventually(
    check: Callable[[], Deferred[Any]], timeout: float = 10.0
) -> Generator[Deferred[Any], Any, Any]:
    """Call C{check} until its Deferred succeeds (or C{timeout} passes: its last failure)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = yield check()
            return result
        except Exception:
            if time.monotonic() > deadline:
                raise
            yield sleep(0.05)


def adminQuery(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run C{sql} on its own blocking connection to C{url} and return its rows."""
    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


class _PostgresCase(TestCase):
    """Opens stores on fresh databases."""

    clock: Any = reactor

    def newDatabase(self) -> str:
        url = pgharness.createDatabase("tm20_test")
        self.addCleanup(pgharness.dropDatabase, url)
        return url

    def openStore(self, url: str, **kwargs: Any) -> Deferred[PostgresStore]:
        """A started store on C{url}, stopped at cleanup."""
        store = PostgresStore(url, reactor=reactor, clock=self.clock, **kwargs)
        self.addCleanup(store.stop)
        return store.start().addCallback(lambda _: store)

    def ingestInto(self, store: PostgresStore) -> LogIngest:
        """The ingest service's group commit over C{store} (the server's road), stopped first."""
        ingest = LogIngest(store, reactor=reactor)
        self.addCleanup(ingest.stop)
        return ingest


class PostgresStoreTests(
    StoreContractTests, AccessStoreContractTests, EventStoreContractTests, _PostgresCase
):
    """The store contract, on a real PostgreSQL database."""

    def refuseLogsOf(self, enrollid: int) -> Deferred[Any]:
        async def constrain(cur: Any) -> None:
            for table in ("attendance_logs", "door_events"):
                await cur.execute(
                    f"ALTER TABLE {table} ADD CONSTRAINT refuse_{table}"
                    f" CHECK (enrollid <> {int(enrollid)})"
                )

        d: Deferred[Any] = self.store.runInTransaction(constrain)
        return d

    url: str

    def createStore(self) -> Deferred[PostgresStore]:
        # an empty schema is an empty database to the store, and is made much faster
        self.url = pgharness.createSchema("tm20_contract")
        self.addCleanup(pgharness.dropSchema, self.url)
        return self.openStore(self.url)

    @inlineCallbacks
    def reopenStore(self) -> Generator[Deferred[Any], Any, PostgresStore]:
        yield self.store.stop()
        store: PostgresStore = yield self.openStore(self.url)
        return store

    # -- PostgreSQL specifics that fit the contract's setup -------------------------------------------

    @inlineCallbacks
    def test_schemaTypes(self) -> Generator[Deferred[Any], Any, None]:
        """Server timestamps are timestamptz, log times text compared bytewise ("C")."""
        rows = adminQuery(
            self.url,
            "SELECT column_name, data_type, collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'attendance_logs'"
            " AND column_name IN"
            " ('time', 'received_at', 'sn') ORDER BY column_name",
        )
        self.assertEqual(
            rows,
            [
                ("received_at", "timestamp with time zone", None),
                ("sn", "text", "C"),
                ("time", "text", "C"),
            ],
        )
        yield self.store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        stored = yield self.store.queryLogs(LogQuery(sn=SN))
        self.assertEqual(stored[0].time, "2026-04-30 08:00:00")

    @inlineCallbacks
    def test_migrationsRecorded(self) -> Generator[Deferred[Any], Any, None]:
        """C{schema_migrations} lists each shipped migration once; C{migrate} finds none pending."""
        rows = adminQuery(self.url, "SELECT version, name FROM schema_migrations ORDER BY 1")
        self.assertEqual(rows, [(m.version, m.name) for m in loadMigrations("postgres")])
        self.assertEqual(rows[0], (1, "initial"))
        self.assertEqual((yield migrate(self.url, reactor)), [])

    @inlineCallbacks
    def test_newerSchemaRefused(self) -> Generator[Deferred[Any], Any, None]:
        """A database migrated by a newer release is refused at start, with C{ValueError}."""
        adminQuery(
            self.url,
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'x', now())",
        )
        store = PostgresStore(self.url, reactor=reactor)
        self.addCleanup(store.stop)
        yield self.assertFailure(store.start(), ValueError)
        yield self.assertFailure(store.ping(), StoreUnavailable)

    @inlineCallbacks
    def test_failedCallWritesNothing(self) -> Generator[Deferred[Any], Any, None]:
        """A statement failing mid-transaction rolls back what the call wrote before."""

        async def halfDone(cur: Any) -> None:
            await cur.execute("INSERT INTO terminals (sn, devinfo) VALUES ('HALF', '{}')")
            await cur.execute("SELECT * FROM no_such_table")

        yield self.assertFailure(
            self.store.runInTransaction(halfDone), psycopg2.errors.UndefinedTable
        )
        self.assertIsNone((yield self.store.getTerminal("HALF")))
        self.assertIs((yield self.store.ping()), True)

    @inlineCallbacks
    def test_unknownTerminalForUser(self) -> Generator[Deferred[Any], Any, None]:
        """Users of an unknown terminal are refused with C{ValueError}, as in SQLite."""
        yield self.assertFailure(self.store.saveUser("NOPE", 1, "x", 0, True), ValueError)
        yield self.assertFailure(
            self.store.saveCredential("NOPE", 1, 0, "abc", None, None), ValueError
        )

    @inlineCallbacks
    def test_badLogValueFailsOnlyItsCaller(self) -> Generator[Deferred[Any], Any, None]:
        """
        A batch the database refuses (a NUL in its text) fails alone: the other batches merged
        into the same flush are stored.
        """
        ingest = self.ingestInto(self.store)
        good = ingest.ingest(SN, [punch(1, "2026-04-30 08:00:00")])
        bad = ingest.ingest("OTHER", [punch(1, "2026-04-30 08:00:00", image="a\x00b")])
        alsoGood = ingest.ingest(SN, [punch(2, "2026-04-30 08:00:00")])
        self.assertEqual((yield good), LogInsertResult(1, 0))
        self.assertEqual((yield alsoGood), LogInsertResult(1, 0))
        yield self.assertFailure(bad, ValueError)
        self.assertEqual((yield self.store.countLogs(None)), 2)

    @inlineCallbacks
    def test_wrongTypeRefusedAtOnce(self) -> Generator[Deferred[Any], Any, None]:
        """A record whose numbers are not numbers fails with C{TypeError}, and leaves the queue."""
        bad = LogRecord(enrollid="1", time="2026-04-30 08:00:00")  # type: ignore[arg-type]
        yield self.assertFailure(self.store.addLogs(SN, [bad]), TypeError)
        ingest = self.ingestInto(self.store)
        yield self.assertFailure(ingest.ingest(SN, [bad]), TypeError)
        self.assertEqual(ingest.pendingRows, 0)

    @inlineCallbacks
    def test_terminalIdentity(self) -> Generator[Deferred[Any], Any, None]:
        """
        The first binding wins; a flag is kept as JSON until reset; reset clears the binding
        and the flag but keeps the secret; unknown terminals give C{None}.
        """
        yield self._terminal()
        bound = yield self.store.bindTerminalIdentity(SN, "CPU1", "")
        self.assertEqual((bound.boundCpusn, bound.boundMac, bound.boundAt), ("CPU1", None, at(T0)))
        self.clock.advance(5)
        again = yield self.store.bindTerminalIdentity(SN, "CPU2", "MAC2")
        self.assertEqual(again, bound)
        mismatch = {"claimed": {"cpusn": "CPU2"}, "peer": "10.0.0.9", "at": "x"}
        flagged = yield self.store.flagTerminal(SN, mismatch)
        self.assertEqual(dict(flagged.identityMismatch), mismatch)
        self.assertTrue(flagged.flagged)
        secret = yield self.store.setTerminalSecret(SN, "e" * 64)
        self.assertEqual(secret.secretHash, "e" * 64)
        reset = yield self.store.resetTerminalIdentity(SN)
        self.assertEqual(
            (reset.boundCpusn, reset.boundMac, reset.boundAt, reset.identityMismatch),
            (None, None, None, None),
        )
        self.assertEqual(reset.secretHash, "e" * 64)
        rebound = yield self.store.bindTerminalIdentity(SN, "CPU2", "MAC2")
        self.assertEqual((rebound.boundCpusn, rebound.boundMac), ("CPU2", "MAC2"))
        self.assertEqual(rebound.boundAt, at(T0 + 5))
        self.assertEqual((yield self.store.getTerminal(SN)), rebound)
        cleared = yield self.store.setTerminalSecret(SN, None)
        self.assertIsNone(cleared.secretHash)
        for call in (
            self.store.bindTerminalIdentity("NOPE", "C", "M"),
            self.store.flagTerminal("NOPE", {}),
            self.store.resetTerminalIdentity("NOPE"),
            self.store.setTerminalSecret("NOPE", None),
        ):
            self.assertIsNone((yield call))

    def test_fromURL(self) -> None:
        """C{storeFromURL} gives a (not started) L{PostgresStore} for postgresql:// URLs."""
        for url in ("postgresql://u@h/db", "postgres://u@h/db"):
            store = storeFromURL(url, reactor)
            assert isinstance(store, PostgresStore)
            self.assertEqual(store.dsn, url)


class CommandRoundTripTests(_PostgresCase):
    """
    A REST command's writes in as few round trips as keep them atomic: the command and its
    audit entry as one statement (no transaction around it); its final outcome and the look for
    the next command as one, then the outcome's event carrying the transaction's C{COMMIT}.
    """

    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Generator[Deferred[Any], Any, None]:
        self.store = yield self.openStore(self.newDatabase())
        #: each query string sent (as sent), with the interaction's cursor
        self.queries: list[tuple[Any, str]] = []
        execute = txpostgres.Cursor.execute

        def recording(cur: Any, sql: str, params: Any = None) -> Any:
            self.queries.append((cur, sql))
            return execute(cur, sql, params)

        self.patch(txpostgres.Cursor, "execute", recording)

    def sentWith(self, first: str) -> list[str]:
        """The query strings of the one interaction whose first one holds C{first}."""
        [cursor] = [cur for cur, sql in self.queries if first in sql]
        return [sql for cur, sql in self.queries if cur is cursor]

    def refuse(self, table: str, check: str) -> Deferred[Any]:
        async def constrain(cur: Any) -> None:
            await cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT refuse CHECK ({check})")

        d: Deferred[Any] = self.store.runInTransaction(constrain)
        return d

    @inlineCallbacks
    def test_submitIsOneStatement(self) -> Generator[Deferred[Any], Any, None]:
        """
        The command and its audit entry: one statement, no C{BEGIN} nor C{COMMIT}; one the
        database refuses leaves no audit entry behind either.
        """
        command = yield self.store.submitCommand(
            SN,
            "opendoor",
            {"cmd": "opendoor"},
            "ops",
            3,
            audit=("ops", "command.submit", SN, {"command": "opendoor"}),
            claim=True,
        )
        sent = self.sentWith("INSERT INTO commands")
        self.assertEqual(len(sent), 1, sent)
        self.assertNotIn("BEGIN", sent[0])
        self.assertNotIn("COMMIT", sent[0])
        self.assertEqual((command.status, command.attempts), (COMMAND_SENT, 1))
        (entry,) = yield self.store.listAuditEntries(10, None)
        self.assertEqual((entry.action, entry.detail), ("command.submit", {"command": "opendoor"}))
        yield self.refuse("commands", "name <> 'gettime'")
        yield self.assertFailure(
            self.store.submitCommand(
                SN, "gettime", {}, "ops", 3, audit=("ops", "command.submit", SN, {})
            ),
            psycopg2.IntegrityError,
        )
        self.assertEqual(len((yield self.store.listAuditEntries(10, None))), 1)
        self.assertEqual([c.id for c in (yield self.store.pendingCommands(SN))], [command.id])

    @inlineCallbacks
    def test_outcomeCommitsWithItsEvent(self) -> Generator[Deferred[Any], Any, None]:
        """
        A final outcome with nothing left to claim: the update with the claim's look (one
        statement), then the event with the C{COMMIT} in the same query string; committed, the
        event readable.  When that statement fails, the update is rolled back and the
        connection stays usable.
        """
        command = yield self.store.submitCommand(SN, "opendoor", {}, "ops", 3, claim=True)
        done, claimed = yield self.store.finishAndClaimCommand(
            command.id, COMMAND_SUCCEEDED, {"result": True}, False, SN, lambda c: False
        )
        self.assertEqual((done.status, claimed), (COMMAND_SUCCEEDED, None))
        sent = self.sentWith("UPDATE commands")
        self.assertEqual(len(sent), 2, sent)
        self.assertTrue(sent[0].startswith("BEGIN; WITH done AS (UPDATE commands"), sent[0])
        self.assertIn("SELECT false, * FROM commands", sent[0])
        self.assertIn("INSERT INTO events", sent[1])
        self.assertTrue(sent[1].endswith("; COMMIT"), sent[1])
        [event] = yield self.store.listEvents(EventQuery(after=0))
        self.assertEqual((event.type, event.payload["status"]), ("command.finished", "succeeded"))
        self.assertEqual((yield self.store.getCommand(command.id)), done)

        second = yield self.store.submitCommand(SN, "gettime", {}, "ops", 3, claim=True)
        yield self.refuse("events", "payload->>'status' <> 'failed'")
        yield self.assertFailure(
            self.store.finishAndClaimCommand(
                second.id, COMMAND_FAILED, None, False, SN, lambda c: False
            ),
            psycopg2.IntegrityError,
        )
        self.assertEqual((yield self.store.getCommand(second.id)), second)
        done, _ = yield self.store.finishAndClaimCommand(
            second.id, COMMAND_SUCCEEDED, None, False, SN, lambda c: False
        )
        self.assertEqual(done.status, COMMAND_SUCCEEDED)

    @inlineCallbacks
    def test_claimNeedsNoTransaction(self) -> Generator[Deferred[Any], Any, None]:
        """
        The claim of a queued command (the look, then its one conditional update): two
        statements, no C{BEGIN} nor C{COMMIT}; committed when it answers.
        """
        queued = yield self.store.enqueueCommand(SN, "opendoor", {}, "ops", 3)
        claimed, sent = yield self.store.claimCommand(SN, lambda c: False)
        self.assertEqual(
            (claimed.id, claimed.status, claimed.attempts, sent), (queued.id, COMMAND_SENT, 1, True)
        )
        queries = self.sentWith("SELECT * FROM commands WHERE sn")
        self.assertEqual(len(queries), 2, queries)
        self.assertFalse([q for q in queries if "BEGIN" in q or "COMMIT" in q], queries)
        self.assertEqual((yield self.store.getCommand(queued.id)), claimed)


class EventOrderTests(_PostgresCase):
    """
    Event ids become visible in order although writers no longer wait for each other: a reader
    never sees an id while a smaller one is still to be committed.
    """

    @inlineCallbacks
    def test_readerWaitsForWritersHoldingSmallerIds(self) -> Generator[Deferred[Any], Any, None]:
        store = yield self.openStore(self.newDatabase(), poolSize=4)
        release: Deferred[None] = Deferred()

        async def slowWriter(cur: Any) -> None:
            await appendEvents(cur, [NewEvent("test.first", None, {"n": 1})], store._now())
            await release  # holds id 1, not committed

        first = store.runInTransaction(slowWriter)
        yield sleep(0.2)  # the slow writer has its id
        second = store.appendEvents([NewEvent("test.second", None, {"n": 2})])
        # writers run side by side: the second commits while the first is still open
        for _ in range(100):
            if second.called:
                break
            yield sleep(0.05)
        self.assertTrue(second.called, "a writer waited for another one")
        self.assertEqual(self.successResultOf(second), 1)
        read = store.listEvents(EventQuery(after=0))
        head = store.lastEventId()
        yield sleep(0.3)
        # the readers wait: id 2 is committed, id 1 is not yet
        self.assertFalse(read.called)
        self.assertFalse(head.called)
        release.callback(None)
        yield first
        events = yield read
        self.assertEqual([(e.id, e.type) for e in events], [(1, "test.first"), (2, "test.second")])
        self.assertEqual((yield head), 2)

    @inlineCallbacks
    def test_readerTakesTheRunBeforeAWriterWithoutWaiting(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        Ids 1 and 2 committed, 3 held by a writer in flight, 4 committed: a read after 0 answers
        1 and 2 at once (every id up to 2 is committed: nothing can appear among them), without
        waiting for the writer, and never 4; a read after 2 waits for it, then answers 3 and 4.
        """
        store = yield self.openStore(self.newDatabase(), poolSize=4)
        yield store.appendEvents([NewEvent("test.a", None, {"n": 1}), NewEvent("test.b", None, {})])
        release: Deferred[None] = Deferred()

        async def slowWriter(cur: Any) -> None:
            await appendEvents(cur, [NewEvent("test.held", None, {"n": 3})], store._now())
            await release  # holds id 3, not committed

        held = store.runInTransaction(slowWriter)
        yield sleep(0.2)
        yield store.appendEvents([NewEvent("test.d", None, {"n": 4})])
        read = store.listEvents(EventQuery(after=0))
        for _ in range(100):
            if read.called:
                break
            yield sleep(0.05)
        self.assertTrue(read.called, "the read waited for the writer in flight")
        self.assertEqual(
            [(e.id, e.type) for e in self.successResultOf(read)], [(1, "test.a"), (2, "test.b")]
        )
        # a type filter: the run holds no event of it, so the read waits, as before
        filtered = store.listEvents(EventQuery(after=0, types=("test.d",)))
        beyond = store.listEvents(EventQuery(after=2))
        yield sleep(0.3)
        self.assertFalse(filtered.called)
        self.assertFalse(beyond.called)
        release.callback(None)
        yield held
        self.assertEqual([e.id for e in (yield filtered)], [4])
        self.assertEqual(
            [(e.id, e.type) for e in (yield beyond)], [(3, "test.held"), (4, "test.d")]
        )

    @inlineCallbacks
    def test_readerAtTheHeadDoesNotWait(self) -> Generator[Deferred[Any], Any, None]:
        """
        Every visible id after the cursor is in its run (none missing) while a writer holds a
        larger one: the read answers at once (its events, or none at the head), without the
        writers' lock; a page of the query is taken from the run only.
        """
        store = yield self.openStore(self.newDatabase(), poolSize=4)
        yield store.appendEvents([NewEvent("test.n", None, {"i": i}) for i in range(5)])
        release: Deferred[None] = Deferred()

        async def slowWriter(cur: Any) -> None:
            await appendEvents(cur, [NewEvent("test.held", None, {})], store._now())
            await release

        held = store.runInTransaction(slowWriter)
        yield sleep(0.2)
        page = yield store.listEvents(EventQuery(after=1, limit=2))
        self.assertEqual([e.id for e in page], [2, 3])
        rest = yield store.listEvents(EventQuery(after=3))
        self.assertEqual([e.id for e in rest], [4, 5])
        self.assertEqual((yield store.listEvents(EventQuery(after=5))), [])
        release.callback(None)
        yield held
        self.assertEqual([e.id for e in (yield store.listEvents(EventQuery(after=5)))], [6])

    @inlineCallbacks
    def test_runLongerThanTheWindowWithoutAMatchReadsOn(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        A filtered read whose window of ids holds no event of its type (the run fills the
        window): it does not answer "nothing" but reads on past the window, as before.
        """
        from tm20.store import _eventsql

        self.patch(_eventsql, "CONTIGUOUS_WINDOW", (1, 2, 2))
        store = yield self.openStore(self.newDatabase(), poolSize=4)
        yield store.appendEvents([NewEvent("test.a", None, {}) for _ in range(5)])
        yield store.appendEvents([NewEvent("test.b", None, {})])
        found = yield store.listEvents(EventQuery(after=0, types=("test.b",)))
        self.assertEqual([(e.id, e.type) for e in found], [(6, "test.b")])
        # unfiltered, the run's first two are a complete answer up to id 2
        self.assertEqual([e.id for e in (yield store.listEvents(EventQuery(after=0)))], [1, 2])

    @inlineCallbacks
    def test_gapLeftByARollbackIsReadPast(self) -> Generator[Deferred[Any], Any, None]:
        """
        A writer that rolled back leaves its id unused for ever: the read stops short of that
        gap, then, at it, waits for the writers (none) and reads past it.
        """
        store = yield self.openStore(self.newDatabase(), poolSize=4)
        yield store.appendEvents([NewEvent("test.a", None, {})])

        async def rolledBack(cur: Any) -> None:
            await appendEvents(cur, [NewEvent("test.gone", None, {})], store._now())
            raise ValueError("rolled back")

        yield self.assertFailure(store.runInTransaction(rolledBack), ValueError)
        yield store.appendEvents([NewEvent("test.c", None, {})])
        self.assertEqual([e.id for e in (yield store.listEvents(EventQuery(after=0)))], [1])
        self.assertEqual([e.id for e in (yield store.listEvents(EventQuery(after=1)))], [3])

    @inlineCallbacks
    def test_concurrentWritersNeverShowAGap(self) -> Generator[Deferred[Any], Any, None]:
        """
        Many writers (log group commits and single events) and a reader polling all along: every
        page the reader gets continues its cursor without a gap of ids that appear later.
        """
        store = yield self.openStore(self.newDatabase(), poolSize=4, maxConcurrentFlushes=3)
        yield store.createTerminal(SN, None, True, None)
        seen: list[int] = []
        done = False

        @inlineCallbacks
        def reader() -> Generator[Deferred[Any], Any, None]:
            after = 0
            while True:
                finished = done
                page = yield store.listEvents(EventQuery(after=after, limit=1000))
                seen.extend(e.id for e in page)
                if page:
                    after = page[-1].id
                elif finished:
                    return
                yield sleep(0)

        reading = reader()
        writes = []
        for i in range(60):
            if i % 3 == 0:
                writes.append(store.appendEvents([NewEvent("test.n", None, {"i": i})]))
            else:
                writes.append(store.addLogs(SN, [punch(i % 7 + 1, f"2026-05-01 10:{i:02d}:00")]))
        yield defer.gatherResults(writes)
        done = True
        yield reading
        every = yield store.listEvents(EventQuery(after=0, limit=1000))
        ids = [e.id for e in every]
        self.assertEqual(seen, ids)  # in order, none skipped, none twice
        self.assertEqual(len(ids), 60)


class MigrationTests(_PostgresCase):
    """Migrations: recorded, and safe when several processes start at once."""

    @inlineCallbacks
    def test_concurrentStart(self) -> Generator[Deferred[Any], Any, None]:
        """
        Four stores starting at the same time on one empty database (as four processes would)
        all start; each migration is applied and recorded exactly once.
        """
        url = self.newDatabase()
        stores = [PostgresStore(url, reactor=reactor, poolSize=1) for _ in range(4)]
        for store in stores:
            self.addCleanup(store.stop)
        yield defer.gatherResults([store.start() for store in stores], consumeErrors=True)
        rows = adminQuery(
            url, "SELECT version, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1"
        )
        self.assertEqual(rows, [(version, 1) for version in SHIPPED])
        for store in stores:
            self.assertIs((yield store.ping()), True)

    @inlineCallbacks
    def test_migrateOnly(self) -> Generator[Deferred[Any], Any, None]:
        """C{migrate(url)} applies the pending migrations and disconnects; then there are none."""
        url = self.newDatabase()
        results = yield defer.gatherResults([migrate(url, reactor), migrate(url, reactor)])
        self.assertEqual(sorted(results), [[], SHIPPED])
        self.assertEqual((yield migrate(url, reactor)), [])
        # nothing left connected
        rows = adminQuery(
            url,
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        self.assertEqual(rows, [(0,)])

    @inlineCallbacks
    def test_unreachable(self) -> Generator[Deferred[Any], Any, None]:
        """A database that cannot be reached fails C{start} with L{StoreUnavailable}."""
        url = f"postgresql://postgres@127.0.0.1:{pgharness._freePort()}/nothing"
        store = PostgresStore(url, reactor=reactor)
        yield self.assertFailure(store.start(), StoreUnavailable)
        yield self.assertFailure(migrate(url, reactor), StoreUnavailable)
        yield self.assertFailure(store.ping(), StoreUnavailable)


class CopyIngestTests(_PostgresCase):
    """What only the COPY road could get wrong: its text format, its deadline, its threads."""

    @inlineCallbacks
    def test_awkwardTextSurvivesCopy(self) -> Generator[Deferred[Any], Any, None]:
        """Tabs, newlines, backslashes, quotes and non-ASCII text are stored as sent."""
        store = yield self.openStore(self.newDatabase())
        yield store.createTerminal("T\\AB\tC", None, True, None)
        extra = {"note": 'tab\there\nnew "line" \\N back\\slash', "name": "Zoë 李", "n": 1.5}
        record = LogRecord(
            enrollid=7,
            time="2026-04-30 08:00:00",
            verifymode=1,
            temp=36.6,
            image="a\\b\tc",
            extra=extra,
        )
        result = yield store.addLogs("T\\AB\tC", [record])
        self.assertEqual(result, LogInsertResult(1, 0))
        [stored] = yield store.queryLogs(LogQuery(sn="T\\AB\tC"))
        self.assertEqual(
            (stored.sn, stored.enrollid, stored.temp, stored.image, dict(stored.extra)),
            ("T\\AB\tC", 7, 36.6, "a\\b\tc", extra),
        )
        [event] = yield store.listEvents(EventQuery(after=0))
        self.assertEqual((event.type, event.sn), ("log.created", "T\\AB\tC"))
        self.assertEqual(event.payload["extra"], extra)
        self.assertEqual(event.payload["logId"], stored.id)
        again = yield store.addLogs("T\\AB\tC", [record])
        self.assertEqual(again, LogInsertResult(0, 1))

    @inlineCallbacks
    def test_copyAndInsertRoadsWriteTheSame(self) -> Generator[Deferred[Any], Any, None]:
        """The COPY road and the multi-row INSERT road store the same rows and events."""
        outcomes = []
        for copy in (True, False):
            store = yield self.openStore(self.newDatabase(), copyIngest=copy)
            yield store.createTerminal(SN, None, True, "Europe/Paris")
            batch = [punch(i % 4, f"2026-04-30 08:00:{i:02d}", extra={"i": i}) for i in range(30)]
            ingest = self.ingestInto(store)  # the two batches merged into one group commit
            counts = yield defer.gatherResults(
                [ingest.ingest(SN, batch[:20]), ingest.ingest(SN, batch[10:])]
            )
            logs = yield store.queryLogs(LogQuery(sn=SN, limit=100))
            events = yield store.listEvents(EventQuery(after=0, limit=100))
            outcomes.append(
                (
                    sorted((c.inserted, c.duplicates) for c in counts),
                    sorted((log.enrollid, log.time, dict(log.extra)) for log in logs),
                    [
                        (e.type, {k: v for k, v in e.payload.items() if k != "receivedAt"})
                        for e in events
                    ],
                )
            )
        self.assertEqual(outcomes[0], outcomes[1])
        self.assertEqual(outcomes[0][0], [(10, 10), (20, 0)])

    @inlineCallbacks
    def test_stagingTableOutlivesARollback(self) -> Generator[Deferred[Any], Any, None]:
        """
        The staging table is made once per connection (committed with it): a transaction
        rolled back on the connection leaves it in place for the next flush, and a flush
        holding punches and door events fills both tables through it.
        """
        store = yield self.openStore(self.newDatabase(), maxConcurrentFlushes=1)
        yield store.createTerminal(SN, None, True, None)

        def refused(conn: Any) -> None:
            conn.cursor().execute("SELECT 1/0")

        yield self.assertFailure(store._copy.run(refused), psycopg2.errors.DivisionByZero)
        door = LogRecord(enrollid=0, time="2026-04-30 08:00:05", event=3)
        mixed = yield store.addLogs(SN, [punch(1, "2026-04-30 08:00:00"), door])
        self.assertEqual(mixed, LogInsertResult(2, 0))
        again = yield store.addLogs(SN, [door, punch(2, "2026-04-30 08:00:00")])
        self.assertEqual(again, LogInsertResult(1, 1))
        self.assertEqual(store._copy.connectionsMade, 1)
        self.assertEqual((yield store.countLogs(None)), 2)
        rows = adminQuery(store.dsn, "SELECT count(*) FROM door_events")
        self.assertEqual(rows, [(1,)])
        events = yield store.listEvents(EventQuery(after=0))
        self.assertEqual(len(events), 3)

    @inlineCallbacks
    def test_flushStatementPreparedOncePerConnection(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        """
        The statement moving the staged rows is prepared once per COPY connection, and every
        flush on it executes the prepared statement (no parse and plan per flush), a rolled
        back transaction between them included.
        """
        store = yield self.openStore(self.newDatabase(), maxConcurrentFlushes=1)
        yield store.createTerminal(SN, None, True, "Europe/Paris")

        def refused(conn: Any) -> None:
            conn.cursor().execute("BEGIN; SELECT 1/0")

        def executions(conn: Any) -> list[tuple[Any, ...]]:
            cur = conn.cursor()
            cur.execute(
                "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements"
                " ORDER BY name"
            )
            return [tuple(row) for row in cur.fetchall()]

        results = []
        for n in range(3):
            results.append((yield store.addLogs(SN, [punch(n, "2026-04-30 08:00:00")])))
            yield self.assertFailure(store._copy.run(refused), psycopg2.errors.DivisionByZero)
        self.assertEqual(results, [LogInsertResult(1, 0)] * 3)
        self.assertEqual((yield store._copy.run(executions)), [("tm20_insert_staged", 3)])
        self.assertEqual(store._copy.connectionsMade, 1)
        events = yield store.listEvents(EventQuery(after=0))
        self.assertEqual([e.payload["enrollid"] for e in events], [0, 1, 2])
        self.assertEqual(events[0].payload["timeUTC"], "2026-04-30T06:00:00+00:00")

    @inlineCallbacks
    def test_aJobIsOneTransaction(self) -> Generator[Deferred[Any], Any, None]:
        """
        A job opens its transaction with its first statement (the connection is in autocommit
        mode, saving psycopg2's own C{BEGIN} round trip): what it wrote is committed together
        when it returns, and rolled back together when it raises, on the same connection.
        """
        store = yield self.openStore(self.newDatabase(), maxConcurrentFlushes=1)
        adminQuery(store.dsn, "CREATE TABLE jobs (n integer)")

        def fails(conn: Any) -> None:
            cur = conn.cursor()
            cur.execute("BEGIN; INSERT INTO jobs VALUES (1)")
            cur.execute("INSERT INTO jobs VALUES (2)")
            raise ValueError("changed its mind")

        def writes(conn: Any) -> int:
            cur = conn.cursor()
            cur.execute("BEGIN; INSERT INTO jobs VALUES (3)")
            cur.execute("INSERT INTO jobs VALUES (4)")
            cur.execute("SELECT count(*) FROM jobs")
            return int(cur.fetchone()[0])

        yield self.assertFailure(store._copy.run(fails), ValueError)
        self.assertEqual(adminQuery(store.dsn, "SELECT n FROM jobs ORDER BY n"), [])
        seen = yield store._copy.run(writes)
        self.assertEqual(seen, 2)
        self.assertEqual(adminQuery(store.dsn, "SELECT n FROM jobs ORDER BY n"), [(3,), (4,)])
        self.assertEqual(store._copy.connectionsMade, 1)

    @inlineCallbacks
    def test_deadlineShutsTheSocket(self) -> Generator[Deferred[Any], Any, None]:
        """
        A flush blocked in its thread (here behind a row lock held by another session) fails
        at its deadline with L{StatementTimeout}; the next flush works on a new connection.
        """
        url = self.newDatabase()
        store = yield self.openStore(url, statementTimeout=0.5, connectTimeout=0.5)
        yield store.createTerminal(SN, None, True, None)
        yield store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        made = store._copy.connectionsMade
        blocker = psycopg2.connect(url)
        self.addCleanup(blocker.close)
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE attendance_logs IN EXCLUSIVE MODE")
        started = time.monotonic()
        yield self.assertFailure(
            store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")]), StatementTimeout
        )
        self.assertLess(time.monotonic() - started, 2.0)  # before the server's own timeout
        blocker.rollback()
        result = yield store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")])
        self.assertEqual(result, LogInsertResult(1, 0))
        self.assertGreater(store._copy.connectionsMade, made)


class GroupCommitTests(_PostgresCase):
    """Log batches from many callers are merged into few transactions."""

    @inlineCallbacks
    def test_mergesConcurrentCallers(self) -> Generator[Deferred[Any], Any, None]:
        """
        Forty callers' batches, sent together, are written in one or two flushes, and each
        caller gets its own counts, duplicates within and across batches included.
        """
        store = yield self.openStore(self.newDatabase(), flushInterval=0.05, flushRows=10_000)
        ingest = self.ingestInto(store)
        yield ingest.ingest("T0", [punch(1, "2026-04-30 07:00:00")])  # an old row
        before = ingest.queue.flushes
        calls = []
        for i in range(40):
            records = [punch(100 + i, f"2026-04-30 08:00:{s:02d}") for s in range(10)]
            if i % 4 == 0:
                records.append(records[0])  # a repeat within the batch
            calls.append(ingest.ingest(f"T{i}", records))
        # one batch repeats a record another caller sends in the same flush, one an old row
        calls.append(ingest.ingest("T1", [punch(101, "2026-04-30 08:00:00")]))
        calls.append(ingest.ingest("T0", [punch(1, "2026-04-30 07:00:00")]))
        results = yield defer.gatherResults(calls)
        self.assertLessEqual(ingest.queue.flushes - before, 2)
        for i in range(40):
            duplicates = 1 if i % 4 == 0 else 0
            self.assertEqual(results[i], LogInsertResult(10, duplicates), i)
        self.assertEqual(results[40], LogInsertResult(0, 1))
        self.assertEqual(results[41], LogInsertResult(0, 1))
        self.assertEqual((yield store.countLogs(None)), 401)

    @inlineCallbacks
    def test_flushesAtRowCount(self) -> Generator[Deferred[Any], Any, None]:
        """C{flushRows} rows are written at once, without waiting for the interval."""
        store = yield self.openStore(self.newDatabase(), flushInterval=30.0, flushRows=20)
        ingest = self.ingestInto(store)
        started = time.monotonic()
        results = yield defer.gatherResults(
            [
                ingest.ingest(f"T{i}", [punch(1, f"2026-04-30 08:00:{s:02d}") for s in range(5)])
                for i in range(4)
            ]
        )
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertEqual(results, [LogInsertResult(5, 0)] * 4)

    @inlineCallbacks
    def test_backfillWrittenAlone(self) -> Generator[Deferred[Any], Any, None]:
        """A batch of C{flushRows} or more is written alone, in chunks, in one transaction."""
        store = yield self.openStore(self.newDatabase(), flushRows=100)
        ingest = self.ingestInto(store)
        records = [
            punch(1 + i % 7, f"2026-04-{1 + i // 3600:02d} 00:{i // 60 % 60:02d}:{i % 60:02d}")
            for i in range(25_000)
        ]
        result = yield ingest.ingest(SN, records)
        self.assertEqual(result, LogInsertResult(25_000, 0))
        result = yield ingest.ingest(SN, records[:30_000] + records[:10])
        self.assertEqual(result, LogInsertResult(0, 25_010))
        self.assertEqual((yield store.countLogs(SN)), 25_000)

    @inlineCallbacks
    def test_stopFlushesQueue(self) -> Generator[Deferred[Any], Any, None]:
        """
        The ingest service's C{stop} writes what is queued (before the store closes); later
        batches are refused.
        """
        url = self.newDatabase()
        store = yield self.openStore(url, flushInterval=30.0)
        ingest = self.ingestInto(store)
        pending = ingest.ingest(SN, [punch(1, "2026-04-30 08:00:00")])
        yield ingest.stop()
        yield store.stop()
        self.assertEqual((yield pending), LogInsertResult(1, 0))
        yield self.assertFailure(
            ingest.ingest(SN, [punch(2, "2026-04-30 08:00:00")]), StoreUnavailable
        )
        self.assertEqual(adminQuery(url, "SELECT count(*) FROM attendance_logs"), [(1,)])

    @inlineCallbacks
    def test_backpressure(self) -> Generator[Deferred[Any], Any, None]:
        """
        The queue is bounded: observers hear C{True} when it fills and C{False} once drained;
        a batch without room fails at once with L{LogQueueFull}.
        """
        store = yield self.openStore(
            self.newDatabase(), flushInterval=0.3, flushRows=1000, maxQueuedRows=100
        )
        ingest = self.ingestInto(store)
        heard: list[bool] = []
        remove = ingest.addBackpressureObserver(heard.append)

        def batch(first: int, n: int) -> list[LogRecord]:
            return [punch(first + i, "2026-04-30 08:00:00") for i in range(n)]

        one = ingest.ingest(SN, batch(1, 60))
        self.assertEqual((heard, ingest.full), ([], False))
        two = ingest.ingest(SN, batch(100, 40))
        self.assertEqual((heard, ingest.full), ([True], True))
        late: list[bool] = []
        ingest.addBackpressureObserver(late.append)
        self.assertEqual(late, [True], "a new observer hears the current state")
        yield self.assertFailure(ingest.ingest(SN, batch(500, 10)), LogQueueFull)
        self.assertIsInstance(LogQueueFull("x"), StoreUnavailable)
        self.assertEqual((yield one), LogInsertResult(60, 0))
        self.assertEqual((yield two), LogInsertResult(40, 0))
        self.assertEqual((heard, ingest.full), ([True, False], False))
        remove()
        yield ingest.ingest(SN, batch(1000, 100))
        self.assertEqual(heard, [True, False], "removed observers hear nothing")
        self.assertEqual(late, [True, False, True, False])


class DeadlineTests(_PostgresCase):
    """
    A statement past its deadline fails and its connection is dropped and replaced, without
    waiting for the server (never a blocking libpq cancel).
    """

    @inlineCallbacks
    def test_statementTimeout(self) -> Generator[Deferred[Any], Any, None]:
        """
        A statement past the deadline fails with L{StatementTimeout} (a L{StoreUnavailable})
        well before it would end, nothing critical is logged, the connection is replaced and
        the pool goes on working; the server ends the abandoned statement by itself.
        """
        events: list[dict[str, Any]] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        url = self.newDatabase()
        store = yield self.openStore(url, poolSize=1, statementTimeout=0.3)

        async def slow(cur: Any) -> None:
            await cur.execute("SELECT pg_sleep(20)")

        started = time.monotonic()
        failure = yield self.assertFailure(store.runInTransaction(slow), StatementTimeout)
        self.assertIsInstance(failure, StoreUnavailable)
        self.assertLess(time.monotonic() - started, 5.0)
        # a new connection replaces the dropped one, by itself
        for _ in range(100):
            if store.pool.liveConnections == 1:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertIs((yield store.ping()), True)
        self.assertEqual(store.pool.connectionsMade, 2)
        self.assertEqual(
            [
                e
                for e in events
                if e.get("log_level") in (LogLevel.critical, LogLevel.error)
                or e.get("isError")
                or "log_failure" in e
            ],
            [],
        )

        def sleeping() -> int:
            with psycopg2.connect(url) as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(20)%'"
                )
                count: int = cur.fetchone()[0]
                return count

        # the server's statement_timeout (the deadline + 2 s) ends the abandoned statement
        for _ in range(100):
            if (yield defer.maybeDeferred(sleeping)) == 0:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(sleeping(), 0)

    @inlineCallbacks
    def test_noDeadlineForMigrations(self) -> Generator[Deferred[Any], Any, None]:
        """C{timeout=None} lets a statement run longer than the store's deadline."""
        store = yield self.openStore(self.newDatabase(), statementTimeout=0.1)

        async def slowButAllowed(cur: Any) -> bool:
            await cur.execute("SELECT pg_sleep(0.4)")
            return True

        self.assertIs((yield store.runInTransaction(slowButAllowed, timeout=None)), True)


class RecoveryTests(_PostgresCase):
    """Connections killed by the server are replaced without restarting the store."""

    @inlineCallbacks
    def test_terminatedBackends(self) -> Generator[Deferred[Any], Any, None]:
        """
        After C{pg_terminate_backend} of every backend of the pool, calls fail with
        L{StoreUnavailable} (never anything else) until the pool has reconnected, by itself.
        """
        url = self.newDatabase()
        store = yield self.openStore(url, poolSize=3, reconnectDelay=(0.05, 0.2))
        yield store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        made = store.pool.connectionsMade
        killed = adminQuery(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        # the pool's 3, and the COPY connection that wrote the first batch
        self.assertEqual(len(killed), 4)
        copyMade = store._copy.connectionsMade
        outcomes: list[str] = []

        @inlineCallbacks
        def attempt() -> Generator[Deferred[Any], Any, Any]:
            try:
                result = yield store.addLogs(SN, [punch(2, "2026-04-30 08:00:00")])
            except StoreUnavailable:
                outcomes.append("unavailable")
                raise
            except Exception as e:
                outcomes.append(f"unexpected {e!r}")
                raise
            outcomes.append("stored")
            return result

        result = yield eventually(attempt)
        self.assertEqual(result, LogInsertResult(1, 0))
        self.assertEqual(outcomes[-1], "stored")
        self.assertEqual(set(outcomes[:-1]) - {"unavailable"}, set())

        def allBack() -> Deferred[None]:
            if store.pool.liveConnections == 3:
                return defer.succeed(None)
            return defer.fail(AssertionError(f"{store.pool.liveConnections} connections"))

        yield eventually(allBack)
        self.assertEqual(store.pool.connectionsMade, made + 3)
        # the COPY writer opened a new connection for itself too
        self.assertGreater(store._copy.connectionsMade, copyMade)
        self.assertEqual((yield store.countLogs(SN)), 2)

    @inlineCallbacks
    def test_busyConnectionKilled(self) -> Generator[Deferred[Any], Any, None]:
        """A backend killed in the middle of a statement fails that call only."""
        url = self.newDatabase()
        store = yield self.openStore(url, poolSize=2, reconnectDelay=(0.05, 0.2))

        async def slow(cur: Any) -> None:
            await cur.execute("SELECT pg_sleep(10)")

        d = store.runInTransaction(slow)
        yield sleep(0.2)
        adminQuery(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep(10)%%'",
        )
        yield self.assertFailure(d, StoreUnavailable)
        self.assertIs((yield eventually(store.ping)), True)


class NotificationTests(_PostgresCase):
    """LISTEN/NOTIFY through the dedicated connection."""

    @inlineCallbacks
    def test_listenNotify(self) -> Generator[Deferred[Any], Any, None]:
        """Notifications from the store and from another connection reach the callback."""
        url = self.newDatabase()
        store = yield self.openStore(url)
        got: list[tuple[str, str]] = []
        arrived: list[Deferred[None]] = []

        def received(channel: str, payload: str) -> None:
            got.append((channel, payload))
            if arrived:
                arrived.pop(0).callback(None)

        def expect() -> Deferred[None]:
            d: Deferred[None] = Deferred()
            arrived.append(d)
            return d.addTimeout(5, reactor)

        yield store.listen("tm20_events", received)
        waiting = expect()
        yield store.notify("tm20_events", "hello")
        yield waiting
        waiting = expect()
        adminQuery(url, "NOTIFY tm20_events, 'from elsewhere'")
        yield waiting
        yield store.notify("other_channel", "ignored")
        self.assertEqual(got, [("tm20_events", "hello"), ("tm20_events", "from elsewhere")])
        yield self.assertFailure(store.listen("bad name; DROP", received), ValueError)

        # the LISTEN connection is killed: it comes back, LISTENing again
        adminQuery(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%%'",
        )

        @inlineCallbacks
        def delivered() -> Generator[Deferred[Any], Any, None]:
            waiting = expect()
            yield store.notify("tm20_events", "again")
            try:
                yield waiting.addTimeout(0.3, reactor)
            finally:
                if waiting in arrived:
                    arrived.remove(waiting)

        yield eventually(delivered)
        self.assertEqual(got[-1], ("tm20_events", "again"))

        yield store.unlisten("tm20_events", received)
        count = len(got)
        yield store.notify("tm20_events", "unheard")
        yield sleep(0.2)
        self.assertEqual(len(got), count)
