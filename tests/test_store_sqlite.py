"""
Tests for L{tm20.store.sqlite.SQLiteStore} (the L{StoreContractTests} plus SQLite specifics),
L{tm20.store._migrations} and L{tm20.store.storeFromURL}.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import types
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.threadable import isInIOThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tm20.errors import StoreUnavailable
from tm20.interfaces import IStore
from tm20.model import LogInsertResult, LogQuery
from tm20.store import storeFromURL
from tm20.store._migrations import (
    Migration,
    loadMigrations,
    pendingMigrations,
    splitStatements,
)
from tm20.store.sqlite import SQLiteStore

from .accessstorecontract import AccessStoreContractTests
from .eventstorecontract import EventStoreContractTests
from .storecontract import SN, T0, StoreContractTests, punch


def _tempDir(case: SynchronousTestCase) -> str:
    """A temporary directory removed after the test (outside the working tree)."""
    path = tempfile.mkdtemp(prefix="tm20-sqlite-")
    case.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


class SQLiteStoreTests(
    StoreContractTests, AccessStoreContractTests, EventStoreContractTests, TestCase
):
    """The store contract, on a real SQLite file."""

    def refuseLogsOf(self, enrollid: int) -> Deferred[Any]:
        def trigger(conn: sqlite3.Connection) -> None:
            for table in ("attendance_logs", "door_events"):
                conn.execute(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table}"
                    f" WHEN NEW.enrollid = {int(enrollid)}"
                    " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )

        return self.store.runInTransaction(trigger)

    path: str

    def openStore(self, path: str, **kwargs: Any) -> Deferred[SQLiteStore]:
        """A started L{SQLiteStore} on C{path}, stopped at cleanup."""
        store = SQLiteStore(path, reactor=reactor, clock=self.clock, **kwargs)
        self.addCleanup(store.stop)
        return store.start().addCallback(lambda _: store)

    def createStore(self) -> Deferred[SQLiteStore]:
        self.path = os.path.join(_tempDir(self), "tm20.sqlite3")
        return self.openStore(self.path)

    @inlineCallbacks
    def reopenStore(self) -> Generator[Deferred[Any], Any, SQLiteStore]:
        yield self.store.stop()
        store: SQLiteStore = yield self.openStore(self.path)
        return store

    # -- SQLite specifics --------------------------------------------------------------------------

    @inlineCallbacks
    def test_connectionSettings(self) -> Generator[Deferred[Any], Any, None]:
        """WAL, synchronous FULL, foreign keys and a busy timeout are set on the connection."""

        def pragmas(conn: sqlite3.Connection) -> tuple[Any, ...]:
            return tuple(
                conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            )

        self.assertEqual((yield self.store.runInTransaction(pragmas)), ("wal", 2, 1, 5000))
        other: SQLiteStore = yield self.openStore(
            os.path.join(_tempDir(self), "normal.sqlite3"), synchronous="normal", busyTimeout=0.25
        )
        self.assertEqual((yield other.runInTransaction(pragmas)), ("wal", 1, 1, 250))

    def test_badSynchronous(self) -> None:
        """An unknown C{synchronous} mode is refused at once."""
        self.assertRaises(ValueError, SQLiteStore, "x.sqlite3", reactor, synchronous="OFF")

    @inlineCallbacks
    def test_migrationsRecordedOnce(self) -> Generator[Deferred[Any], Any, None]:
        """Every shipped migration is recorded with its name and time; a restart applies none."""
        expected = [(m.version, m.name) for m in loadMigrations("sqlite")]
        self.assertEqual(expected[0], (1, "initial"))

        def recorded(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return [
                tuple(row)
                for row in conn.execute(
                    "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
                )
            ]

        first = yield self.store.runInTransaction(recorded)
        self.assertEqual([row[:2] for row in first], expected)
        self.assertEqual({row[2] for row in first}, {"2026-04-30T11:59:37.000000+00:00"})
        yield self.store.recordTerminalSeen(SN, None, {}, True)
        self.clock.advance(3600)
        self.store = yield self.reopenStore()
        self.assertEqual((yield self.store.runInTransaction(recorded)), first)
        self.assertIsNotNone((yield self.store.getTerminal(SN)))

    @inlineCallbacks
    def test_newerSchemaRefused(self) -> Generator[Deferred[Any], Any, None]:
        """A database migrated by a newer release is refused at start, unchanged."""

        def future(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'x', 'y')"
            )

        yield self.store.runInTransaction(future)
        yield self.store.stop()
        store = SQLiteStore(self.path, reactor=reactor, clock=self.clock)
        self.addCleanup(store.stop)
        failure = yield self.assertFailure(store.start(), ValueError)
        self.assertIn("9999", str(failure))
        yield self.assertFailure(store.ping(), StoreUnavailable)

    @inlineCallbacks
    def test_failedBatchWritesNothing(self) -> Generator[Deferred[Any], Any, None]:
        """
        A record failing in the middle of a batch (here: refused by a trigger, after a door event
        and two punches were inserted in the same transaction) leaves nothing written, and the
        store keeps working.
        """

        def trigger(conn: sqlite3.Connection, create: bool) -> None:
            if create:
                conn.execute(
                    "CREATE TRIGGER refuse_666 BEFORE INSERT ON attendance_logs"
                    " WHEN NEW.enrollid = 666 BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
                )
            else:
                conn.execute("DROP TRIGGER refuse_666")

        yield self.store.recordTerminalSeen(SN, None, {}, True)
        yield self.store.runInTransaction(trigger, True)
        batch = [
            punch(0, "2026-04-30 08:00:00", event=1),
            punch(1, "2026-04-30 08:00:01"),
            punch(2, "2026-04-30 08:00:02"),
            punch(666, "2026-04-30 08:00:03"),
            punch(3, "2026-04-30 08:00:04"),
        ]
        failure = yield self.assertFailure(self.store.addLogs(SN, batch), sqlite3.IntegrityError)
        self.assertIn("refused by test", str(failure))
        self.assertEqual((yield self.store.countLogs(None)), 0)
        self.assertEqual((yield self.store.queryDoorEvents(LogQuery())), [])
        yield self.store.runInTransaction(trigger, False)
        self.assertEqual((yield self.store.addLogs(SN, batch)), LogInsertResult(5, 0))

    @inlineCallbacks
    def test_unstorableValueWritesNothing(self) -> Generator[Deferred[Any], Any, None]:
        """A value SQLite cannot bind, late in a batch, fails the whole batch."""
        batch = [punch(i, "2026-04-30 08:00:00") for i in range(1, 50)]
        batch.append(punch(50, "2026-04-30 08:00:00", image=object()))
        yield self.assertFailure(self.store.addLogs(SN, batch), sqlite3.Error)
        self.assertEqual((yield self.store.countLogs(None)), 0)
        self.assertEqual((yield self.store.addLogs(SN, batch[:-1])), LogInsertResult(49, 0))

    @inlineCallbacks
    def test_failedSaveUserChangesNothing(self) -> Generator[Deferred[Any], Any, None]:
        """A constraint failure in C{saveCredential} (unknown terminal) rolls the user back too."""
        yield self.assertFailure(self.store.saveCredential("NOPE", 1, 0, "x", "a", 0), ValueError)

        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])

        self.assertEqual((yield self.store.runInTransaction(count)), 0)

    @inlineCallbacks
    def test_workOffReactorThread(self) -> Generator[Deferred[Any], Any, None]:
        """
        Opening, every statement and closing happen in the pool thread, never on the thread
        running the reactor (the test's thread).
        """
        seen: list[tuple[str, int]] = []
        original = sqlite3.connect

        class RecordingConnection(sqlite3.Connection):
            def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
                seen.append(("execute", threading.get_ident()))
                return super().execute(*args, **kwargs)

            def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
                seen.append(("executemany", threading.get_ident()))
                return super().executemany(*args, **kwargs)

            def close(self) -> None:
                seen.append(("close", threading.get_ident()))
                super().close()

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            seen.append(("connect", threading.get_ident()))
            return original(*args, factory=RecordingConnection, **kwargs)

        self.patch(sqlite3, "connect", connect)
        store: SQLiteStore = yield self.openStore(os.path.join(_tempDir(self), "t.sqlite3"))
        yield store.recordTerminalSeen(SN, None, {}, True)
        yield store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])
        yield store.queryLogs(LogQuery())
        inThread = yield store.runInTransaction(lambda conn: isInIOThread())
        yield store.stop()
        self.assertIs(inThread, False)
        kinds = {kind for kind, _ in seen}
        self.assertEqual(kinds, {"connect", "execute", "executemany", "close"})
        self.assertNotIn(threading.get_ident(), {ident for _, ident in seen})
        self.assertTrue(isInIOThread())

    @inlineCallbacks
    def test_unavailable(self) -> Generator[Deferred[Any], Any, None]:
        """A file that cannot be opened fails C{start} with L{StoreUnavailable}; so do calls."""
        path = os.path.join(_tempDir(self), "no", "such", "dir", "tm20.sqlite3")
        store = SQLiteStore(path, reactor=reactor, clock=self.clock)
        self.addCleanup(store.stop)
        yield self.assertFailure(store.start(), StoreUnavailable)
        yield self.assertFailure(store.getTerminal(SN), StoreUnavailable)
        self.assertFalse(os.path.exists(path))

    @inlineCallbacks
    def test_notADatabase(self) -> Generator[Deferred[Any], Any, None]:
        """A file that is not a SQLite database makes the store unavailable, and is not changed."""
        path = os.path.join(_tempDir(self), "garbage.sqlite3")
        garbage = b"this is not a database" * 100
        with open(path, "wb") as f:
            f.write(garbage)
        store = SQLiteStore(path, reactor=reactor, clock=self.clock)
        self.addCleanup(store.stop)
        yield self.assertFailure(store.start(), StoreUnavailable)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), garbage)

    @inlineCallbacks
    def test_stopLetsQueuedCallsFinish(self) -> Generator[Deferred[Any], Any, None]:
        """Calls made before C{stop} complete and are committed; later calls fail cleanly."""
        added = self.store.addLogs(SN, [punch(i, "2026-04-30 08:00:00") for i in range(1, 101)])
        stopped = self.store.stop()
        yield self.assertFailure(self.store.countLogs(SN), StoreUnavailable)
        self.assertEqual((yield added), LogInsertResult(100, 0))
        yield stopped
        yield self.assertFailure(self.store.ping(), StoreUnavailable)
        yield self.store.stop()
        yield self.assertFailure(self.store.start(), RuntimeError)
        self.store = yield self.openStore(self.path)
        self.assertEqual((yield self.store.countLogs(SN)), 100)

    @inlineCallbacks
    def test_stopWhileStarting(self) -> Generator[Deferred[Any], Any, None]:
        """C{stop} right after C{start} lets the migrations finish, then closes for good."""
        store = SQLiteStore(os.path.join(_tempDir(self), "s.sqlite3"), reactor, self.clock)
        pings: list[Deferred[bool]] = []
        started = store.start()
        started.addCallback(lambda _: pings.append(store.ping()))
        yield store.stop()
        yield started
        self.assertEqual(len(pings), 1)
        yield self.assertFailure(pings[0], StoreUnavailable)
        yield self.assertFailure(store.ping(), StoreUnavailable)

    @inlineCallbacks
    def test_logQueriesUseIndexes(self) -> Generator[Deferred[Any], Any, None]:
        """The log page queries use an index for both filtering and order (no sort, no scan)."""
        queries = [
            "SELECT * FROM attendance_logs WHERE sn = ? AND (time, id) < (?, ?)"
            " ORDER BY time DESC, id DESC LIMIT 50",
            "SELECT * FROM attendance_logs WHERE sn = ? AND time >= ? AND time <= ?"
            " ORDER BY time DESC, id DESC LIMIT 50",
            "SELECT * FROM attendance_logs ORDER BY time DESC, id DESC LIMIT 50",
            "SELECT * FROM attendance_logs WHERE sn = ? AND enrollid = ? AND (time, id) < (?, ?)"
            " ORDER BY time DESC, id DESC LIMIT 50",
            "SELECT * FROM door_events WHERE sn = ? ORDER BY time DESC, id DESC LIMIT 50",
            "SELECT * FROM users WHERE sn = ? AND enrollid > ? ORDER BY enrollid LIMIT 50",
            "SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT 50",
            "SELECT * FROM commands WHERE sn = ? AND status IN ('queued', 'sent') ORDER BY id",
        ]

        def plans(conn: sqlite3.Connection) -> list[str]:
            result = []
            for query in queries:
                params = (None,) * query.count("?")
                rows = conn.execute("EXPLAIN QUERY PLAN " + query, params).fetchall()
                result.append(" | ".join(row[-1] for row in rows))
            return result

        for query, plan in zip(queries, (yield self.store.runInTransaction(plans)), strict=True):
            # "SCAN t USING INDEX i" (walking an index in order, stopped by LIMIT) is fine;
            # a bare "SCAN t" reads the whole table.
            for step in plan.split(" | "):
                if "TEMP B-TREE" in step and "commands" in query:
                    continue  # sorting a terminal's few pending commands is fine
                self.assertIn("USING", step, query)
            if "commands" not in query:
                self.assertNotIn("TEMP B-TREE", plan, query)


class MigrationFilesTests(SynchronousTestCase):
    """L{tm20.store._migrations}."""

    def test_splitStatements(self) -> None:
        """Statements end at a line ending with C{;}; comment-only chunks are dropped."""
        sql = (
            "-- header comment\n"
            "CREATE TABLE a (\n"
            "    x INTEGER -- inline; not an end\n"
            ");\n"
            "\n"
            "-- only a comment;\n"
            "INSERT INTO a VALUES (1);   \n"
            "CREATE FUNCTION f() RETURNS trigger AS $$\n"
            "BEGIN\n"
            "    RETURN NEW;\n"
            "END;\n"
            "$$ LANGUAGE plpgsql;\n"
            "SELECT 1\n"
        )
        statements = splitStatements(sql)
        self.assertEqual(len(statements), 4, statements)
        self.assertTrue(statements[0].startswith("-- header comment\nCREATE TABLE a ("))
        self.assertTrue(statements[0].endswith(")"))
        self.assertEqual(statements[1], "INSERT INTO a VALUES (1)")
        self.assertIn("RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql", statements[2])
        self.assertEqual(statements[3], "SELECT 1")
        self.assertEqual(splitStatements("-- nothing\n\n"), [])

    def test_shippedSQLiteMigrationsApply(self) -> None:
        """The shipped SQLite migrations are ordered and their statements run on SQLite."""
        migrations = loadMigrations("sqlite")
        versions = [m.version for m in migrations]
        self.assertEqual(versions, sorted(set(versions)))
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        for migration in migrations:
            self.assertIsInstance(migration, Migration)
            for statement in migration.statements():
                conn.execute(statement)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        for table in (
            "terminals",
            "users",
            "credentials",
            "attendance_logs",
            "door_events",
            "commands",
            "api_tokens",
            "audit_log",
            "quarantined_records",
        ):
            self.assertIn(table, tables)

    def test_commandExpiryMigrationKeepsCommands(self) -> None:
        """
        0004 rebuilds the commands table (SQLite cannot alter a CHECK): rows and ids are kept,
        the id sequence goes on after the highest id ever given, and the new statuses and
        columns work.
        """
        migrations = loadMigrations("sqlite")
        conn = sqlite3.connect(":memory:")
        self.addCleanup(conn.close)
        for migration in migrations:
            if migration.version < 4:
                for statement in migration.statements():
                    conn.execute(statement)
        insert = (
            "INSERT INTO commands (sn, name, payload, status, created_at)"
            " VALUES ('S', 'opendoor', '{}', 'queued', '2026-04-30T11:59:37.000000+00:00')"
        )
        for _ in range(3):
            conn.execute(insert)
        conn.execute("DELETE FROM commands WHERE id = 3")
        self.assertRaises(
            sqlite3.IntegrityError,
            conn.execute,
            "UPDATE commands SET status = 'cancelled' WHERE id = 1",
        )
        for migration in migrations:
            if migration.version == 4:
                for statement in migration.statements():
                    conn.execute(statement)
        rows = conn.execute("SELECT id, status, expires_at, warnings FROM commands").fetchall()
        self.assertEqual(rows, [(1, "queued", None, "[]"), (2, "queued", None, "[]")])
        conn.execute("UPDATE commands SET status = 'cancelled' WHERE id = 1")
        conn.execute("UPDATE commands SET status = 'expired' WHERE id = 2")
        self.assertEqual(conn.execute(insert).lastrowid, 4)
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        self.assertIn("commands_sn_status", indexes)
        self.assertNotIn("commands_new", indexes)

    def test_gapsInNumberingAreAllowed(self) -> None:
        """Versions need not be consecutive, and a lower one shipped later is still applied."""
        migrations = [Migration(1, "a", ""), Migration(4, "d", ""), Migration(5, "e", "")]
        self.assertEqual(pendingMigrations(migrations, {1, 5}), [migrations[1]])

    def _package(self, files: dict[str, str]) -> str:
        """A new importable package with C{files} under C{migrations/x/}; its name returned."""
        name = f"tm20fakemigrations{len(self._packages)}"
        self._packages.append(name)
        root = _tempDir(self)
        package = os.path.join(root, name)
        os.makedirs(os.path.join(package, "migrations", "x"))
        with open(os.path.join(package, "__init__.py"), "w") as f:
            f.write("")
        for filename, text in files.items():
            with open(os.path.join(package, "migrations", "x", filename), "w") as f:
                f.write(text)
        sys.path.insert(0, root)
        importlib.invalidate_caches()
        self.addCleanup(sys.path.remove, root)
        self.addCleanup(sys.modules.pop, name, None)
        return name

    def setUp(self) -> None:
        self._packages: list[str] = []

    def test_loadOrdersByVersion(self) -> None:
        """Files are ordered by their number, not by name; other files are ignored."""
        package = self._package(
            {
                "0010_later.sql": "SELECT 10;",
                "0002_second_one.sql": "SELECT 2;",
                "0001_first.sql": "SELECT 1;",
                "README.txt": "not a migration",
            }
        )
        migrations = loadMigrations("x", package)
        self.assertEqual(
            migrations,
            [
                Migration(1, "first", "SELECT 1;"),
                Migration(2, "second_one", "SELECT 2;"),
                Migration(10, "later", "SELECT 10;"),
            ],
        )
        self.assertEqual(migrations[0].statements(), ["SELECT 1"])

    def test_loadRefusesBadNames(self) -> None:
        """A misnamed C{.sql} file, a shared version or an unknown dialect is a C{ValueError}."""
        self.assertRaises(ValueError, loadMigrations, "x", self._package({"1_short.sql": ""}))
        self.assertRaises(ValueError, loadMigrations, "x", self._package({"0001_Upper.sql": ""}))
        self.assertRaises(
            ValueError,
            loadMigrations,
            "x",
            self._package({"0001_a.sql": "", "0001_b.sql": ""}),
        )
        self.assertRaises(ValueError, loadMigrations, "nosuchdialect")

    def test_pending(self) -> None:
        """Pending are the unapplied ones in order; an unknown applied version is refused."""
        migrations = [Migration(1, "a", ""), Migration(2, "b", ""), Migration(3, "c", "")]
        self.assertEqual(pendingMigrations(migrations, {1}), migrations[1:])
        self.assertEqual(pendingMigrations(migrations, {1, 2, 3}), [])
        self.assertRaises(ValueError, pendingMigrations, migrations, {1, 4})


class StoreFromURLTests(SynchronousTestCase):
    """L{tm20.store.storeFromURL}."""

    def test_sqlite(self) -> None:
        """C{sqlite:PATH} gives an unstarted L{SQLiteStore} on that path."""
        for url, path in [
            ("sqlite:tm20.sqlite3", "tm20.sqlite3"),
            ("sqlite:data/tm20.sqlite3", "data/tm20.sqlite3"),
            ("sqlite:/var/lib/tm20/tm20.sqlite3", "/var/lib/tm20/tm20.sqlite3"),
            ("sqlite:///var/lib/tm20/tm20.sqlite3", "/var/lib/tm20/tm20.sqlite3"),
        ]:
            store = storeFromURL(url, reactor)
            self.assertIsInstance(store, SQLiteStore)
            assert isinstance(store, SQLiteStore)
            self.assertEqual(store.path, path)
            self.assertTrue(IStore.providedBy(store))

    def test_badSQLite(self) -> None:
        """An empty or in-memory SQLite path is refused."""
        for url in ("sqlite:", "sqlite://", "sqlite::memory:"):
            self.assertRaises(ValueError, storeFromURL, url, reactor)

    def test_unknownScheme(self) -> None:
        """Other schemes are refused, naming the accepted ones and hiding any password."""
        error = self.assertRaises(ValueError, storeFromURL, "mysql://root:hunter2@db/tm20", reactor)
        self.assertIn("sqlite:", str(error))
        self.assertIn("postgresql://", str(error))
        self.assertNotIn("hunter2", str(error))
        self.assertRaises(ValueError, storeFromURL, "tm20.sqlite3", reactor)

    def test_postgresDelegated(self) -> None:
        """PostgreSQL URLs go to C{PostgresStore.fromURL} of C{tm20.store.postgres}."""
        calls: list[tuple[str, Any]] = []

        class FakePostgresStore:
            @classmethod
            def fromURL(cls, url: str, reactor: Any) -> FakePostgresStore:
                calls.append((url, reactor))
                return cls()

        module = types.ModuleType("tm20.store.postgres")
        module.PostgresStore = FakePostgresStore  # type: ignore[attr-defined]
        self.patch(sys, "modules", {**sys.modules, "tm20.store.postgres": module})
        for url in ("postgresql://tm20@localhost/tm20", "postgres://tm20@localhost/tm20"):
            self.assertIsInstance(storeFromURL(url, reactor), FakePostgresStore)
        self.assertEqual(
            [url for url, _ in calls],
            ["postgresql://tm20@localhost/tm20", "postgres://tm20@localhost/tm20"],
        )
        self.assertIs(calls[0][1], reactor)

    def test_postgresUnavailable(self) -> None:
        """When the PostgreSQL store cannot be imported, a clear C{ValueError} says so."""
        self.patch(sys, "modules", {**sys.modules, "tm20.store.postgres": None})
        error = self.assertRaises(ValueError, storeFromURL, "postgresql://x@y/z", reactor)
        self.assertTrue(str(error).startswith("PostgreSQL store not available: "), str(error))


# Keep T0 imported for readers: the contract's clock starts there.
assert T0 > 0
