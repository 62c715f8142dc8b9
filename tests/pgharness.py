"""
PostgreSQL for the tests: an existing server named by C{TM20_TEST_DATABASE_URL}, or a throwaway
cluster started on first use and stopped when the test process exits.

  - L{databaseURL}: the URL of an administrative database (C{CREATE DATABASE} is allowed there).
  - L{createDatabase} / L{dropDatabase}: a fresh empty database (tens of milliseconds).
  - L{createSchema} / L{dropSchema}: a fresh empty schema, named as the C{search_path} in the
    URL's C{options} (a few milliseconds): what the store contract tests use.
  - L{Cluster}: a private cluster (C{initdb} + C{pg_ctl}) that a test may stop and start, e.g. the
    chaos test, which must kill the server and so never uses a shared one.

PostgreSQL is never silently skipped: when no server can be had, L{HarnessError} explains why and
every test needing it fails.

C{initdb} refuses to run as root; as root the cluster is created and run as the C{postgres} user
(C{runuser -u postgres}), its data directory in a temporary directory owned by that user.  The
binaries are looked up on C{PATH}, then in C{/usr/lib/postgresql/*/bin} (newest first).

Everything here is blocking (plain psycopg2 and subprocesses): it runs between tests, never while a
reactor is expected to be responsive.
"""

from __future__ import annotations

import atexit
import glob
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions

#: The environment variable naming an existing server to test against.
URL_VARIABLE = "TM20_TEST_DATABASE_URL"


class HarnessError(RuntimeError):
    """PostgreSQL could not be obtained for the tests; the message says why and what to do."""


def _binDir() -> str:
    """The directory holding C{initdb} and C{pg_ctl}."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return os.path.dirname(os.path.realpath(found))

    def versionKey(path: str) -> tuple[int, ...]:
        version = path.rstrip("/").split("/")[-2]
        return tuple(int(part) for part in version.split(".") if part.isdigit())

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/"), key=versionKey, reverse=True)
    for candidate in candidates:
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate.rstrip("/")
    raise HarnessError(
        f"PostgreSQL is needed for these tests: set {URL_VARIABLE} to a server URL "
        "(postgresql://user@host:port/db, CREATEDB allowed), or install the PostgreSQL server "
        "binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin."
    )


def _freePort() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """
    A private PostgreSQL cluster in a temporary directory, listening on a loopback port.

    Tuned for tests: C{fsync=off} (no crash of the machine is simulated, only of the server, and
    the operating system keeps what was written) but C{synchronous_commit=on}, so a commit that
    was acknowledged survives C{pg_ctl stop -m immediate}.
    """

    def __init__(self) -> None:
        self._bin = _binDir()
        self._asUser: list[str] = []
        self.baseDir = tempfile.mkdtemp(prefix="tm20-pg-")
        self.dataDir = os.path.join(self.baseDir, "data")
        self.logFile = os.path.join(self.baseDir, "server.log")
        self.port = _freePort()
        self.running = False
        self._frozen: list[int] = []
        if os.geteuid() == 0:
            try:
                import pwd

                entry = pwd.getpwnam("postgres")
            except KeyError as e:
                raise HarnessError(
                    "running as root, and initdb refuses root: create a 'postgres' user "
                    f"or set {URL_VARIABLE}"
                ) from e
            os.chown(self.baseDir, entry.pw_uid, entry.pw_gid)
            self._asUser = ["runuser", "-u", "postgres", "--"]
        self._run(
            [
                "initdb",
                "-D",
                self.dataDir,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        with open(os.path.join(self.dataDir, "postgresql.conf"), "a") as conf:
            conf.write(
                "\n# tm20 test cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.baseDir}'\n"
                "fsync = off\n"
                "full_page_writes = off\n"
                "synchronous_commit = on\n"
                "autovacuum = off\n"
                "max_connections = 200\n"
                "shared_buffers = 64MB\n"
                "log_min_messages = warning\n"
                "log_min_error_statement = panic\n"
            )
        self._startWatchdog()

    def _startWatchdog(self) -> None:
        """
        Make sure the server does not outlive this process, however it ends (a test runner
        killed by a timeout runs no C{atexit}): a small shell loop stops the server and deletes
        the cluster once this process is gone, and exits by itself once the cluster is deleted.
        """
        pgctl = " ".join(
            shlex.quote(part) for part in [*self._asUser, os.path.join(self._bin, "pg_ctl")]
        )
        data = shlex.quote(self.dataDir)
        script = (
            f"while kill -0 {os.getpid()} 2>/dev/null && [ -d {data} ]; do sleep 1; done; "
            f"if [ -d {data} ]; then {pgctl} stop -D {data} -m immediate >/dev/null 2>&1; "
            f"rm -rf {shlex.quote(self.baseDir)}; fi"
        )
        subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary (as the C{postgres} user when we are root)."""
        argv = [*self._asUser, os.path.join(self._bin, argv[0]), *argv[1:]]
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                + self._logTail()
            )
        return result

    def _logTail(self) -> str:
        try:
            with open(self.logFile) as f:
                return "\nserver log:\n" + "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def url(self, dbname: str = "postgres") -> str:
        """The URL of database C{dbname} on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(["pg_ctl", "start", "-w", "-t", "60", "-D", self.dataDir, "-l", self.logFile])
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: C{mode} is C{smart}, C{fast} or C{immediate} (a crash)."""
        self._run(["pg_ctl", "stop", "-w", "-t", "60", "-D", self.dataDir, "-m", mode])
        self.running = False

    def pids(self) -> list[int]:
        """
        The postmaster and every process it started (backends, checkpointer, ...), read from
        C{postmaster.pid} and C{/proc}.
        """
        with open(os.path.join(self.dataDir, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        pids = [postmaster]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            # the command name (in parentheses) may hold spaces: the fields after it are fixed
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry))
        return pids

    def freeze(self, atMost: float = 60.0) -> None:
        """
        Freeze the server (SIGSTOP to the postmaster and all its children): it accepts TCP
        connections (in the kernel's backlog) and answers nothing.  Undo with L{thaw}; a timer
        thread thaws it anyway after C{atMost} seconds, so that a test whose reactor the freeze
        blocks (the bug such a test looks for) still ends.
        """
        self._frozen = self.pids()
        for pid in self._frozen:
            os.kill(pid, signal.SIGSTOP)
        timer = threading.Timer(atMost, self.thaw)
        timer.daemon = True
        timer.start()

    def clientConnections(self) -> int:
        """The TCP connections to this server open now on this machine, from the client side."""
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    lines = f.readlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                remotePort = int(fields[2].rsplit(":", 1)[1], 16)
                if remotePort == self.port and fields[3] == "01":  # ESTABLISHED
                    count += 1
        return count

    def thaw(self) -> None:
        """Resume a server frozen by L{freeze} (harmless when it is not frozen)."""
        frozen, self._frozen = self._frozen, []
        pids = set(frozen)
        try:
            pids.update(self.pids())
        except (OSError, ValueError):
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def destroy(self) -> None:
        """Stop the server (if running) and delete the cluster."""
        if self.running:
            self.thaw()
            self._run(["pg_ctl", "stop", "-w", "-D", self.dataDir, "-m", "immediate"], check=False)
            self.running = False
        shutil.rmtree(self.baseDir, ignore_errors=True)


_lock = threading.RLock()
_cluster: Cluster | None = None
_adminURL: str | None = None


def ownsCluster() -> bool:
    """C{True} when the tests run against a cluster this process started."""
    return os.environ.get(URL_VARIABLE) is None


def databaseURL() -> str:
    """
    The URL of an administrative database: C{TM20_TEST_DATABASE_URL}, else the database
    C{postgres} of a private cluster started now (once per process, stopped at exit).

    @raise HarnessError: no PostgreSQL could be obtained.
    """
    global _cluster, _adminURL
    with _lock:
        if _adminURL is not None:
            return _adminURL
        given = os.environ.get(URL_VARIABLE)
        if given:
            _check(given)
            _adminURL = given
            return given
        cluster = Cluster()
        try:
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        atexit.register(cluster.destroy)
        _cluster = cluster
        _adminURL = cluster.url()
        _check(_adminURL)
        return _adminURL


def _check(url: str) -> None:
    """Fail clearly when C{url} does not answer."""
    try:
        conn = psycopg2.connect(url, connect_timeout=10)
    except psycopg2.Error as e:
        raise HarnessError(f"cannot connect to the test PostgreSQL at {redact(url)}: {e}") from e
    conn.close()


def redact(url: str) -> str:
    """C{url} without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def withDatabase(serverURL: str, dbname: str) -> str:
    """C{serverURL} with its database name replaced by C{dbname}."""
    parts = urlsplit(serverURL)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _admin(sql: str, serverURL: str | None = None) -> None:
    conn = psycopg2.connect(serverURL or databaseURL(), connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            if "{strategy}" in sql:
                # FILE_COPY (PostgreSQL 15+) copies the small template0 far faster than the
                # default WAL_LOG; older servers only have the file copy anyway
                strategy = " STRATEGY FILE_COPY" if conn.server_version >= 150000 else ""
                sql = sql.replace("{strategy}", strategy)
            cur.execute(sql)
    finally:
        conn.close()


def createDatabase(prefix: str = "tm20_test", serverURL: str | None = None) -> str:
    """
    Create a new empty database (from C{template0}).

    @param prefix: the start of its name (letters, digits, C{_}).
    @param serverURL: the server to create it on; the default is L{databaseURL}.
    @return: its URL.
    """
    server = serverURL or databaseURL()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}".lower()
    _admin(f'CREATE DATABASE "{name}" TEMPLATE template0{{strategy}}', server)
    return withDatabase(server, name)


def dropDatabase(url: str) -> None:
    """Drop the database of C{url}, disconnecting whoever is still connected to it."""
    name = urlsplit(url).path.lstrip("/")
    admin = databaseURL() if serverMatches(url) else withDatabase(url, "postgres")
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', admin)


def serverMatches(url: str) -> bool:
    """C{True} when C{url} is on the same server as L{databaseURL} (without starting one)."""
    if _adminURL is None:
        return False
    return urlsplit(url).netloc == urlsplit(_adminURL).netloc


_schemaDatabase: str | None = None


def createSchema(prefix: str = "tm20_test") -> str:
    """
    A new empty schema in a database shared by the tests, as a URL whose C{options} make it the
    C{search_path}: to a store, as good as an empty database, and many times faster to make.

    @return: the URL; pass it to L{dropSchema} when done.
    """
    global _schemaDatabase
    with _lock:
        if _schemaDatabase is None:
            _schemaDatabase = createDatabase("tm20_schemas")
            if not ownsCluster():
                atexit.register(dropDatabase, _schemaDatabase)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}".lower()
    _admin(f'CREATE SCHEMA "{name}"', _schemaDatabase)
    parts = urlsplit(_schemaDatabase)
    query = f"options=-c%20search_path%3D{name}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def dropSchema(url: str) -> None:
    """Drop the schema of a URL made by L{createSchema}, with everything in it."""
    options = psycopg2.extensions.parse_dsn(url).get("options", "")
    name = options.split("search_path=", 1)[1].split()[0]
    _admin(f'DROP SCHEMA IF EXISTS "{name}" CASCADE', url)


def stopCluster(mode: str = "fast") -> None:
    """
    Stop the shared private cluster.

    @raise HarnessError: the tests use C{TM20_TEST_DATABASE_URL}, a server we do not own.
    """
    databaseURL()
    if _cluster is None:
        raise HarnessError(f"the server of {URL_VARIABLE} is not ours to stop")
    _cluster.stop(mode)


def startCluster() -> None:
    """Start the shared private cluster again after L{stopCluster}."""
    databaseURL()
    if _cluster is None:
        raise HarnessError(f"the server of {URL_VARIABLE} is not ours to start")
    _cluster.start()


__all__ = [
    "Cluster",
    "HarnessError",
    "URL_VARIABLE",
    "createDatabase",
    "createSchema",
    "databaseURL",
    "dropDatabase",
    "dropSchema",
    "ownsCluster",
    "redact",
    "startCluster",
    "stopCluster",
    "withDatabase",
]
