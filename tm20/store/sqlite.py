"""
The embedded store: one SQLite file, reached through L{twisted.enterprise.adbapi}.

Most operations are the same code as PostgreSQL's (L{tm20.store._roles.StoreRoles}, run by
L{tm20.store._ops.runSync} in the pool's thread); this module holds what is SQLite's own: the
connection and its transactions, health, migrations, the write of the log group commit's batches
(its queue is the ingest service's) and the event log.

Design:

  - B{One connection, one thread.}  SQLite has a single writer; serialising every transaction
    through one pool thread (C{cp_min=cp_max=1}) means this process never meets
    C{database is locked} from itself, and the queue of the pool's thread is FIFO, so calls are
    executed in the order they were made.  Nothing touches SQLite on the reactor thread: opening,
    migrating, every query and closing happen in the pool thread.
  - B{Explicit transactions.}  The connection runs with C{isolation_level=None} (no implicit
    transactions from the C{sqlite3} module); each call is exactly one C{BEGIN IMMEDIATE} (writes)
    or C{BEGIN} (reads) ... C{COMMIT}, rolled back on any exception, and its L{Deferred} fires only
    after the C{COMMIT} returned.
  - B{Durability.}  C{journal_mode=WAL} and, by default, C{synchronous=FULL}: the WAL is fsynced
    at every commit, so a log batch acknowledged to a terminal (which then forgets it) survives a
    process crash I{and} an OS crash or power cut.  C{NORMAL} would survive a process crash only
    (the last commits can be lost with the OS), for a cheaper commit; the ingest service groups
    batches into few transactions, so the price of C{FULL} is one fsync per group.  It can be
    chosen with the C{synchronous} argument.
  - B{Time.}  Server timestamps are ISO-8601 UTC text with microseconds and offset
    (L{tm20.store._rows.formatTimestamp}), read back as aware UTC C{datetime}s; "now" is
    C{clock.seconds()}, read on the reactor thread when a call is made.
  - B{Integrity.}  Users and credentials reference their terminal (C{ON DELETE CASCADE}); logs,
    door events, commands and the quarantine do not (a log batch is never refused for bookkeeping
    reasons), and L{SQLiteStore.deleteTerminal} deletes them explicitly.
  - B{Errors.}  SQLite errors meaning the database cannot be used now (cannot open, I/O error,
    disk full, busy, read-only) fail the L{Deferred} with L{tm20.errors.StoreUnavailable}; a
    constraint broken by the caller's data gives C{ValueError}; anything else (a bug) is passed
    through unchanged.  In every case the transaction was rolled back.
  - B{Health.}  L{SQLiteStore.health} answers without I/O from a
    L{tm20.store._health.HealthMonitor} fed by the outcome of every call (a write refused
    because the disk is full, the file read-only or unreadable makes the store C{unhealthy}; a
    lock held too long by another process, C{degraded}; the next write that succeeds clears it)
    and by a probe every C{healthInterval} seconds, in the store's thread: it rewrites the one
    row of C{store_probe} (a real write, so a full disk is seen even while terminals send
    nothing, and the store is C{ok} again once it can write) and finds the store C{unhealthy}
    while the file system holding the database has less than L{MIN_FREE_BYTES} free (SQLite
    can still reuse its WAL file on a full disk, so a small write alone may succeed there).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorCore, IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tm20.errors import StoreUnavailable
from tm20.events.payloads import (
    localToUTC,
)
from tm20.interfaces import (
    IAccessStore,
    IAccountStore,
    IEventStore,
    ILogBatchWriter,
    IPersonStore,
    IStore,
    IWatchStore,
    LogBatch,
)
from tm20.model import (
    LogFlushPolicy,
    LogInsertResult,
)
from tm20.protocol.messages import (
    LogRecord,
)
from tm20.store._accessstore import AccessStoreMixin
from tm20.store._dialect import SQLITE, logEventJSON, logEventTypeSQL
from tm20.store._health import DEGRADED, OK, UNHEALTHY, HealthMonitor, StoreHealth
from tm20.store._migrations import Migration, loadMigrations, pendingMigrations
from tm20.store._ops import Op, runSync
from tm20.store._roles import StoreRoles
from tm20.store._rows import (
    StagedBatch,
    formatTimestamp,
    logRecordColumns,
    onlyResult,
    requireStorableRecord,
    utcFromSeconds,
)
from tm20.store._sqlite_events import (
    SQLiteEventsMixin,
    appendEvents,
    connectionPool,
)

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: Accepted values of C{PRAGMA synchronous}.
SYNCHRONOUS_MODES = ("NORMAL", "FULL", "EXTRA")

#: SQLite primary result codes meaning "the database cannot be used now", not "this is a bug".
_UNAVAILABLE_CODES = (
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_READONLY",
    "SQLITE_NOTADB",
    "SQLITE_PERM",
)


_LOG_TABLE = "attendance_logs"
_DOOR_TABLE = "door_events"


def _isUnavailable(error: BaseException | None) -> bool:
    """C{True} for a SQLite error meaning the database file cannot be used now."""
    if not isinstance(error, sqlite3.Error):
        return False
    code = getattr(error, "sqlite_errorname", None) or ""
    if code:
        return code.startswith(_UNAVAILABLE_CODES)
    message = str(error).lower()
    return "unable to open" in message or "disk i/o" in message


#: Result codes meaning the database is only busy (another process holds the lock): degraded.
_BUSY_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED")

#: Below this many free bytes on the database's file system, the store is unhealthy.
MIN_FREE_BYTES = 1024 * 1024


def _freeSpaceProblem(path: str) -> str | None:
    """Why the file system of C{path} is too full to write, or C{None}."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        stat = os.statvfs(folder)
    except OSError as e:
        return f"cannot check the free space of {folder}: {e.strerror}"
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return f"disk full: {free} bytes free in {folder} (needs {MIN_FREE_BYTES})"
    return None


# -- rows to values --------------------------------------------------------------------------------


def _logRow(sn: str, record: LogRecord, receivedAt: str) -> tuple[Any, ...]:
    requireStorableRecord(record)
    return (sn, *logRecordColumns(record), receivedAt)


#: A log row waiting in the group-commit queue: the row of L{_INSERT_LOG_ROW} (its C{sn} first,
#: its C{received_at} last) and whether it is a door event.
_LogItem = tuple[tuple[Any, ...], bool]


#: The staging table of a flush (temporary: this connection's own), emptied after each flush:
#: the log row, then its place in the order the terminals sent the records (its event's place
#: in the log), its batch, its table, and its time in UTC (its event's C{timeUTC}).
_STAGE = "tm20_log_stage"

_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
    sn TEXT, enrollid INTEGER, time TEXT, mode INTEGER, inout INTEGER, event INTEGER,
    temp REAL, verifymode INTEGER, image TEXT, extra TEXT, received_at TEXT,
    ord INTEGER, batch INTEGER, door INTEGER, utc TEXT
)
"""

_STAGE_ROW = f"INSERT INTO {_STAGE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

#: The staged rows of one table into it, in the terminals' order (C{INSERT OR IGNORE}: a
#: duplicate is not stored).
_INSERT_STAGED = f"""
INSERT OR IGNORE INTO {{table}} (sn, enrollid, time, mode, inout, event, temp, verifymode,
                                image, extra, received_at)
SELECT sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra, received_at
FROM {_STAGE} WHERE door = {{door}} ORDER BY ord
"""

#: The staged rows just inserted (ids past those of before the flush), with their ids.
_INSERTED = f"""
SELECT s.*, l.id AS id FROM {_STAGE} s JOIN {_LOG_TABLE} l
  ON l.sn = s.sn AND l.enrollid = s.enrollid AND l.time = s.time AND l.mode = s.mode
 AND l.inout = s.inout AND l.event = s.event
WHERE s.door = 0 AND l.id > :logs
UNION ALL
SELECT s.*, l.id AS id FROM {_STAGE} s JOIN {_DOOR_TABLE} l
  ON l.sn = s.sn AND l.enrollid = s.enrollid AND l.time = s.time AND l.mode = s.mode
 AND l.inout = s.inout AND l.event = s.event
WHERE s.door = 1 AND l.id > :doors
"""

#: The event of each row inserted, built by the database from the same row, in the order the
#: terminals sent them: its payload is L{tm20.events.payloads.LOG_EVENT_FIELDS}'s (L{logEventJSON}).
_INSERT_EVENTS = f"""
INSERT INTO events (type, sn, payload, created_at)
SELECT {logEventTypeSQL()}, sn,
       {logEventJSON(SQLITE)},
       received_at
FROM ({_INSERTED}) ORDER BY ord
"""

_INSERTED_PER_BATCH = f"SELECT batch, count(*) FROM ({_INSERTED}) GROUP BY batch"


def _insertLogBatches(
    conn: sqlite3.Connection,
    batches: Sequence[StagedBatch[_LogItem]],
    defaultTimezone: str | None,
) -> list[LogInsertResult | BaseException]:
    """
    Write C{batches} in this one transaction: their rows (each key once, the first batch
    holding it owns it) go into the staging table in one C{executemany}, then into their tables
    by two C{INSERT ... SELECT}, and the events of the rows inserted (a duplicate has none) by
    one more, built by the database; each batch gets its own counts.  A row the database
    refuses fails the flush (rolled back whole): the group commit then writes each batch alone,
    so only the batch holding it fails.
    """
    conn.execute(_CREATE_STAGE)
    sns = {batch.sn for batch in batches}
    zones = {
        sn: zone or defaultTimezone
        for sn, zone in conn.execute(
            f"SELECT sn, timezone FROM terminals WHERE sn IN ({', '.join('?' * len(sns))})",
            tuple(sns),
        )
    }
    seen: set[tuple[Any, ...]] = set()
    staged: list[tuple[Any, ...]] = []
    ord = 0
    for index, batch in enumerate(batches):
        zone = zones.get(batch.sn, defaultTimezone)
        for row, isDoor in batch.items:
            key = row[:6]
            if key in seen:
                continue
            seen.add(key)
            staged.append((*row, ord, index, 1 if isDoor else 0, localToUTC(row[2], zone)))
            ord += 1
    before = conn.execute(
        f"SELECT (SELECT coalesce(max(id), 0) FROM {_LOG_TABLE}),"
        f" (SELECT coalesce(max(id), 0) FROM {_DOOR_TABLE})"
    ).fetchone()
    # the staging table is temporary but transactional: a failed flush, rolled back, leaves
    # it empty too
    conn.executemany(_STAGE_ROW, staged)
    conn.execute(_INSERT_STAGED.format(table=_LOG_TABLE, door=0))
    conn.execute(_INSERT_STAGED.format(table=_DOOR_TABLE, door=1))
    bounds = {"logs": before[0], "doors": before[1]}
    counts = dict(conn.execute(_INSERTED_PER_BATCH, bounds).fetchall())
    conn.execute(_INSERT_EVENTS, bounds)
    conn.execute(f"DELETE FROM {_STAGE}")
    return [
        LogInsertResult(inserted=counts.get(i, 0), duplicates=len(batch) - counts.get(i, 0))
        for i, batch in enumerate(batches)
    ]


# -- the work done in the pool thread --------------------------------------------------------------


@implementer(
    IStore, ILogBatchWriter, IEventStore, IWatchStore, IPersonStore, IAccountStore, IAccessStore
)
class SQLiteStore(SQLiteEventsMixin, StoreRoles, AccessStoreMixin):
    """
    L{IStore} on one SQLite file.

    @ivar path: the database file.
    """

    log = Logger()
    dialect = SQLITE

    def __init__(
        self,
        path: str,
        reactor: IReactorCore | None = None,
        clock: IReactorTime | None = None,
        *,
        synchronous: str = "FULL",
        busyTimeout: float = 5.0,
        healthInterval: float = 5.0,
        flushRows: int = 500,
        maxQueuedRows: int = 50_000,
    ) -> None:
        """
        @param path: the database file (created if missing; its folder must exist).
        @param reactor: runs the pool's thread and delivers results (the global reactor when
            C{None}, imported only then).
        @param clock: gives "now" for the server's timestamps (the reactor when C{None}).
        @param synchronous: C{PRAGMA synchronous}: C{"FULL"} (default), C{"NORMAL"} or
            C{"EXTRA"}; see the module documentation.
        @param busyTimeout: seconds SQLite waits for a lock held by another process (an admin
            tool) before giving up.
        @param healthInterval: seconds between health probes (see L{health}).
        @param flushRows: the most rows one log group commit merges; a batch this large or
            larger is written alone (L{logFlushPolicy}).
        @param maxQueuedRows: the bound of the ingest service's log queue (L{logFlushPolicy}).
        """
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.path = path
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else cast(IReactorTime, reactor)
        self._synchronous = synchronous
        self._busyTimeoutMs = int(busyTimeout * 1000)
        self._pool: ConnectionPool | None = None
        self._state = "new"
        #: Every migration shipped with this release is applied (set by L{start}).
        self.migrationsApplied = False
        #: How the ingest service's group commit should flush here: one flush at a time, the
        #: one writer thread's (L{ILogBatchWriter}).
        self.logFlushPolicy = LogFlushPolicy(
            flushRows=flushRows, maxQueuedRows=maxQueuedRows, maxConcurrentFlushes=1
        )
        # a probe waits behind the calls already queued for the store's thread (one may wait
        # busyTimeout for another process's lock): only much later is it overdue
        self._health = HealthMonitor(
            self._reactor,
            f"sqlite {path}",
            self._probe,
            interval=healthInterval,
            overdue=healthInterval + busyTimeout + 5.0,
        )
        #: Called after a commit that may have appended events (see addEventObserver).
        self._eventObservers: list[Callable[[], object]] = []
        #: The time zone of terminals without their own, for the UTC time of log events
        #: (C{None}: the server's).
        self.defaultTimezone: str | None = None

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r} {self._state}>"

    # -- plumbing ----------------------------------------------------------------------------------

    def _now(self) -> str:
        return formatTimestamp(utcFromSeconds(self._clock.seconds()))

    def _configureConnection(self, conn: sqlite3.Connection) -> None:
        """C{cp_openfun}: runs in the pool thread right after the connection is opened."""
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {self._busyTimeoutMs}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")

    def _translateFailure(self, failure: Failure) -> Failure:
        # not logged here (once per call, thousands in an outage): the health monitor logs the
        # store's change of state once
        error = failure.value
        if _isUnavailable(error) and not isinstance(error, StoreUnavailable):
            unavailable = StoreUnavailable(f"SQLite {self.path}: {error}")
            unavailable.__cause__ = error
            return Failure(unavailable)
        return failure

    @staticmethod
    def _inTransaction(
        conn: sqlite3.Connection,
        write: bool,
        function: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = function(conn, *args, **kwargs)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result

    def runInTransaction(
        self,
        function: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]:
        """
        Call C{function(connection, *args, **kwargs)} in the pool thread inside one write
        transaction (committed if it returns, rolled back if it raises).  For maintenance tools
        and tests; the server uses the L{IStore} methods.

        @return: a L{Deferred} of C{function}'s result, fired after the commit.
        """
        return self._run(True, function, *args, **kwargs)

    def _run(
        self,
        write: bool,
        function: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]:
        if self._pool is None or self._state not in ("starting", "running"):
            return fail(StoreUnavailable(f"SQLite store {self.path} is {self._state}"))
        return self._runNow(write, function, *args, **kwargs)

    def _runNow(
        self,
        write: bool,
        function: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]:
        """L{_run} without the state check (L{writeLogBatches} made it before its rows)."""
        if self._pool is None:
            return fail(StoreUnavailable(f"SQLite store {self.path} is {self._state}"))
        d: Deferred[_T] = self._pool.runWithConnection(
            self._inTransaction, write, function, *args, **kwargs
        )
        source = "writes" if write else "reads"

        def succeeded(result: _T) -> _T:
            self._health.report(source, OK)
            return result

        def failed(failure: Failure) -> Failure:
            error = failure.value
            if _isUnavailable(error):
                code = getattr(error, "sqlite_errorname", None) or ""
                state = DEGRADED if code.startswith(_BUSY_CODES) else UNHEALTHY
                what = "write to" if write else "read"
                self._health.report(source, state, f"cannot {what} {self.path}: {error}")
            return self._translateFailure(failure)

        d.addCallbacks(succeeded, failed)
        return d

    def _runOp(self, write: bool, op: Op[_T], single: bool = False) -> Deferred[_T]:
        return self._run(write, runSync, op, appendEvents)

    def _write(
        self,
        function: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]:
        return self._run(True, function, *args, **kwargs)

    def _read(
        self,
        function: Callable[Concatenate[sqlite3.Connection, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> Deferred[_T]:
        return self._run(False, function, *args, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """
        Open the connection (in the pool thread) and apply the pending migrations, each in its own
        transaction, recording them in C{schema_migrations}.

        @return: a L{Deferred} firing once the schema is current; it fails with
            L{StoreUnavailable} when the file cannot be opened, and the store is then stopped.
        """
        if self._state != "new":
            return fail(RuntimeError(f"{self!r} cannot be started again"))
        try:
            migrations = loadMigrations("sqlite")
        except ValueError as e:
            return fail(e)
        self._pool = connectionPool(self.path, self._reactor, self._configureConnection)
        self._pool.start()
        self._state = "starting"
        d: Deferred[dict[str, Any]] = self._pool.runWithConnection(
            self._migrate, migrations, self._now()
        )
        d.addErrback(self._translateFailure)

        def started(info: dict[str, Any]) -> None:
            self.migrationsApplied = True
            if self._state == "starting":  # not if stop() was called meanwhile
                self._state = "running"
                self._health.start()
                self._openEventReader()
            self.log.info(
                "SQLite store {path} ready: schema version {version}, applied {applied},"
                " journal_mode={journalMode} synchronous={synchronous}",
                path=self.path,
                version=info["version"],
                applied=info["applied"],
                journalMode=info["journalMode"],
                synchronous=self._synchronous,
            )
            if info["journalMode"] != "wal":
                self.log.warn(
                    "SQLite store {path} could not use WAL (journal_mode={journalMode})",
                    path=self.path,
                    journalMode=info["journalMode"],
                )

        def failed(failure: Failure) -> Deferred[None]:
            # Not log.failure: the caller gets the failure and decides how loud to be.
            self.log.debug(
                "SQLite store {path} failed to start: {error}",
                path=self.path,
                error=failure.getErrorMessage(),
            )
            self._state = "stopping"
            closed = self._closePool()
            closed.addCallback(lambda _: failure)
            return closed

        return d.addCallbacks(started, failed)

    def _migrate(
        self, conn: sqlite3.Connection, migrations: list[Migration], now: str
    ) -> dict[str, Any]:
        """In the pool thread: apply what C{schema_migrations} does not list."""
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER NOT NULL PRIMARY KEY,
                name       TEXT    NOT NULL,
                applied_at TEXT    NOT NULL
            )
            """
        )
        # Refuse a database migrated by a newer release before changing anything.
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        pendingMigrations(migrations, done)
        applied: list[int] = []
        for migration in migrations:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read again under the write lock: another process may have migrated meanwhile.
                already = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                ).fetchone()
                if already is None:
                    for statement in migration.statements():
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES (?, ?, ?)",
                        (migration.version, migration.name, now),
                    )
                    applied.append(migration.version)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        journalMode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return {"version": version, "applied": applied, "journalMode": journalMode}

    def stop(self) -> Deferred[None]:
        """
        Let the calls already made finish (the pool thread runs them in order), then close the
        connection in the pool thread and stop the pool.  Later calls fail with
        L{StoreUnavailable}.

        @return: a L{Deferred} firing once closed.
        """
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return succeed(None)
        if self._state == "stopping":
            return fail(RuntimeError(f"{self!r} is already stopping"))
        self._state = "stopping"
        self._health.stop()
        return self._closePool()

    def _closePool(self) -> Deferred[None]:
        self._closeEventReader()
        pool = self._pool
        assert pool is not None

        def disconnect() -> None:
            conn = pool.connections.get(pool.threadID())
            if conn is not None:
                pool.disconnect(conn)

        d: Deferred[None] = deferToThreadPool(
            cast(IReactorFromThreads, self._reactor), pool.threadpool, disconnect
        )

        def close(result: object) -> object:
            pool.close()
            self._pool = None
            self._state = "stopped"
            self.log.info("SQLite store {path} closed", path=self.path)
            return result

        d.addBoth(close)
        d.addErrback(self._translateFailure)
        return d

    def ping(self) -> Deferred[bool]:
        """@return: a L{Deferred} firing with C{True} when C{SELECT 1} works."""

        def ping(conn: sqlite3.Connection) -> bool:
            return bool(conn.execute("SELECT 1").fetchone()[0] == 1)

        return self._read(ping)

    def health(self) -> StoreHealth:
        """
        The store's health now, without I/O (see the module docstring): C{unhealthy} when it
        cannot write, C{degraded} while another process keeps it locked.
        """
        if self._state != "running":
            return StoreHealth(UNHEALTHY, f"the store is {self._state}", self._clock.seconds())
        return self._health.current()

    def _probe(self) -> Deferred[tuple[str, str | None]]:
        """
        In the store's thread: check the free space, and rewrite the row of C{store_probe} (a
        real write, whose outcome counts as any write's: it clears a failed write's condition).
        """

        def probe(conn: sqlite3.Connection, now: str) -> str | None:
            problem = _freeSpaceProblem(self.path)
            conn.execute(
                "INSERT INTO store_probe (id, probed_at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at",
                (now,),
            )
            return problem

        def checked(problem: str | None) -> tuple[str, str | None]:
            return (OK, None) if problem is None else (UNHEALTHY, problem)

        def failed(f: Failure) -> tuple[str, str | None]:
            if f.check(StoreUnavailable):
                return OK, None  # the failed write has set the "writes" condition
            return DEGRADED, f"SQLite {self.path}: {f.getErrorMessage()}"

        return self._write(probe, self._now()).addCallbacks(checked, failed)

    # -- logs --------------------------------------------------------------------------------------

    def addLogs(self, sn: str, records: Sequence[LogRecord]) -> Deferred[LogInsertResult]:
        """
        See L{IStore.addLogs}: C{records} written now in their own transaction
        (L{writeLogBatches} of one batch; the server's road is the ingest service's group
        commit).
        """
        records = list(records)
        if not records:
            return succeed(LogInsertResult(inserted=0, duplicates=0))
        return self.writeLogBatches([StagedBatch(sn, records)]).addCallback(onlyResult)

    def writeLogBatches(
        self, batches: Sequence[LogBatch]
    ) -> Deferred[Sequence[LogInsertResult | Failure]]:
        """
        See L{ILogBatchWriter.writeLogBatches}: one transaction of the pool thread
        (L{_insertLogBatches}: C{INSERT OR IGNORE} on the identity of a record; C{duplicates}
        counts every record not newly stored, repeats within the batch included).  A batch
        holding a record that can never be stored gets its C{ValueError} or C{TypeError}, the
        others are written.
        """
        if self._pool is None or self._state not in ("starting", "running"):
            return fail(StoreUnavailable(f"SQLite store {self.path} is {self._state}"))
        now = self._now()
        results: list[LogInsertResult | Failure] = []
        staged: list[StagedBatch[_LogItem]] = []
        places: list[int] = []
        for index, batch in enumerate(batches):
            sn = batch.sn
            try:
                items = [(_logRow(sn, r, now), r.isDoorEvent) for r in batch.items]
            except (TypeError, ValueError):
                results.append(Failure())
                continue
            results.append(_NOT_YET)
            staged.append(StagedBatch(sn, items))
            places.append(index)
        if not staged:
            return succeed(results)

        def written(outcomes: list[LogInsertResult | BaseException]) -> list[Any]:
            if any(isinstance(o, LogInsertResult) and o.inserted for o in outcomes):
                self._eventsCommitted()
            for index, outcome in zip(places, outcomes, strict=True):
                results[index] = (
                    outcome if isinstance(outcome, LogInsertResult) else Failure(outcome)
                )
            return results

        d = self._runNow(True, _insertLogBatches, staged, self.defaultTimezone)
        return d.addCallback(written)


#: The place of a batch's result while its flush runs.
_NOT_YET = LogInsertResult(inserted=0, duplicates=0)


__all__ = ["SQLiteStore", "SYNCHRONOUS_MODES"]
