"""
The real service under test (C{twistd tm20}) and its database.

  - L{Databases}: PostgreSQL databases for the runs: on the server given by C{--database-url},
    or on a private throwaway cluster (L{tests.pgharness.Cluster}, C{initdb} + C{pg_ctl}) so that
    the benchmark never depends on a PostgreSQL already running.
  - L{ServerProcess}: C{twistd -n tm20 ...} in a child process with a raised open-files limit;
    its CPU and RSS are read from C{/proc}; py-spy can profile it.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from bench.procinfo import WANTED_NOFILE, ProcSample, sample, treeCPU, treeSample

#: Extra settings of the private cluster: production durability (fsync on), room for the ingest.
CLUSTER_SETTINGS = """
# tm20 benchmark cluster (appended after the test harness's settings, so these win)
fsync = on
full_page_writes = on
synchronous_commit = on
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
max_connections = 200
"""


def freePort(host: str = "127.0.0.1") -> int:
    """A TCP port free on C{host} now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Databases:
    """Where the PostgreSQL databases of the runs are created."""

    def __init__(self, url: str | None = None, fsync: bool = True) -> None:
        from tests import pgharness

        self._harness = pgharness
        self.cluster: Any = None
        if url:
            self.adminURL = url
            self.note = "the server given by --database-url"
        else:
            cluster = pgharness.Cluster()
            with open(os.path.join(cluster.dataDir, "postgresql.conf"), "a") as conf:
                conf.write(CLUSTER_SETTINGS)
                if not fsync:
                    conf.write("fsync = off\nfull_page_writes = off\n")
            try:
                cluster.start()
            except BaseException:
                cluster.destroy()
                raise
            self.cluster = cluster
            self.adminURL = cluster.url()
            self.note = (
                "a private cluster started for the run (initdb; "
                + (
                    "fsync and synchronous_commit on"
                    if fsync
                    else "fsync OFF, synchronous_commit on"
                )
                + ", shared_buffers 256MB), data on the machine's disk"
            )

    def create(self, prefix: str) -> str:
        """A new empty database; its URL."""
        url: str = self._harness.createDatabase(prefix, serverURL=self.adminURL)
        return url

    def drop(self, url: str) -> None:
        try:
            self._harness.dropDatabase(url)
        except Exception as e:  # a leftover database is not worth failing the report
            print(f"bench: could not drop {url}: {e}", file=sys.stderr)

    def version(self) -> str:
        import psycopg2

        conn = psycopg2.connect(self.adminURL)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                row = cur.fetchone()
                return str(row[0]) if row else "?"
        finally:
            conn.close()

    def cpu(self) -> float | None:
        """CPU seconds of the private cluster (postmaster and its backends), if ours."""
        if self.cluster is None:
            return None
        try:
            with open(os.path.join(self.cluster.dataDir, "postmaster.pid")) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return None
        return treeCPU(pid)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.destroy()
            self.cluster = None


def _raiseLimit() -> None:
    """In the server's child process, before exec: the open-files limit (C{ulimit -n})."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (WANTED_NOFILE, WANTED_NOFILE))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def twistdPath() -> str:
    """The C{twistd} of the interpreter running the benchmark (the venv's)."""
    candidate = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(candidate):
        return candidate
    found = shutil.which("twistd")
    if found is None:
        raise RuntimeError("twistd not found: run `make install` first")
    return found


class ServerProcess:
    """C{twistd -n --pidfile= tm20 --port tcp:PORT:interface=127.0.0.1 --database URL ...}"""

    def __init__(
        self,
        database: str,
        token: str = "bench-secret",
        extraArgs: Sequence[str] = (),
        workdir: str | None = None,
    ) -> None:
        self.database = database
        self.token = token
        self.port = freePort()
        self.workdir = workdir or tempfile.mkdtemp(prefix="tm20-bench-")
        self.logPath = os.path.join(self.workdir, "twistd.log")
        self.argv = [
            twistdPath(),
            "-n",
            "--pidfile=",
            "tm20",
            "--port",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--database",
            database,
            "--api-token",
            f"bench:{token}",
            "--log-level",
            "warn",
            *extraArgs,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        self._log = open(self.logPath, "ab")
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_raiseLimit,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twistd tm20 exited at start:\n{self.logTail()}")
            try:
                status, _ = self.request("GET", "/health", timeout=2.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"twistd tm20 not healthy within {timeout}s:\n{self.logTail()}")

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 30.0
    ) -> tuple[int, Any]:
        """One HTTP request to the server (authenticated); C{(status, decoded JSON or None)}."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            return apiCall(conn, method, path, self.token, body)
        finally:
            conn.close()

    def sample(self) -> ProcSample:
        return sample(self.pid)

    def treeSample(self) -> ProcSample:
        """CPU and RSS of the server and every process below it (C{--workers}: the workers)."""
        return treeSample(self.pid)

    def logTail(self, lines: int = 30) -> str:
        try:
            with open(self.logPath, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def errorLines(self) -> list[str]:
        """Lines of the server's log that report errors or tracebacks."""
        try:
            with open(self.logPath, errors="replace") as f:
                return [
                    line.rstrip()
                    for line in f
                    if "Traceback" in line
                    or "[critical]" in line.lower()
                    or "error" in line.lower()
                ]
        except OSError:
            return []

    def profile(
        self, seconds: float, out: str, rate: int = 200, subprocesses: bool = False
    ) -> subprocess.Popen[bytes] | None:
        """
        Start C{py-spy record} on the server for C{seconds} (raw collapsed stacks to C{out});
        C{None} when py-spy is not installed (C{make bench-deps}).  C{subprocesses}: the
        workers of C{--workers} too.
        """
        pyspy = os.path.join(os.path.dirname(sys.executable), "py-spy")
        if not os.path.exists(pyspy):
            found = shutil.which("py-spy")
            if found is None:
                return None
            pyspy = found
        return subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(self.pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                out,
                *(["--subprocesses"] if subprocesses else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait (bounded), then SIGKILL; the exit status."""
        if self.process is None:
            return None
        code: int | None = self.process.poll()
        if code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


def apiCall(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    """One request on a (kept-alive) connection; C{(status, decoded JSON body or None)}."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = None
    return response.status, decoded


__all__ = ["Databases", "ServerProcess", "apiCall", "freePort", "twistdPath"]
