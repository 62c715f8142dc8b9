"""
Synchronous psycopg2 connections, each used by one thread of a small dedicated pool, for the
work txpostgres' asynchronous connections cannot do: C{COPY} (log ingest, see
L{tm20.store.postgres}).

The reactor never waits for them:

  - connections are opened in the pool's threads (libpq's connect, DNS included, never runs on
    the reactor thread), with C{connect_timeout} and the store's C{statement_timeout};
  - every job has a deadline on its L{Deferred}: when it passes, the job fails with
    L{StatementTimeout} and, if it is running, its socket is shut down (C{shutdown(2)} on a
    duplicate of libpq's descriptor: immediate, no round trip), which ends whatever libpq was
    waiting for in the thread; the connection is then discarded.  A job still waiting for a
    thread when its deadline passes is skipped when its turn comes;
  - the threads are bounded (C{size}); a connection that failed is closed and the next job
    opens a new one, so the writer recovers by itself after a database restart.

Errors meaning the database cannot be used now (connection lost, refused, shutting down) become
L{StoreUnavailable}; others (a value the database refuses) are raised as they are, after the
transaction was rolled back.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from tm20.errors import StoreUnavailable
from tm20.store._pgpool import _UNAVAILABLE_CODES, StatementTimeout, mergeOptions

T = TypeVar("T")


class _Job:
    """One piece of work for a thread, and what the reactor needs to abandon it."""

    __slots__ = ("abandoned", "conn", "lock")

    def __init__(self) -> None:
        self.abandoned = False
        self.conn: Any = None
        self.lock = threading.Lock()


def _shutdownSocket(fd: int) -> None:
    """End libpq's wait on the socket duplicated as C{fd} at once (never blocks); close C{fd}."""
    try:
        with socket.socket(fileno=fd) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class CopyConnections:
    """
    Runs C{function(connection, *args)} in one transaction on a synchronous connection, in a
    bounded thread pool (see the module docstring).
    """

    log = Logger()

    def __init__(
        self,
        dsn: str,
        reactor: Any,
        size: int = 2,
        deadline: float | None = 10.0,
        connectTimeout: float = 5.0,
        options: str | None = None,
        name: str = "postgres-copy",
        prepare: Callable[[Any], object] | None = None,
    ) -> None:
        """
        @param size: threads, hence connections, at most.
        @param deadline: the longest a job may take, waiting for a thread included (seconds;
            C{None}: none).
        @param connectTimeout: libpq's C{connect_timeout} (whole seconds, at least 2).
        @param options: the libpq C{options} (the server-side C{statement_timeout}).
        @param prepare: called with each new connection, in its thread, before its first job
            (and committed): what every job would otherwise repeat, such as creating a
            temporary table, is done once per connection.
        """
        self.dsn = dsn
        self.reactor = reactor
        self.size = size
        self.deadline = deadline
        self.connectTimeout = max(2, int(round(connectTimeout)))
        self.options = mergeOptions(dsn, options)
        self.prepare = prepare
        self._threads = ThreadPool(minthreads=0, maxthreads=size, name=name)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._running = False
        self._jobs: set[_Job] = set()
        self._trigger: Any = None
        #: Connections opened so far (for tests and metrics).
        self.connectionsMade = 0

    def start(self) -> None:
        """Start the threads (connections are opened on first use)."""
        if not self._running:
            self._running = True
            self._threads.start()
            # a process stopping without stop() (say, a failed start-up elsewhere) must not
            # wait for idle threads at exit
            self._trigger = self.reactor.addSystemEventTrigger("during", "shutdown", self._stopNow)

    def _stopNow(self) -> None:
        """At reactor shutdown: abandon what runs (sockets shut down), then join the threads."""
        self._trigger = None
        self._running = False
        for job in list(self._jobs):
            self._abandon(job)
        self._stopThreads()

    def _stopThreads(self) -> None:
        if self._threads.started and not self._threads.joined:
            self._threads.stop()

    def stop(self) -> Deferred[None]:
        """
        Abandon the jobs still running (their sockets are shut down), stop the threads and close
        the idle connections, without blocking the reactor.
        """
        self._running = False
        if self._trigger is not None:
            self.reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
        for job in list(self._jobs):
            self._abandon(job)

        d: Deferred[None] = Deferred()

        def stopThreads() -> None:
            try:
                self._stopThreads()
                with self._lock:
                    idle, self._idle = self._idle, []
                for conn in idle:
                    try:
                        conn.close()
                    except Exception:
                        pass
            finally:
                self.reactor.callFromThread(d.callback, None)

        # joining the threads may take a moment: not on the reactor thread
        thread = threading.Thread(target=stopThreads, name="tm20-copy-stop", daemon=True)
        thread.start()
        return d

    # -- running -------------------------------------------------------------------------------

    def run(self, function: Callable[..., T], *args: Any) -> Deferred[T]:
        """
        Run C{function(connection, *args)} in a thread, in one transaction committed when it
        returns (rolled back when it raises).  The connection is in autocommit mode, so that
        opening the transaction costs no round trip of its own: C{function}'s first statement
        must start it (C{"BEGIN; ..."} sent with its first query).

        @return: a L{Deferred} of its result, fired after the commit; failing with
            L{StoreUnavailable} (the database cannot be used), L{StatementTimeout} (past the
            deadline), or the error C{function} raised.
        """
        if not self._running:
            return _failed(StoreUnavailable("the COPY connections are stopped"))
        job = _Job()
        self._jobs.add(job)
        result: Deferred[T] = Deferred()
        timer = None
        if self.deadline is not None:

            def expired() -> None:
                self._abandon(job)
                if not result.called:
                    result.errback(
                        StatementTimeout(f"COPY ingest abandoned after {self.deadline}s")
                    )

            timer = self.reactor.callLater(self.deadline, expired)
        d: Deferred[T] = deferToThreadPool(
            self.reactor, self._threads, self._inThread, job, function, args
        )

        def done(outcome: T | Failure) -> None:
            self._jobs.discard(job)
            if timer is not None and timer.active():
                timer.cancel()
            if result.called:
                return  # abandoned: the caller was told already
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

        d.addBoth(done)
        return result

    def _abandon(self, job: _Job) -> None:
        fd = None
        with job.lock:
            job.abandoned = True
            # duplicated under the lock: the thread closes the connection only after taking it,
            # so the descriptor cannot have been closed and reused by another socket meanwhile
            if job.conn is not None:
                try:
                    fd = os.dup(job.conn.fileno())
                except Exception:
                    fd = None
        if fd is not None:
            _shutdownSocket(fd)

    # -- in the thread -------------------------------------------------------------------------

    def _connect(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        kwargs: dict[str, Any] = {
            "connect_timeout": self.connectTimeout,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": "tm20-copy",
        }
        if self.options:
            kwargs["options"] = self.options
        conn = psycopg2.connect(self.dsn, **kwargs)
        self.connectionsMade += 1
        try:
            if self.prepare is not None:
                self.prepare(conn)
                conn.commit()
            # psycopg2 would open each transaction with a round trip of its own (BEGIN): the
            # jobs send it with their first statement instead (see run)
            conn.autocommit = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _inThread(self, job: _Job, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        if job.abandoned or not self._running:
            raise StoreUnavailable("abandoned before it started")
        try:
            conn = self._connect()
        except psycopg2.Error as e:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {str(e).strip()}") from e
        with job.lock:
            if job.abandoned:
                conn.close()
                raise StoreUnavailable("abandoned before it started")
            job.conn = conn
        healthy = False
        try:
            try:
                result = function(conn, *args)
                if job.abandoned:
                    raise StoreUnavailable("abandoned before its commit")
                conn.cursor().execute("COMMIT")
                healthy = True
                return result
            except BaseException:
                if not conn.closed:
                    try:
                        # (a warning, not an error, if no transaction is open)
                        conn.cursor().execute("ROLLBACK")
                        healthy = not job.abandoned
                    except Exception:
                        healthy = False
                raise
        except psycopg2.Error as e:
            if conn.closed or _unavailable(e):
                healthy = False
                raise StoreUnavailable(f"PostgreSQL unavailable: {str(e).strip()}") from e
            raise
        finally:
            with job.lock:
                job.conn = None
            if healthy and self._running and not conn.closed:
                with self._lock:
                    self._idle.append(conn)
            else:
                try:
                    conn.close()
                except Exception:
                    pass


def _unavailable(e: psycopg2.Error) -> bool:
    code = getattr(e, "pgcode", None)
    return (
        isinstance(e, psycopg2.InterfaceError)
        or code in _UNAVAILABLE_CODES
        or (isinstance(e, psycopg2.OperationalError) and code is None)
        or code == "57014"  # query_canceled: the server's statement_timeout
    )


def _failed(error: BaseException) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d


__all__ = ["CopyConnections"]
