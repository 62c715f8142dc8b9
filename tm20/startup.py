"""
Start-up failures made visible: one line saying why, and a non-zero exit status.

twistd (and C{twist}) log a service's failure to start and then keep running, or exit 0 after
C{reactor.stop()}.  L{ProcessExit} records the status to exit with and applies it once twistd has
finished its own clean-up (pid file, logs); L{explain} turns what went wrong (a port in use, a
SQLite folder missing or read-only, PostgreSQL unreachable, refusing or full) into one line an
operator can act on; L{waitForDatabase} retries a database that is not up yet.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from tm20.errors import StoreUnavailable

log = Logger()

#: The status of a server that could not start.
EXIT_STARTUP_FAILED = 1


class StartupError(Exception):
    """The server cannot start; the message says why, in one line."""


def quietStartupError() -> None:
    """
    Let a L{StartupError} that nothing catches end the process with status 1 and no traceback
    (its line was logged): twistd reports it to its parent, then lets it propagate.
    """
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if not issubclass(kind, StartupError):
            previous(kind, value, tb)

    sys.excepthook = hook


class ProcessExit:
    """
    The exit status of this process.  twistd and C{twist} always exit 0 once their reactor has
    stopped; after L{fail}, the process exits with the recorded status instead, at interpreter
    exit (after twistd has removed its pid file and stopped logging).
    """

    def __init__(self) -> None:
        self.code = 0
        self._installed = False

    def install(self) -> None:
        """Apply the recorded status when the interpreter exits (idempotent)."""
        if not self._installed:
            self._installed = True
            atexit.register(self._exit)

    def fail(self, reactor: Any, code: int = EXIT_STARTUP_FAILED) -> None:
        """Record C{code} and stop C{reactor} (once it runs, if it does not yet)."""
        self.code = code

        def stop() -> None:
            try:
                reactor.stop()
            except Exception:  # already stopping
                pass

        if getattr(reactor, "running", False):
            stop()
        else:
            reactor.callWhenRunning(stop)

    def _exit(self) -> None:
        if self.code:
            for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
                try:
                    if stream is not None:
                        stream.flush()
                except Exception:
                    pass
            os._exit(self.code)


#: The process's exit status (one per process, like the reactor).
processExit = ProcessExit()


def explain(failure: Failure, database: str = "") -> str:
    """
    One line saying why the server could not start, from the failure of its start-up.

    @param database: the database URL or C{sqlite:PATH}, to name the culprit.
    """
    error = failure.value
    if isinstance(error, StartupError):
        return oneLine(str(error))
    if isinstance(error, CannotListenError):
        return _explainListen(error)
    if database.startswith("sqlite:") and isinstance(error, StoreUnavailable):
        return _explainSQLite(database, error)
    if database.startswith(("postgresql://", "postgres://")) and isinstance(
        error, StoreUnavailable
    ):
        return _explainPostgres(database, error)
    return oneLine(failure.getErrorMessage())


def oneLine(text: str) -> str:
    """C{text} with its lines joined (libpq's messages span several)."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def firstLine(text: str) -> str:
    """The first non-blank line of C{text} (libpq's next lines are generic hints)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _explainListen(error: CannotListenError) -> str:
    where = f"{error.interface or '*'}:{error.port}"
    socketError = error.socketError
    code = getattr(socketError, "errno", None)
    if code == errno.EADDRINUSE:
        why = "the address is already in use (another tm20, or another program, listens there)"
    elif code == errno.EACCES:
        why = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    elif code == errno.EADDRNOTAVAIL:
        why = "this machine has no such address"
    else:
        why = oneLine(str(getattr(socketError, "strerror", None) or socketError))
    return f"cannot listen on {where}: {why}"


def sqlitePath(database: str) -> str:
    """The file of a C{sqlite:PATH} URL (C{sqlite:///abs} names C{/abs})."""
    path = database[len("sqlite:") :]
    return path[2:] if path.startswith("//") else path


def _explainSQLite(database: str, error: Exception) -> str:
    path = sqlitePath(database)
    folder = os.path.dirname(os.path.abspath(path))
    ancestor = folder
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if ancestor != folder:
        if os.path.isdir(ancestor):
            why = f"its folder {folder} does not exist (create it, or fix --database)"
        else:
            why = f"its folder {folder} cannot exist: {ancestor} is a file, not a folder"
    elif not os.path.isdir(folder):
        why = f"{folder} is a file, not a folder"
    elif os.path.isdir(path):
        why = f"{path} is a folder, not a file"
    elif _readOnlyFileSystem(folder):
        why = f"its folder {folder} is on a read-only file system"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"its folder {folder} is read-only for this user (uid {os.geteuid()})"
    elif os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        why = f"the file is read-only for this user (uid {os.geteuid()})"
    else:
        cause = error.__cause__ if error.__cause__ is not None else error
        why = oneLine(str(cause))
    return f"cannot open the SQLite database {path}: {why}"


def _readOnlyFileSystem(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _explainPostgres(database: str, error: StoreUnavailable) -> str:
    where = describePostgres(database)
    cause = error.__cause__ if error.__cause__ is not None else error
    detail = firstLine(str(cause)) or type(cause).__name__
    lowered = detail.lower()
    if "too many clients" in lowered or "connection slots are reserved" in lowered:
        why = f"it is full (max_connections reached; tm20 needs --pool-size connections): {detail}"
    elif "password authentication failed" in lowered or (
        "role" in lowered and "does not exist" in lowered
    ):
        why = f"it refused the credentials: {detail}"
    elif "database" in lowered and "does not exist" in lowered:
        why = f"no such database: {detail}"
    elif "no pg_hba.conf entry" in lowered or "not permitted" in lowered:
        why = f"it refused this client: {detail}"
    elif "connection refused" in lowered:
        why = f"unreachable, nothing listens there (is PostgreSQL running?): {detail}"
    elif "timeout" in lowered or "timed out" in lowered or "no answer" in lowered:
        why = f"unreachable, no answer in time: {detail}"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        why = f"unknown host: {detail}"
    elif "starting up" in lowered or "shutting down" in lowered:
        why = f"not ready (try --wait-for-database): {detail}"
    else:
        why = detail
    return f"cannot use PostgreSQL at {where}: {why}"


def describePostgres(url: str) -> str:
    """C{host:port/database} of a PostgreSQL URL, without user or password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(malformed URL)"
    return f"{host}:{port}{parts.path or '/'}"


@inlineCallbacks
def waitForDatabase(store: Any, reactor: Any, seconds: float) -> Any:
    """
    Wait up to C{seconds} for the store's database to accept a connection (the store's
    C{probe()}; stores without one are not waited for).  Returns once it does, or once the time
    is up: the store's own start then reports why it cannot start.
    """
    probe = getattr(store, "probe", None)
    if seconds <= 0 or probe is None:
        return False
    deadline = time.monotonic() + seconds
    began = time.monotonic()
    waited = False
    while True:
        try:
            yield probe()
        except Exception as e:
            left = deadline - time.monotonic()
            if left <= 0:
                return waited
            if not waited:
                log.info(
                    "database not reachable yet ({error}); waiting up to {seconds}s",
                    error=firstLine(str(e)),
                    seconds=seconds,
                )
                waited = True
            yield deferLater(reactor, min(1.0, left), lambda: None)
            continue
        if waited:
            log.info(
                "database reachable after {elapsed}s", elapsed=round(time.monotonic() - began, 1)
            )
        return waited


__all__ = [
    "EXIT_STARTUP_FAILED",
    "ProcessExit",
    "StartupError",
    "describePostgres",
    "explain",
    "firstLine",
    "oneLine",
    "quietStartupError",
    "processExit",
    "sqlitePath",
    "waitForDatabase",
]
