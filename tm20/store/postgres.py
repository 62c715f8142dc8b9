"""
The production store: PostgreSQL through txpostgres (asynchronous psycopg2), plus two
synchronous connections in threads for C{COPY} ingest.

Several C{twistd tm20} processes may share one database.  Behaviour is the same as
L{tm20.store.sqlite.SQLiteStore}, method for method (one contract test suite runs against both):
the same tables, the same ordering and paging, the same counting of duplicates, the same errors
(C{ValueError} for the caller's mistakes, L{StoreUnavailable} when the database cannot be used).
Most operations are the very same code (L{tm20.store._roles.StoreRoles}, run by
L{tm20.store._ops.runAsync} here); this module holds what is PostgreSQL's own: the pool and its
transactions, health, migrations, the write of the log group commit's batches (its queue is the
ingest service's), notifications and the event log.

Design:

  - B{Pool.}  L{tm20.store._pgpool.Pool}: C{poolSize} connections, each reconnecting by itself
    with a capped back-off when the server restarts or kills its backend.  While none is alive,
    calls fail at once with L{StoreUnavailable} (terminals get C{result:false}, the API 503);
    nothing needs restarting when the database comes back.
  - B{Deadlines.}  A statement still running after C{statementTimeout} seconds fails with
    L{StatementTimeout} (a L{StoreUnavailable}) and its connection is dropped and replaced
    (never a blocking libpq cancel: a frozen server must not freeze the reactor); the server's
    C{statement_timeout} is set a little longer as a backstop.  Connection attempts give up
    after C{connectTimeout} seconds.  Migrations have no deadline.
  - B{Health.}  L{PostgresStore.health} answers without I/O from a
    L{tm20.store._health.HealthMonitor}: every C{healthInterval} seconds a probe rewrites the
    one row of C{store_probe}; the store is C{degraded} when the probe fails or has not answered
    within C{healthInterval} seconds, C{unhealthy} when PostgreSQL answers that it cannot write
    (read-only, disk full).
  - B{Migrations.}  Plain SQL files in C{tm20/store/migrations/postgres/}, applied at L{start}
    in one transaction that first takes a transaction-level advisory lock
    (L{MIGRATION_LOCK_KEY}), so two processes starting at once apply them once; recorded in
    C{schema_migrations}.  L{migrate} applies them and returns (C{--migrate-only}).
  - B{Group commit.}  The ingest service's queue (L{tm20.services.ingest.LogIngest}) hands
    L{PostgresStore.writeLogBatches} the batches from all terminals, to write in one
    transaction, as soon as a flush slot is free (or after C{flushInterval} seconds, if set) or
    at C{flushRows} rows, whichever comes first, at most C{maxConcurrentFlushes} at once (the
    store's L{logFlushPolicy}); the returned keys tell each caller its own inserted/duplicates
    counts.  A batch of C{flushRows} rows or more (a back-fill) is written alone.
  - B{COPY ingest.}  A flush runs on a synchronous psycopg2 connection in a thread of a small
    dedicated pool (L{tm20.store._pgcopy.CopyConnections}, one thread per flush slot), since
    txpostgres' asynchronous connections cannot C{COPY}: its rows are copied into a temporary
    staging table, then one statement (C{INSERT ... SELECT ... ON CONFLICT DO NOTHING
    RETURNING} per table, in key order: concurrent flushes, of this or another process, take
    their row locks in the same order and cannot deadlock each other) moves them into their
    tables and writes the event of each row inserted, its payload built by the database from
    the same rows (no Python per event); that statement is prepared once per connection (its
    parse and plan were a large share of the database's work per flush).  Four round trips
    per flush, the commit included.  The flush has a deadline; past it, it fails with
    L{StatementTimeout} and its socket is shut down.  With C{copyIngest=False}, the same flush
    is one C{INSERT ... SELECT FROM unnest(...) ... RETURNING} per table on the asynchronous
    pool (chunks of L{INSERT_CHUNK_ROWS} rows).
  - B{Backpressure.}  At most C{maxQueuedRows} rows wait for a commit in the ingest service's
    queue (it tells its observers when the queue fills and drains; the terminal protocol pauses
    its socket for that reason).
  - B{Notifications.}  L{listen} / L{notify}: C{LISTEN} runs on one dedicated connection (not
    pooled), opened on first use and re-established, with its C{LISTEN}s, after a reconnect
    (notifications sent while it was down are lost, as PostgreSQL does not keep them).
  - B{Differences from SQLite} that no caller should meet: text holding a NUL character is
    refused with C{ValueError} (PostgreSQL text cannot store it), and the pending migrations are
    applied together in one transaction (SQLite applies each in its own).
  - B{Time.}  Server timestamps are C{timestamptz}, "now" is C{clock.seconds()}, read back as
    aware UTC C{datetime}s; log C{time}s are the terminals' text, compared as text with the
    C{"C"} collation, exactly as SQLite compares them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from twisted.internet import defer, task
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tm20.errors import StoreUnavailable
from tm20.events.payloads import (
    localToUTC,
    logEventText,
)
from tm20.interfaces import (
    IAccessStore,
    IAccountStore,
    IClusterStore,
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
from tm20.protocol.storable import requireStorableLog
from tm20.store._accessstore import AccessStoreMixin
from tm20.store._dialect import POSTGRES, logEventJSON, logEventTypeSQL
from tm20.store._health import DEGRADED, OK, UNHEALTHY, HealthMonitor, StoreHealth
from tm20.store._migrations import Migration, loadMigrations, pendingMigrations
from tm20.store._ops import Op, runAsync
from tm20.store._pgcopy import CopyConnections
from tm20.store._pgpool import (
    Cursor,
    Pool,
    StatementTimeout,
    _Connection,
    isRetryable,
    mergeOptions,
)
from tm20.store._postgres_cluster import PostgresClusterMixin
from tm20.store._postgres_events import (
    EVENTS_LOCK_KEY,
    PostgresEventsMixin,
    appendEventRows,
    appendEvents,
    terminalTimezones,
    textArray,
)
from tm20.store._roles import StoreRoles
from tm20.store._rows import (
    StagedBatch,
    dumpJSON,
    formatTimestamp,
    onlyResult,
    utcFromSeconds,
)

#: The place of a batch's result while its flush runs.
_NOT_YET = LogInsertResult(inserted=0, duplicates=0)

_T = TypeVar("_T")

#: The health probe's write (see L{PostgresStore.health}).
_PROBE = (
    "INSERT INTO store_probe (id, probed_at) VALUES (1, %s)"
    " ON CONFLICT (id) DO UPDATE SET probed_at = EXCLUDED.probed_at"
)

#: SQLSTATEs meaning the database answers but cannot write: the store is unhealthy.
_CANNOT_WRITE_CODES = frozenset(
    {
        "25006",  # read_only_sql_transaction (a standby, default_transaction_read_only)
        "53100",  # disk_full
        "58030",  # io_error
    }
)

#: The key of the advisory lock held while migrating ("tm20" in ASCII).
MIGRATION_LOCK_KEY = 0x746D3230

#: The most rows one C{INSERT} statement of a back-fill carries.
INSERT_CHUNK_ROWS = 20_000

_LOG_TABLE = "attendance_logs"
_DOOR_TABLE = "door_events"


_INSERT_LOGS = """
INSERT INTO {table} (sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra,
                     received_at)
SELECT u.sn, u.enrollid, u.time, u.mode, u.inout, u.event, u.temp, u.verifymode, u.image,
       u.extra::json, %s
FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[],
            %s::float8[], %s::bigint[], %s::text[], %s::text[])
     AS u(sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra)
ON CONFLICT (sn, enrollid, time, mode, inout, event) DO NOTHING
RETURNING id, sn, enrollid, time, mode, inout, event
"""

_CHANNEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

#: A log row waiting in the queue: the key fields, then temp, verifymode, image, extra JSON.
_LogItem = tuple[int, str, int, int, int, float | None, int | None, str | None, str, bool]
#: The identity of a stored log: (sn, enrollid, time, mode, inout, event).
_LogKey = tuple[str, int, str, int, int, int]


# -- rows to values --------------------------------------------------------------------------------


def _logItem(record: LogRecord) -> _LogItem:
    """
    A record as it waits in the queue.

    @raise TypeError: a field that must be a number is not one (the caller's mistake: it is
        refused before it can fail a whole group commit).
    """
    time = record.time
    if not isinstance(time, str):
        raise TypeError(f"log time must be text, got {time!r}")
    enrollid, mode, inout, event = record.enrollid, record.mode, record.inout, record.event
    verifymode, temp, image = record.verifymode, record.temp, record.image
    if not (type(enrollid) is int and type(mode) is int and type(inout) is int):
        enrollid, mode, inout = _integer(enrollid), _integer(mode), _integer(inout)
    if type(event) is not int:
        event = _integer(event)
    if verifymode is not None and type(verifymode) is not int:
        verifymode = _integer(verifymode)
    if temp is not None:
        temp = _real(temp)
    requireStorableLog(enrollid, mode, inout, event, verifymode, image)
    return (
        enrollid,
        time,
        mode,
        inout,
        event,
        temp,
        verifymode,
        image,
        dumpJSON(record.extra) if record.extra else "{}",
        record.isDoorEvent,
    )


def _integer(value: Any) -> int:
    if isinstance(value, int):
        return int(value)
    raise TypeError(f"log field must be an integer, got {value!r}")


def _real(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"log field must be a number, got {value!r}")


def _logEventRows(
    ordered: Sequence[tuple[_LogKey, _LogItem]],
    ids: Mapping[_LogKey, int],
    zones: Mapping[str, str | None],
    defaultTimezone: str | None,
    now: datetime,
) -> list[tuple[str, str | None, str]]:
    """
    The events of the rows just inserted (C{ids}: exactly those, from C{RETURNING}; a duplicate
    has no event), in the order the terminals sent them (C{ordered}: each key once), as
    C{(type, sn, payload text)}.
    """
    receivedAt = formatTimestamp(now)
    rows: list[tuple[str, str | None, str]] = []
    for key, item in ordered:
        logId = ids.get(key)
        if logId is None:
            continue
        sn = key[0]
        kind, text = logEventText(
            sn,
            logId,
            item[0],
            item[1],
            item[2],
            item[3],
            item[4],
            item[5],
            item[6],
            item[7] is not None,
            item[8],
            receivedAt,
            zones.get(sn) or defaultTimezone,
        )
        rows.append((kind, sn, text))
    return rows


# -- queries shared by several methods -------------------------------------------------------------


async def _migrate(cur: Cursor, migrations: list[Migration], now: datetime) -> list[int]:
    """Apply the pending C{migrations} under the advisory lock; return the versions applied."""
    await cur.execute("SET LOCAL statement_timeout = 0")
    # Two processes starting at once: the second waits here until the first has committed.
    await cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
    await cur.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer     NOT NULL PRIMARY KEY,
            name       text        NOT NULL,
            applied_at timestamptz NOT NULL
        )
        """
    )
    await cur.execute("SELECT version FROM schema_migrations")
    done = {row[0] for row in cur.fetchall()}
    applied: list[int] = []
    for migration in pendingMigrations(migrations, done):
        for statement in migration.statements():
            await cur.execute(statement)
        await cur.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (migration.version, migration.name, now),
        )
        applied.append(migration.version)
    return applied


def _connectOptions(statementTimeout: float | None) -> str:
    """The libpq C{options}: UTC session time zone, and the server-side statement deadline."""
    options = ["-c timezone=UTC"]
    if statementTimeout is not None:
        options.append(f"-c statement_timeout={int((statementTimeout + 2.0) * 1000)}")
    return " ".join(options)


def migrate(url: str, reactor: Any = None) -> Deferred[list[int]]:
    """
    Apply the pending schema migrations to the database at C{url} and disconnect
    (C{twistd tm20 --migrate-only}).

    @param url: a C{postgresql://} URL (or libpq connection string).
    @param reactor: the reactor (the global one when C{None}, imported only then).
    @return: a L{Deferred} of the versions applied (empty when the schema was current); it fails
        with L{StoreUnavailable} when the database cannot be reached, or C{ValueError} when it
        was migrated by a newer release.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    try:
        migrations = loadMigrations("postgres")
    except ValueError as e:
        return defer.fail(e)
    pool = Pool(
        url, reactor, size=1, statementTimeout=None, name="migrate", options=_connectOptions(None)
    )
    now = utcFromSeconds(reactor.seconds())

    async def run() -> list[int]:
        await pool.start()
        try:
            return await pool.runInteraction(_migrate, migrations, now, timeout=None)
        finally:
            pool.close()

    return Deferred.fromCoroutine(run())


class _Listener:
    """
    The dedicated LISTEN connection: delivers notifications to callbacks by channel and
    re-establishes itself (and its C{LISTEN}s) after the connection is lost, for as long as some
    channel has a callback.
    """

    log = Logger()
    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        reactor: Any,
        reconnectDelay: tuple[float, float],
        connectTimeout: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._connectTimeout = connectTimeout
        self._reactor = reactor
        self._reconnectDelay = reconnectDelay
        self._callbacks: dict[str, list[Callable[[str, str], object]]] = {}
        self._conn: _Connection | None = None
        self._connected = False
        self._connecting = False
        self._listening: set[str] = set()
        self._waiters: list[Deferred[None]] = []
        self._retry: Any = None
        self._failures = 0
        self._closed = False
        # notifications are dispatched through a cooperator on the injected reactor
        self._cooperator = task.Cooperator(scheduler=lambda f: reactor.callLater(0, f))
        #: How many times the connection was established; for tests and metrics.
        self.connections = 0

    def _whenConnected(self) -> Deferred[None]:
        if self._closed:
            return defer.fail(StoreUnavailable("the store is stopped"))
        if self._connected:
            return defer.succeed(None)
        if self._retry is not None:
            # reconnecting after a failure: do not queue callers behind a dead server
            return defer.fail(StoreUnavailable("the LISTEN connection is down; reconnecting"))
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        if not self._connecting:
            self._connect()
        return d

    def _connect(self) -> None:
        self._retry = None
        self._connecting = True
        conn = _Connection(reactor=self._reactor, cooperator=self._cooperator)
        self._conn = conn
        conn.addNotifyObserver(self._notified)
        timedOut = False

        def deadline() -> None:
            # a frozen server never answers the start-up packet: give up, retry later
            nonlocal timedOut
            timedOut = True
            try:
                conn.close()
            except Exception:
                pass

        timer = self._reactor.callLater(self._connectTimeout, deadline)

        async def connect() -> None:
            await conn.connect(
                self._dsn,
                options=mergeOptions(self._dsn, _connectOptions(None)),
                application_name="tm20",
            )
            self._listening = set()
            for channel in list(self._callbacks):
                await conn.runOperation(f'LISTEN "{channel}"')
                self._listening.add(channel)

        def connected(_: object) -> None:
            if timer.active():
                timer.cancel()
            self._connecting = False
            if self._closed or self._conn is not conn:
                conn.close()
                return
            self.connections += 1
            if self._failures:
                self.log.info("LISTEN connection re-established")
            self._failures = 0
            self._connected = True
            conn.onLost = self._lost
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)

        def failed(f: Failure) -> None:
            if timer.active():
                timer.cancel()
            if timedOut:
                f = Failure(StoreUnavailable(f"no answer within {self._connectTimeout}s"))
            self._connecting = False
            try:
                conn.close()
            except Exception:
                pass
            if self._conn is conn:
                self._conn = None
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.errback(StoreUnavailable(f"cannot LISTEN: {f.getErrorMessage()}"))
            self._scheduleReconnect(f)

        Deferred.fromCoroutine(connect()).addCallbacks(connected, failed)

    def _scheduleReconnect(self, reason: Failure | None) -> None:
        if self._closed or not self._callbacks:
            return
        first, largest = self._reconnectDelay
        delay = min(largest, first * (2 ** min(self._failures, 30)))
        if self._failures == 0:
            self.log.warn(
                "LISTEN connection lost ({reason}); reconnecting",
                reason=reason.getErrorMessage() if reason is not None else "closed",
            )
        self._failures += 1
        self._retry = self._reactor.callLater(delay, self._connect)

    def _lost(self, conn: _Connection) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        self._connected = False
        self._listening = set()
        self._scheduleReconnect(None)

    def _notified(self, notify: Any) -> None:
        for callback in list(self._callbacks.get(notify.channel, ())):
            try:
                callback(notify.channel, notify.payload)
            except Exception:
                self.log.failure(
                    "notification callback for {channel} failed", channel=notify.channel
                )

    async def listen(self, channel: str, callback: Callable[[str, str], object]) -> None:
        callbacks = self._callbacks.setdefault(channel, [])
        callbacks.append(callback)
        try:
            await self._whenConnected()
            if channel not in self._listening and self._conn is not None:
                await self._conn.runOperation(f'LISTEN "{channel}"')
                self._listening.add(channel)
        except BaseException as e:
            callbacks.remove(callback)
            if not callbacks:
                self._callbacks.pop(channel, None)
            if isinstance(e, Exception) and not isinstance(e, StoreUnavailable):
                raise StoreUnavailable(f"cannot LISTEN: {e}") from e
            raise

    async def unlisten(self, channel: str, callback: Callable[[str, str], object]) -> None:
        callbacks = self._callbacks.get(channel, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if callbacks:
            return
        self._callbacks.pop(channel, None)
        if channel in self._listening and self._conn is not None and self._connected:
            self._listening.discard(channel)
            try:
                await self._conn.runOperation(f'UNLISTEN "{channel}"')
            except Exception:
                pass  # a lost connection unlistens everything anyway

    def close(self) -> None:
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        conn, self._conn = self._conn, None
        self._connected = False
        if conn is not None:
            conn.onLost = None
            try:
                conn.close()
            except Exception:
                pass
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(StoreUnavailable("the store is stopped"))


@implementer(
    IStore,
    ILogBatchWriter,
    IEventStore,
    IWatchStore,
    IPersonStore,
    IAccountStore,
    IAccessStore,
    IClusterStore,
)
class PostgresStore(PostgresEventsMixin, StoreRoles, AccessStoreMixin, PostgresClusterMixin):
    """
    L{IStore} on PostgreSQL (see the module docstring).

    @ivar dsn: the connection URL or string.
    """

    log = Logger()
    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        reactor: Any = None,
        clock: Any = None,
        poolSize: int = 4,
        statementTimeout: float = 10.0,
        flushInterval: float = 0.0,
        flushRows: int = 500,
        maxQueuedRows: int = 50_000,
        *,
        reconnectDelay: tuple[float, float] = (0.05, 1.0),
        maxConcurrentFlushes: int = 2,
        connectTimeout: float = 5.0,
        healthInterval: float = 2.0,
        copyIngest: bool = True,
    ) -> None:
        """
        @param dsn: a C{postgresql://} URL or libpq connection string.
        @param reactor: I/O and timers (the global reactor when C{None}, imported only then).
        @param clock: gives "now" for the server's timestamps (the reactor when C{None}).
        @param poolSize: connections in the pool.
        @param statementTimeout: the deadline of one statement, in seconds.
        @param flushInterval: the longest a log batch waits to be merged with others while a
            flush slot is free, seconds; 0 (the default): flush at the next reactor turn (batches
            arriving while every slot is busy are merged into the next flush); the ingest
            service's group commit reads it from L{logFlushPolicy}, as the three below.
        @param flushRows: the rows that flush the log queue at once; a batch this large or
            larger is written alone.
        @param maxQueuedRows: the bound of the ingest service's log queue (L{logFlushPolicy}).
        @param reconnectDelay: the first and largest delay between reconnection attempts.
        @param maxConcurrentFlushes: merged log flushes that may run at once.
        @param connectTimeout: the longest a connection attempt may take, in seconds.
        @param healthInterval: seconds between health probes (see L{health}); a probe not
            answered within as long makes the store C{degraded}.
        @param copyIngest: write log group commits with C{COPY} on synchronous connections in
            a small thread pool (C{maxConcurrentFlushes} threads); C{False}: with multi-row
            C{INSERT}s on the asynchronous pool (for comparison).
        """
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.dsn = dsn
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self._statementTimeout = statementTimeout
        self._reconnectDelay = reconnectDelay
        self._pool = Pool(
            dsn,
            reactor,
            size=poolSize,
            statementTimeout=statementTimeout,
            reconnectDelay=reconnectDelay,
            connectTimeout=connectTimeout,
            name="postgres",
            options=_connectOptions(statementTimeout),
        )
        #: How the ingest service's group commit should flush here (L{ILogBatchWriter}): as
        #: many flushes at once as the COPY pool has threads.
        self.logFlushPolicy = LogFlushPolicy(
            flushRows=flushRows,
            flushInterval=flushInterval,
            maxQueuedRows=maxQueuedRows,
            maxConcurrentFlushes=maxConcurrentFlushes,
            isRetryable=isRetryable,
        )
        #: The log flushes running (L{stop} waits for them).
        self._flushing = 0
        #: Fired when the last log flush running ends (L{stop} waits for them).
        self._flushesEnded: list[Deferred[None]] = []
        self._copy: CopyConnections | None = None
        if copyIngest:
            self._copy = CopyConnections(
                dsn,
                reactor,
                size=maxConcurrentFlushes,
                deadline=statementTimeout + connectTimeout,
                connectTimeout=connectTimeout,
                options=_connectOptions(statementTimeout),
                name="tm20-postgres-copy",
                prepare=_prepareCopy,
            )
        self._listener: _Listener | None = None
        self._connectTimeout = connectTimeout
        self._health = HealthMonitor(
            reactor, "postgres", self._probe, interval=healthInterval, overdue=healthInterval
        )
        self._state = "new"
        #: Every migration shipped with this release is applied (set by L{start}).
        self.migrationsApplied = False
        #: Called after a commit that may have appended events (see addEventObserver).
        self._eventObservers: list[Callable[[], object]] = []
        #: The time zone of terminals without their own, for the UTC time of log events
        #: (C{None}: the server's).
        self.defaultTimezone: str | None = None

    @classmethod
    def fromURL(cls, url: str, reactor: Any = None, **kwargs: Any) -> PostgresStore:
        """
        The store for a C{postgresql://} (or C{postgres://}) URL, not started.

        @param kwargs: any other constructor argument (C{poolSize}, ...).
        """
        return cls(url, reactor=reactor, **kwargs)

    def __repr__(self) -> str:
        return f"<PostgresStore {self._state}>"

    # -- plumbing ----------------------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        """The connection pool (for tests and metrics)."""
        return self._pool

    def _now(self) -> datetime:
        return utcFromSeconds(self._clock.seconds())

    def _usable(self) -> StoreUnavailable | None:
        if self._state != "running":
            return StoreUnavailable(f"PostgreSQL store is {self._state}")
        return None

    def runInTransaction(
        self, interaction: Callable[..., Any], *args: Any, timeout: float | None | bool = True
    ) -> Deferred[Any]:
        """
        Run C{await interaction(cursor, *args)} in one transaction on a pooled connection
        (L{tm20.store._pgpool.Cursor}: C{await cursor.execute(sql, params)}, then C{fetchall()}).
        For maintenance tools and tests; the server uses the L{IStore} methods.

        @param timeout: per statement: C{True} for the store's deadline, C{None} for none, or
            seconds.
        @return: a L{Deferred} of the interaction's result, fired after the commit.
        """
        unusable = self._usable()
        if unusable is not None:
            return defer.fail(unusable)
        return self._pool.runInteraction(interaction, *args, timeout=timeout)

    _run = runInTransaction

    def _runAlone(self, interaction: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """
        Run C{await interaction(cursor, *args)} without a transaction around it: for one
        statement that needs none (a read, a notification), one round trip instead of two.
        """
        unusable = self._usable()
        if unusable is not None:
            return defer.fail(unusable)
        return self._pool.runInteraction(interaction, *args, transaction=False)

    def _runOp(self, write: bool, op: Op[_T], single: bool = False) -> Deferred[_T]:
        if single:
            # one statement reads alone as it would in a READ COMMITTED transaction (each
            # statement its own snapshot), and one write is atomic alone (committed when it
            # returns)
            return self._runAlone(runAsync, op, appendEvents)
        return self._run(runAsync, op, appendEvents)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """
        Open the pool and apply the pending migrations.

        @return: a L{Deferred} firing once the schema is current; it fails with
            L{StoreUnavailable} when the database cannot be reached (the store is then stopped).
        """
        if self._state != "new":
            return defer.fail(RuntimeError(f"{self!r} cannot be started again"))
        try:
            migrations = loadMigrations("postgres")
        except ValueError as e:
            return defer.fail(e)
        self._state = "starting"

        async def start() -> None:
            await self._pool.start()
            if self._copy is not None:
                self._copy.start()
            applied = await self._pool.runInteraction(
                _migrate, migrations, self._now(), timeout=None
            )
            self.migrationsApplied = True
            self._state = "running"
            self._health.start()
            self.log.info(
                "PostgreSQL store ready: {size} connections, schema version {version},"
                " applied {applied}",
                size=self._pool.size,
                version=migrations[-1].version if migrations else 0,
                applied=applied,
            )

        def failed(f: Failure) -> Failure:
            # debug: the caller gets the failure and says why, once (see tm20.startup)
            self.log.debug("PostgreSQL store failed to start: {error}", error=f.getErrorMessage())
            self._state = "stopped"
            self._pool.close()
            if self._copy is not None:
                self._copy.stop()
            return f

        return Deferred.fromCoroutine(start()).addErrback(failed)

    def probe(self) -> Deferred[None]:
        """
        Open one connection and close it (before L{start}): fails with L{StoreUnavailable}
        while the database cannot be reached.  For C{--wait-for-database}.
        """
        return self._pool.probe()

    def stop(self) -> Deferred[None]:
        """
        Write the logs still queued, then close every connection.  Later calls fail with
        L{StoreUnavailable}.

        @return: a L{Deferred} firing once closed.
        """
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return defer.succeed(None)
        if self._state == "stopping":
            return defer.fail(RuntimeError(f"{self!r} is already stopping"))
        self._state = "stopping"
        self._health.stop()

        async def stop() -> None:
            # the log flushes already started use the pool directly: they end first
            if self._flushing:
                ended: Deferred[None] = Deferred()
                self._flushesEnded.append(ended)
                await ended
            if self._copy is not None:
                await self._copy.stop()
            if self._listener is not None:
                self._listener.close()
            self._pool.close()
            self._state = "stopped"
            self.log.info("PostgreSQL store closed")

        return Deferred.fromCoroutine(stop())

    def ping(self) -> Deferred[bool]:
        """@return: a L{Deferred} firing with C{True} when C{SELECT 1} works."""

        async def ping(cur: Cursor) -> bool:
            await cur.execute("SELECT 1")
            row = cur.fetchone()
            return row is not None and row[0] == 1

        return self._run(ping)

    def health(self) -> StoreHealth:
        """
        The store's health now, without I/O (see the module docstring); C{unhealthy} unless the
        store is running.
        """
        if self._state != "running":
            return StoreHealth(UNHEALTHY, f"the store is {self._state}", self._reactor.seconds())
        return self._health.current()

    def _probe(self) -> Deferred[tuple[str, str | None]]:
        """Rewrite the row of C{store_probe}: a real write, as any ingest would do."""

        async def probe(cur: Cursor, now: datetime) -> tuple[str, str | None]:
            await cur.execute(_PROBE, (now,))
            return OK, None

        def failed(f: Failure) -> tuple[str, str | None]:
            if getattr(f.value, "pgcode", None) in _CANNOT_WRITE_CODES:
                return UNHEALTHY, f"PostgreSQL cannot write: {f.getErrorMessage().strip()}"
            return DEGRADED, f"PostgreSQL: {f.getErrorMessage().strip()}"

        return self._pool.runInteraction(probe, self._now()).addErrback(failed)

    # -- notifications -----------------------------------------------------------------------------

    def listen(self, channel: str, callback: Callable[[str, str], object]) -> Deferred[None]:
        """
        Call C{callback(channel, payload)} for every notification on C{channel}, from this or
        any other process, until L{unlisten}.

        @param channel: an identifier (letters, digits, C{_}; case-sensitive).
        @return: a L{Deferred} firing once C{LISTEN} is in effect (notifications sent after
            that are delivered); failing with L{StoreUnavailable} if it cannot be set up now.
        """
        if not _CHANNEL.match(channel):
            return defer.fail(ValueError(f"invalid channel name {channel!r}"))
        unusable = self._usable()
        if unusable is not None:
            return defer.fail(unusable)
        if self._listener is None:
            self._listener = _Listener(
                self.dsn, self._reactor, self._reconnectDelay, self._connectTimeout
            )
        return Deferred.fromCoroutine(self._listener.listen(channel, callback))

    def unlisten(self, channel: str, callback: Callable[[str, str], object]) -> Deferred[None]:
        """Stop calling C{callback} for C{channel}.  @return: L{Deferred} of C{None}."""
        if self._listener is None:
            return defer.succeed(None)
        return Deferred.fromCoroutine(self._listener.unlisten(channel, callback))

    def notify(self, channel: str, payload: str = "") -> Deferred[None]:
        """
        Send a notification (C{pg_notify}): delivered when this call's transaction commits.

        @return: L{Deferred} of C{None}.
        """
        if not _CHANNEL.match(channel):
            return defer.fail(ValueError(f"invalid channel name {channel!r}"))

        async def notify(cur: Cursor) -> None:
            await cur.execute("SELECT pg_notify(%s, %s)", (channel, payload))

        # alone, the statement commits (and the notification goes) at once
        return self._runAlone(notify)

    # -- logs --------------------------------------------------------------------------------------

    def addLogs(self, sn: str, records: Sequence[LogRecord]) -> Deferred[LogInsertResult]:
        """
        See L{IStore.addLogs}: C{records} written now in their own transaction
        (L{writeLogBatches} of one batch; the server's road is the ingest service's group
        commit).
        """
        records = list(records)
        if not records:
            return defer.succeed(LogInsertResult(inserted=0, duplicates=0))
        return self.writeLogBatches([StagedBatch(sn, records)]).addCallback(onlyResult)

    def writeLogBatches(
        self, batches: Sequence[LogBatch]
    ) -> Deferred[Sequence[LogInsertResult | Failure]]:
        """
        See L{ILogBatchWriter.writeLogBatches}: one C{COPY} transaction on a thread of the COPY
        pool (L{_flushLogs}); C{duplicates} counts every record not newly stored, repeats within
        the batch included.  A batch holding a record that can never be stored (text with a
        NUL character included) gets its C{ValueError} or C{TypeError}, the others are written.
        """
        unusable = self._usable()
        if unusable is not None:
            return defer.fail(unusable)
        if self._pool.liveConnections == 0:
            return defer.fail(StoreUnavailable("no connection to PostgreSQL"))
        results: list[LogInsertResult | Failure] = []
        staged: list[StagedBatch[_LogItem]] = []
        places: list[int] = []
        for index, batch in enumerate(batches):
            try:
                items = [_logItem(r) for r in batch.items]
            except (TypeError, ValueError):
                results.append(Failure())
                continue
            results.append(_NOT_YET)
            staged.append(StagedBatch(batch.sn, items))
            places.append(index)
        if not staged:
            return defer.succeed(results)

        def written(counts: list[LogInsertResult]) -> list[LogInsertResult | Failure]:
            for index, result in zip(places, counts, strict=True):
                results[index] = result
            return results

        d = self._flushLogs(staged)
        self._flushing += 1
        return d.addCallback(written).addBoth(self._flushEnded)

    def _flushEnded(self, result: _T) -> _T:
        self._flushing -= 1
        if not self._flushing:
            ended, self._flushesEnded = self._flushesEnded, []
            for d in ended:
                d.callback(None)
        return result

    def _flushLogs(
        self, batches: Sequence[StagedBatch[_LogItem]]
    ) -> Deferred[list[LogInsertResult]]:
        """
        Write C{batches} in one transaction; each gets its own counts.

        A key seen twice (in one batch, or in two batches of this flush) is sent once and
        belongs to the first batch holding it; the others count it as a duplicate.
        """
        owners: dict[_LogKey, int] = {}
        # each key once, in the order the terminals sent the records (their events' order)
        unique: list[tuple[_LogKey, _LogItem]] = []
        for index, batch in enumerate(batches):
            sn = batch.sn
            for item in batch.items:
                key = (sn, item[0], item[1], item[2], item[3], item[4])
                if key in owners:
                    continue
                owners[key] = index
                unique.append((key, item))
        now = self._now()

        if self._copy is not None:
            d = self._copy.run(_copyLogs, unique, owners, now, self.defaultTimezone)
            return d.addCallback(
                lambda counts: self._counted(
                    batches, [counts.get(i, 0) for i in range(len(batches))]
                )
            )
        return Deferred.fromCoroutine(self._insertLogs(batches, unique, owners, now))

    async def _insertLogs(
        self,
        batches: Sequence[StagedBatch[_LogItem]],
        unique: list[tuple[_LogKey, _LogItem]],
        owners: Mapping[_LogKey, int],
        now: datetime,
    ) -> list[LogInsertResult]:
        """L{_flushLogs} without C{COPY}: multi-row C{INSERT}s on the asynchronous pool."""
        punches = [row for row in unique if not row[1][9]]
        doors = [row for row in unique if row[1][9]]

        async def insert(cur: Cursor) -> list[tuple[Any, ...]]:
            stored: list[tuple[Any, ...]] = []
            for table, rows in ((_LOG_TABLE, punches), (_DOOR_TABLE, doors)):
                # one lock order for every writer: no deadlock between concurrent flushes
                rows.sort(key=lambda row: row[0])
                for start in range(0, len(rows), INSERT_CHUNK_ROWS):
                    chunk = rows[start : start + INSERT_CHUNK_ROWS]
                    await cur.execute(_INSERT_LOGS.format(table=table), _arrays(now, chunk))
                    stored.extend(cur.fetchall())
            if stored:
                ids = {cast(_LogKey, tuple(row[1:])): row[0] for row in stored}
                zones = await terminalTimezones(cur, {key[0] for key in ids})
                await appendEventRows(
                    cur, _logEventRows(unique, ids, zones, self.defaultTimezone, now), now
                )
            return stored

        return self._flushed(batches, owners, await self._pool.runInteraction(insert))

    def _flushed(
        self,
        batches: Sequence[StagedBatch[_LogItem]],
        owners: Mapping[_LogKey, int],
        stored: Sequence[tuple[Any, ...]],
    ) -> list[LogInsertResult]:
        """Each batch's counts, from the keys a flush inserted (C{RETURNING})."""
        inserted = [0] * len(batches)
        for row in stored:
            owner = owners.get(cast(_LogKey, tuple(row[1:])))
            if owner is not None:
                inserted[owner] += 1
        return self._counted(batches, inserted)

    def _counted(
        self, batches: Sequence[StagedBatch[_LogItem]], inserted: Sequence[int]
    ) -> list[LogInsertResult]:
        """Each batch's counts, from the rows a flush inserted for it."""
        if any(inserted):
            self._eventsCommitted()
        return [
            LogInsertResult(inserted=n, duplicates=len(batch) - n)
            for n, batch in zip(inserted, batches, strict=True)
        ]


#: The staging table of COPY ingest: one per connection, emptied at each commit.  C{ord} is
#: the row's place in the order the terminals sent the records (its event's place in the log),
#: C{batch} is the batch of the flush owning it, C{door} tells its table, C{utc} is its time in
#: UTC (C{timeUTC} of its event).
_STAGE = "tm20_log_stage"

_CREATE_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (
    ord integer, batch integer, door boolean, sn text COLLATE "C", enrollid bigint, time text COLLATE "C",
    mode bigint, inout bigint, event bigint, temp float8, verifymode bigint, image text, extra text, utc text
) ON COMMIT DELETE ROWS
"""

_STAGE_COLUMNS = (
    "ord, batch, door, sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra, utc"
)

_STAGED_ROWS = """
INSERT INTO {table} (sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra,
                     received_at)
SELECT sn, enrollid, time, mode, inout, event, temp, verifymode, image, extra::json,
       %(now)s
FROM {stage}
WHERE {where}
ORDER BY sn, enrollid, time, mode, inout, event
ON CONFLICT (sn, enrollid, time, mode, inout, event) DO NOTHING
RETURNING id, sn, enrollid, time, mode, inout, event
"""


def _stagedColumn(name: str) -> str:
    """A column of a log's event payload in L{_INSERT_STAGED}: staged, or inserted (its id)."""
    if name == "id":
        return "i.id"
    if name == "received_at":
        return "%(receivedAt)s::text"
    return f"s.{name}"


#: One statement moves the staged rows into their tables, in key order (one lock order for
#: every writer), and writes the event of each row inserted (a duplicate has none), built by
#: the database from the same rows, in the order the terminals sent them (its payload is
#: L{tm20.events.payloads.LOG_EVENT_FIELDS}'s: L{logEventJSON}).  @return: C{(batch, rows inserted)}.
_INSERT_STAGED = f"""
WITH p AS ({_STAGED_ROWS.format(table=_LOG_TABLE, stage=_STAGE, where="NOT door")}),
d AS ({_STAGED_ROWS.format(table=_DOOR_TABLE, stage=_STAGE, where="door")}),
ins AS (SELECT * FROM p UNION ALL SELECT * FROM d),
ev AS (
    INSERT INTO events (type, sn, payload, created_at)
    SELECT {logEventTypeSQL("s.enrollid")}, s.sn,
           {logEventJSON(POSTGRES, _stagedColumn)},
           %(now)s
    FROM ins i
    JOIN {_STAGE} s
      ON (s.sn, s.enrollid, s.time, s.mode, s.inout, s.event)
       = (i.sn, i.enrollid, i.time, i.mode, i.inout, i.event)
    ORDER BY s.ord
)
SELECT s.batch, count(*)
FROM ins i
JOIN {_STAGE} s
  ON (s.sn, s.enrollid, s.time, s.mode, s.inout, s.event)
   = (i.sn, i.enrollid, i.time, i.mode, i.inout, i.event)
GROUP BY s.batch
"""

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


_NULL = "\\N"


def _copyText(value: str) -> str:
    """Text as one field of C{COPY}'s text format (most text has nothing to escape)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _stageRow(ord: int, batch: int, sn: str, item: _LogItem, utc: str | None) -> str:
    """
    One staging row in C{COPY}'s text format: one format per row (the numbers were checked by
    L{_logItem}; the time is the parser's canonical form or was checked as text).
    """
    enrollid, time, mode, inout, event, temp, verifymode, image, extra, door = item
    return (
        f"{ord}\t{batch}\t{'t' if door else 'f'}\t{_copyText(sn)}\t{enrollid}\t{_copyText(time)}"
        f"\t{mode}\t{inout}\t{event}\t{_NULL if temp is None else temp}"
        f"\t{_NULL if verifymode is None else verifymode}"
        f"\t{_NULL if image is None else _copyText(image)}\t{_copyText(extra)}"
        f"\t{_NULL if utc is None else utc}\n"
    )


def _copyLogs(
    conn: Any,
    rows: Sequence[tuple[_LogKey, _LogItem]],
    owners: Mapping[_LogKey, int],
    now: datetime,
    defaultTimezone: str | None,
) -> dict[int, int]:
    """
    In a thread of the COPY pool (L{CopyConnections.run}), four round trips, the commit
    included: the transaction opened with the events lock (shared, held to the commit) and the
    terminals' time zones; the rows (each
    key once, in the order the terminals sent them) by C{COPY} into the staging table; then
    L{_INSERT_STAGED} (prepared: L{_FLUSH_STAGED}) moves them into their tables and writes the
    events of those inserted.

    @param owners: the batch (its index in the flush) owning each key.
    @return: the rows inserted, by batch (a batch with none is absent).
    """
    cur = conn.cursor()
    cur.execute(
        "BEGIN; SELECT pg_advisory_xact_lock_shared(%s);"
        " SELECT sn, timezone FROM terminals WHERE sn = ANY(%s)",
        (EVENTS_LOCK_KEY, list({key[0] for key, _ in rows})),
    )
    zones = {row[0]: row[1] or defaultTimezone for row in cur.fetchall()}
    text = "".join(
        [
            _stageRow(
                n,
                owners[key],
                key[0],
                item,
                localToUTC(item[1], zones.get(key[0], defaultTimezone)),
            )
            for n, (key, item) in enumerate(rows)
        ]
    )
    cur.copy_expert(f"COPY {_STAGE} ({_STAGE_COLUMNS}) FROM STDIN", io.StringIO(text))
    cur.execute(_FLUSH_STAGED, {"now": now, "receivedAt": formatTimestamp(now)})
    return {batch: count for batch, count in cur.fetchall()}


#: L{_INSERT_STAGED} prepared once per COPY connection (L{_prepareCopy}): a flush executes it
#: without planning it again (its plan depends on no value: the staging table has no
#: statistics, its parameters are the flush's time).
_PREPARED_STAGED = "tm20_insert_staged"
_FLUSH_STAGED = f"EXECUTE {_PREPARED_STAGED} (%(now)s, %(receivedAt)s)"


def _prepareCopy(conn: Any) -> None:
    """
    A new COPY connection: its staging table (temporary, emptied at each commit) and the
    flush statement prepared (L{_FLUSH_STAGED}), once.
    """
    cur = conn.cursor()
    cur.execute(_CREATE_STAGE)
    statement = _INSERT_STAGED.replace("%(now)s", "$1").replace("%(receivedAt)s", "$2")
    cur.execute(f"PREPARE {_PREPARED_STAGED} (timestamptz, text) AS {statement}")


def _arrays(now: datetime, rows: Sequence[tuple[_LogKey, _LogItem]]) -> list[Any]:
    """
    The parameters of L{_INSERT_LOGS}: C{now}, then one array literal per column.

    Arrays go as their text form (C{'{"a","b"}'}), which the server reads with C{array_in}:
    much cheaper, on both sides, than the C{ARRAY[...]} expression psycopg2 makes of a list.
    """
    return [
        now,
        textArray([key[0] for key, _ in rows]),
        _numberArray([item[0] for _, item in rows]),
        textArray([item[1] for _, item in rows]),
        _numberArray([item[2] for _, item in rows]),
        _numberArray([item[3] for _, item in rows]),
        _numberArray([item[4] for _, item in rows]),
        _numberArray([item[5] for _, item in rows]),
        _numberArray([item[6] for _, item in rows]),
        textArray([item[7] for _, item in rows]),
        textArray([item[8] for _, item in rows]),
    ]


def _numberArray(values: Sequence[float | int | None]) -> str:
    """A PostgreSQL array literal of numbers (checked by L{_logItem}); C{None} is NULL."""
    return "{" + ",".join(["NULL" if value is None else str(value) for value in values]) + "}"


__all__ = [
    "MIGRATION_LOCK_KEY",
    "PostgresStore",
    "StatementTimeout",
    "migrate",
]
