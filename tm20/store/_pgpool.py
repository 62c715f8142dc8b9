"""
A pool of txpostgres connections that recovers on its own.

txpostgres' own C{ConnectionPool} never replaces a connection: once the server restarts (or a
backend is killed) every pooled connection stays broken.  Here each connection lives in a slot
that, when its connection dies, closes it and reconnects with a capped exponential back-off, for
as long as the pool runs.  While no connection is alive, callers fail at once with
L{StoreUnavailable} instead of queueing behind a dead server.

Transactions are run by the pool itself (C{BEGIN} / C{COMMIT} / C{ROLLBACK} on the slot's
connection, which the caller has for itself), not by txpostgres' C{runInteraction}, whose
failed-rollback path logs tracebacks through the legacy logging system.  The C{BEGIN} travels
with the transaction's first statement (C{BEGIN; ...}, one query string: one round trip less per
transaction; the first statement's result is what the cursor shows); a transaction that runs no
statement sends nothing.

Nothing here ever blocks the reactor, even when the server is frozen (a stopped process, a
network black hole: TCP connections are still accepted by the kernel, then nothing answers):

  - Every statement has a deadline.  When it passes, the statement fails with
    L{StatementTimeout} and its connection is I{dropped}: its socket is closed and the slot
    opens a new connection.  libpq's cancel request (C{connection.cancel()}, what txpostgres'
    C{Connection.cancel} calls) is never used: it connects to the server and waits for its
    answer on the calling thread, which would freeze the reactor for as long as the server
    hangs.  On the server, the dropped statement ends at its own C{statement_timeout} (given in
    the connection C{options}, a little longer than the client's deadline) or when it notices the
    closed socket.
  - Every connection attempt has a deadline (C{connectTimeout}, which also covers a start-up
    packet that a frozen server never answers): the attempt is abandoned and retried with a
    capped back-off.  One attempt at a time per slot: attempts never pile up.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
from twisted.internet import defer, error
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from txpostgres import txpostgres

from tm20.errors import StoreUnavailable
from tm20.lanes import isBackground

T = TypeVar("T")


#: Foreground hand-outs in a row after which waiting background work gets a connection anyway.
BACKGROUND_PATIENCE = 8


class StatementTimeout(StoreUnavailable):
    """
    A statement ran past its deadline and its connection was dropped.  Nothing is acknowledged;
    as after any lost connection, a C{COMMIT} that timed out may still have been applied (a
    resent batch is then counted as duplicates).
    """


class _Connection(txpostgres.Connection):
    """
    A txpostgres connection that tells its owner when it dies.

    When an idle connection's backend goes away, txpostgres raises from C{doRead} and Twisted
    logs an "Unhandled Error"; here the error is handed back to the reactor as the reason for
    the loss instead (which is how C{IReadDescriptor.doRead} reports one), so the loss is
    handled quietly and the owner is told through C{onLost}.
    """

    onLost: Callable[[_Connection], None] | None = None

    def doRead(self) -> Any:
        try:
            return super().doRead()
        except (psycopg2.Error, txpostgres.UnexpectedPollResult) as e:
            return e

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        onLost, self.onLost = self.onLost, None
        if onLost is not None:
            onLost(self)

    @property
    def isClosed(self) -> bool:
        """C{True} once the underlying psycopg2 connection is closed or broken."""
        raw = self.pollable()
        return raw is None or bool(raw.closed)


class Cursor:
    """
    What an interaction function gets: C{execute} with a deadline, and the DB-API fetch methods.
    """

    def __init__(self, pool: Pool, conn: _Connection, timeout: float | None) -> None:
        self._pool = pool
        self._conn = conn
        self._cursor = conn.cursor()
        self._timeout = timeout
        #: A transaction is asked for and its C{BEGIN} not sent yet (it goes with the next
        #: statement).
        self.beginPending = False
        #: The C{BEGIN} was sent (a C{COMMIT} or C{ROLLBACK} ends the transaction).
        self.begun = False

    @property
    def connection(self) -> Any:
        """The psycopg2 connection (for C{quote_ident}, C{mogrify}, ...)."""
        return self._conn.pollable()

    async def execute(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        commit: bool = False,
    ) -> Cursor:
        """
        Run one statement.

        @param commit: it is the transaction's last, and its result is not needed: the
            C{COMMIT} goes with it, in the same query string (its result is then the
            C{COMMIT}'s; nothing to fetch).  No effect outside a transaction.
        @return: this cursor, to fetch from.
        @raise StatementTimeout: the statement ran past the deadline; the connection was
            dropped (see the module docstring).
        """
        if self.beginPending:
            self.beginPending = False
            self.begun = True
            sql = "BEGIN; " + sql
        committing = commit and self.begun
        if committing:
            sql += "; COMMIT"
        d: Deferred[Any] = self._cursor.execute(sql, params)
        timer = None
        expired = False

        def deadline() -> None:
            nonlocal expired
            expired = True
            self._pool._drop(self._conn, f"a statement ran past its {self._timeout}s deadline")

        if self._timeout is not None and not d.called:
            timer = self._pool.reactor.callLater(self._timeout, deadline)
        try:
            await d
        except Exception:
            if expired:
                raise StatementTimeout(
                    f"statement abandoned after {self._timeout}s: {sql.split(None, 3)[:3]}"
                ) from None
            raise
        finally:
            if timer is not None and timer.active():
                timer.cancel()
        if committing:
            # committed (a failure left `begun` set: the pool rolls back)
            self.begun = False
        return self

    @property
    def description(self) -> Any:
        """The DB-API description of the last statement's columns (C{None} if it had none)."""
        return self._cursor.description

    def fetchall(self) -> list[tuple[Any, ...]]:
        """All rows of the last statement."""
        rows: list[tuple[Any, ...]] = self._cursor.fetchall()
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row of the last statement, or C{None}."""
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        return row

    @property
    def rowcount(self) -> int:
        """The rows the last statement touched."""
        count: int = self._cursor.rowcount
        return count


class _State(enum.Enum):
    CONNECTING = "connecting"
    IDLE = "idle"
    BUSY = "busy"
    DOWN = "down"


class _Slot:
    """One place in the pool: a connection, or the wait before making one."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = _State.DOWN
        self.conn: _Connection | None = None
        self.broken = False
        self.failures = 0
        self.retry: Any = None
        #: Why the connection was dropped on purpose (for the log line), if it was.
        self.dropped: str | None = None
        #: Lent to background work (L{tm20.lanes}) now.
        self.background = False


#: Errors that, when the connection is still open, still mean the database cannot serve us now.
_UNAVAILABLE_CODES = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "53300",  # too_many_connections
        "08000",
        "08003",
        "08006",
        "08001",
        "08004",
    }
)


class Pool:
    """
    A fixed-size pool of txpostgres connections that reconnects dead ones by itself.

    @ivar reactor: the reactor for I/O and timers.
    """

    log = Logger()

    def __init__(
        self,
        dsn: str,
        reactor: Any,
        size: int = 4,
        statementTimeout: float | None = 10.0,
        connectTimeout: float = 5.0,
        reconnectDelay: tuple[float, float] = (0.05, 1.0),
        connectionFactory: Callable[[Any], _Connection] | None = None,
        name: str = "pool",
        options: str | None = None,
    ) -> None:
        """
        @param dsn: a libpq URL or key/value connection string.
        @param reactor: provides C{IReactorFDSet} and C{IReactorTime}.
        @param size: the number of connections.
        @param statementTimeout: the default deadline of one statement, in seconds (C{None}: none).
        @param connectTimeout: how long a connection attempt may take.
        @param reconnectDelay: the first and the largest delay between reconnection attempts.
        @param connectionFactory: makes a L{_Connection} for a reactor (for tests).
        @param name: names the pool in log messages.
        @param options: the libpq C{options} of every connection, e.g.
            C{"-c statement_timeout=12000"}: set the server-side deadline there (a little longer
            than C{statementTimeout}) as a backstop.
        """
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.dsn = dsn
        self.reactor = reactor
        self.statementTimeout = statementTimeout
        self.connectTimeout = connectTimeout
        self.reconnectDelay = reconnectDelay
        self.name = name
        self.options = options
        self._factory = connectionFactory or (lambda r: _Connection(reactor=r))
        self._slots = [_Slot(i) for i in range(size)]
        self._idle: deque[_Slot] = deque()
        self._waiters: deque[Deferred[_Slot]] = deque()
        #: Background work waiting for a connection (L{tm20.lanes}): served when no
        #: foreground work waits (or after L{BACKGROUND_PATIENCE} foreground hand-outs in a row),
        #: and never with every connection of the pool.
        self._backgroundWaiters: deque[Deferred[_Slot]] = deque()
        self._backgroundBusy = 0
        self._foregroundStreak = 0
        self._running = False
        self._starting = False
        self._startWaiters: list[Deferred[None]] = []
        #: How many times a connection was (re)established; for tests and metrics.
        self.connectionsMade = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def _connectArgs(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": "tm20",
        }
        options = mergeOptions(self.dsn, self.options)
        if options:
            args["options"] = options
        return args

    def start(self) -> Deferred[None]:
        """
        Open every connection.

        @return: a L{Deferred} firing once all are open, or failing with L{StoreUnavailable}
            (the pool is then closed) when the database cannot be reached.
        """
        self._running = True
        self._starting = True
        attempts = [self._connect(slot) for slot in self._slots]
        d = defer.DeferredList(attempts, fireOnOneErrback=True, consumeErrors=True)

        def started(_: object) -> None:
            self._starting = False

        def failed(f: Failure) -> Failure:
            self._starting = False
            self.close()
            original = f.value.subFailure if isinstance(f.value, defer.FirstError) else f
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL: {original.getErrorMessage()}"
            ) from original.value

        return d.addCallbacks(started, failed)

    def probe(self) -> Deferred[None]:
        """
        Open one connection, as the pool would, and close it: fails with L{StoreUnavailable}
        like L{start} when the database cannot be reached (to wait for it before starting).
        """
        conn = self._factory(self.reactor)
        timer = self.reactor.callLater(self.connectTimeout, self._connectTimedOut, conn)
        d: Deferred[Any] = conn.connect(self.dsn, **self._connectArgs())

        def done(_: object) -> None:
            if timer.active():
                timer.cancel()
            self._closeConn(conn)

        def failed(f: Failure) -> None:
            if timer.active():
                timer.cancel()
            elif timer.called:
                f = self._timedOut()
            self._closeConn(conn)
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL: {f.getErrorMessage()}"
            ) from f.value

        return d.addCallbacks(done, failed)

    def close(self) -> None:
        """Close every connection and stop reconnecting; waiting callers fail."""
        self._running = False
        for slot in self._slots:
            if slot.retry is not None and slot.retry.active():
                slot.retry.cancel()
            slot.retry = None
            if slot.conn is not None:
                self._closeConn(slot.conn)
            slot.conn = None
            slot.state = _State.DOWN
        self._idle.clear()
        self._failWaiters("the database pool is closed")

    @property
    def liveConnections(self) -> int:
        """The connections open now (idle or in use)."""
        return sum(
            1
            for slot in self._slots
            if slot.state in (_State.IDLE, _State.BUSY) and not slot.broken
        )

    @property
    def size(self) -> int:
        """The number of connections the pool keeps."""
        return len(self._slots)

    def _closeConn(self, conn: _Connection) -> None:
        conn.onLost = None
        try:
            if conn.pollable() is not None:
                conn.close()
        except Exception:  # closing a broken connection may complain; it is gone either way
            pass

    def _connect(self, slot: _Slot) -> Deferred[None]:
        slot.retry = None
        slot.state = _State.CONNECTING
        slot.broken = False
        conn = self._factory(self.reactor)
        slot.conn = conn
        timedOut = False

        def deadline() -> None:
            nonlocal timedOut
            timedOut = True
            self._connectTimedOut(conn)

        timer = self.reactor.callLater(self.connectTimeout, deadline)
        d: Deferred[Any] = conn.connect(self.dsn, **self._connectArgs())

        def connected(_: object) -> None:
            if timer.active():
                timer.cancel()
            if not self._running or slot.conn is not conn:
                self._closeConn(conn)
                return
            conn.onLost = lambda c: self._lost(slot, c)
            slot.failures = 0
            self.connectionsMade += 1
            if self.connectionsMade > len(self._slots):
                self.log.info(
                    "{pool}: connection {slot} re-established", pool=self.name, slot=slot.index
                )
            self._release(slot)

        def failed(f: Failure) -> Failure:
            if timer.active():
                timer.cancel()
            if timedOut:
                f = Failure(
                    StoreUnavailable(
                        f"no answer to a connection attempt within {self.connectTimeout}s"
                    )
                )
            self._closeConn(conn)
            if slot.conn is conn:
                slot.conn = None
                slot.state = _State.DOWN
                # at start-up, the failed start says why (once); nothing to reconnect
                if self._running and not self._starting:
                    self._scheduleReconnect(slot, f)
            return f

        d.addCallbacks(connected, failed)
        return d

    def _timedOut(self) -> Failure:
        """What a connection attempt closed by its deadline failed with (not "closed cleanly")."""
        return Failure(
            StoreUnavailable(f"no answer to a connection attempt within {self.connectTimeout}s")
        )

    def _connectTimedOut(self, conn: _Connection) -> None:
        # closing makes the pending connect() fail (a frozen server accepts the TCP connection
        # in the kernel and never answers the start-up packet: only this deadline ends it)
        try:
            conn.close()
        except Exception:
            pass

    def _scheduleReconnect(self, slot: _Slot, reason: Failure | None) -> None:
        first, largest = self.reconnectDelay
        delay = min(largest, first * (2 ** min(slot.failures, 30)))
        if slot.failures == 0:
            self.log.warn(
                "{pool}: connection {slot} lost ({reason}); reconnecting",
                pool=self.name,
                slot=slot.index,
                reason=(
                    reason.getErrorMessage()
                    if reason is not None
                    else slot.dropped or "closed by the server"
                ),
            )
        slot.failures += 1

        def retry() -> None:
            if self._running and slot.state is _State.DOWN:
                self._connect(slot).addErrback(lambda f: None)

        slot.retry = self.reactor.callLater(delay, retry)

    def _drop(self, conn: _Connection, why: str) -> None:
        """
        Close C{conn} now, without waiting for the server (whose answer may never come): the
        statement running on it fails, and its slot opens a new connection once released.
        """
        for slot in self._slots:
            if slot.conn is conn:
                slot.broken = True
                slot.dropped = why
                break
        self._closeConn(conn)

    def _lost(self, slot: _Slot, conn: _Connection) -> None:
        """The connection of C{slot} died on its own (server restart, killed backend)."""
        if slot.conn is not conn:
            return
        if slot.state is _State.BUSY:
            # the statement in flight fails; the slot is recycled when it is released
            slot.broken = True
        elif slot.state is _State.IDLE:
            self._idle.remove(slot)
            self._down(slot, None)
        if self.liveConnections == 0:
            self._failWaiters("lost every connection to PostgreSQL")

    def _down(self, slot: _Slot, reason: Failure | None) -> None:
        if slot.conn is not None:
            self._closeConn(slot.conn)
        slot.conn = None
        slot.state = _State.DOWN
        slot.broken = False
        if self._running:
            self._scheduleReconnect(slot, reason)
        slot.dropped = None

    def _failWaiters(self, why: str) -> None:
        waiters, self._waiters = self._waiters, deque()
        background, self._backgroundWaiters = self._backgroundWaiters, deque()
        for d in (*waiters, *background):
            d.errback(StoreUnavailable(why))

    @property
    def _backgroundRoom(self) -> bool:
        """Whether background work may take one more connection (one is kept for the rest)."""
        return self._backgroundBusy < max(1, len(self._slots) - 1)

    def _lend(self, slot: _Slot, background: bool) -> _Slot:
        slot.state = _State.BUSY
        slot.background = background
        if background:
            self._backgroundBusy += 1
        return slot

    # -- checkout ------------------------------------------------------------------------------

    def _acquire(self) -> Deferred[_Slot]:
        if not self._running:
            return defer.fail(StoreUnavailable("the database pool is not running"))
        background = isBackground()
        if not background or (not self._waiters and self._backgroundRoom):
            while self._idle:
                slot = self._idle.popleft()
                if slot.conn is None or slot.conn.isClosed:
                    # died while idle, and the reactor has not told us yet
                    self._down(slot, None)
                    continue
                return defer.succeed(self._lend(slot, background))
        if self.liveConnections == 0:
            return defer.fail(StoreUnavailable("no connection to PostgreSQL"))
        d: Deferred[_Slot] = Deferred()
        (self._backgroundWaiters if background else self._waiters).append(d)
        return d

    def _release(self, slot: _Slot) -> None:
        if slot.background:
            slot.background = False
            self._backgroundBusy -= 1
        conn = slot.conn
        if slot.broken or conn is None or conn.isClosed:
            self._down(slot, None)
            if self.liveConnections == 0:
                self._failWaiters("lost every connection to PostgreSQL")
            return
        backgroundTurn = (
            self._backgroundWaiters
            and self._backgroundRoom
            and (not self._waiters or self._foregroundStreak >= BACKGROUND_PATIENCE)
        )
        if backgroundTurn:
            self._foregroundStreak = 0
            self._backgroundWaiters.popleft().callback(self._lend(slot, True))
        elif self._waiters:
            self._foregroundStreak += 1
            self._waiters.popleft().callback(self._lend(slot, False))
        else:
            slot.state = _State.IDLE
            self._idle.append(slot)

    # -- running work --------------------------------------------------------------------------

    def runInteraction(
        self,
        interaction: Callable[..., Awaitable[T]],
        *args: Any,
        timeout: float | None | bool = True,
        transaction: bool = True,
    ) -> Deferred[T]:
        """
        Run C{interaction(cursor, *args)} in one transaction on a pooled connection.

        @param interaction: an C{async} function taking a L{Cursor}; its result is the result.
        @param timeout: the deadline of each statement: C{True} for the pool's default,
            C{None}/C{False} for none, or a number of seconds.
        @param transaction: C{False}: no transaction around it (each statement commits on its
            own), for an interaction of one read-only statement.
        @return: a L{Deferred} of its result, failing with L{StoreUnavailable} when the database
            cannot be used (nothing was committed), L{StatementTimeout} when a statement ran too
            long, or the error the interaction raised (the transaction was rolled back).
        """
        limit = self.statementTimeout if timeout is True else (timeout or None)
        return Deferred.fromCoroutine(self._run(interaction, args, limit, transaction))

    def runQuery(
        self, sql: str, params: Sequence[Any] | None = None, timeout: float | None | bool = True
    ) -> Deferred[list[tuple[Any, ...]]]:
        """Run one statement outside an explicit transaction and return its rows."""

        async def query(cur: Cursor) -> list[tuple[Any, ...]]:
            await cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

        limit = self.statementTimeout if timeout is True else (timeout or None)
        return Deferred.fromCoroutine(self._run(query, (), limit, False))

    async def _run(
        self,
        interaction: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        timeout: float | None,
        transaction: bool,
    ) -> T:
        slot = await self._acquire()
        conn = slot.conn
        assert conn is not None
        cur: Cursor | None = None
        try:
            try:
                cur = Cursor(self, conn, timeout)
                # BEGIN goes with the first statement (see the module docstring)
                cur.beginPending = transaction
                result = await interaction(cur, *args)
                cur.beginPending = False
                if cur.begun:
                    await cur.execute("COMMIT")
                    cur.begun = False
                return result
            except BaseException as e:
                if cur is not None and cur.begun and not conn.isClosed and not slot.broken:
                    cur.begun = False
                    try:
                        await cur.execute("ROLLBACK")
                    except Exception:
                        slot.broken = True
                translated = self._translate(e, conn, slot)
                if translated is e:
                    raise
                raise translated from e
        finally:
            self._release(slot)

    def _translate(self, e: BaseException, conn: _Connection, slot: _Slot) -> BaseException:
        """The exception a caller should see for C{e}."""
        if isinstance(e, StoreUnavailable):
            return e
        dead = conn.isClosed or slot.broken
        if isinstance(e, psycopg2.Error):
            code = getattr(e, "pgcode", None)
            if (
                dead
                or isinstance(e, psycopg2.InterfaceError)
                or code in _UNAVAILABLE_CODES
                or (isinstance(e, psycopg2.OperationalError) and code is None)
            ):
                slot.broken = slot.broken or dead
                return StoreUnavailable(f"PostgreSQL unavailable: {str(e).strip()}")
            return e
        if dead and isinstance(e, (error.ConnectionLost, error.ConnectionDone, CancelledError)):
            return StoreUnavailable("the connection to PostgreSQL was lost")
        return e


def mergeOptions(dsn: str, options: str | None) -> str | None:
    """
    The libpq C{options} for a connection to C{dsn}: those the DSN gives (for instance a
    C{search_path} in C{?options=-c%20search_path%3Dtm20}) followed by C{options}, which win.
    """
    try:
        given = psycopg2.extensions.parse_dsn(dsn).get("options")
    except psycopg2.ProgrammingError:
        given = None  # psycopg2.connect will say what is wrong with it
    parts = [part for part in (given, options) if part]
    return " ".join(parts) if parts else None


def isUniqueViolation(e: BaseException | None) -> bool:
    """C{True} for a unique-constraint violation (SQLSTATE 23505)."""
    return isinstance(e, psycopg2.IntegrityError) and getattr(e, "pgcode", None) == "23505"


def isRetryable(e: BaseException | None) -> bool:
    """C{True} for a deadlock or serialization failure: running it again may succeed."""
    return isinstance(e, psycopg2.extensions.TransactionRollbackError)


__all__ = [
    "Cursor",
    "Pool",
    "StatementTimeout",
    "isRetryable",
    "isUniqueViolation",
    "mergeOptions",
]
