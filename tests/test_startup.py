"""
A server that cannot start says why in one line and exits 1, within seconds: real C{twistd}
(and C{twist}) processes, a real port in use, real folders, a real PostgreSQL refusing or full.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twisted.logger import eventFromJSON, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests import pgharness
from tests.test_twistd import TWISTD, freePort, waitForPort

BIN = Path(sys.executable).parent
TWIST = str(BIN / "twist")
TAC = str(Path(__file__).resolve().parents[1] / "tm20.tac")
REPO = Path(__file__).resolve().parents[1]

#: Levels an operator reads as "something is wrong".
_PROBLEM_LEVELS = ("warn", "error", "critical")


class Run:
    """A finished server process: its status, its log events (JSON lines) and other output."""

    def __init__(self, code: int, output: str, elapsed: float) -> None:
        self.code = code
        self.output = output
        self.elapsed = elapsed
        self.events: list[dict[str, Any]] = []
        self.other: list[str] = []
        for line in output.splitlines():
            if line.startswith("{"):
                self.events.append(eventFromJSON(line))
            elif line.strip():
                self.other.append(line)

    def lines(self, *levels: str) -> list[str]:
        return [
            formatEvent(e)
            for e in self.events
            if e.get("log_level") and e["log_level"].name in levels
        ]

    def problems(self) -> list[str]:
        return self.lines(*_PROBLEM_LEVELS)


def run(
    testCase: TestCase,
    argv: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> Run:
    if cwd is None:
        cwd = Path(testCase.mktemp()).resolve()
        cwd.mkdir()
    began = time.monotonic()
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=dict(os.environ, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return Run(result.returncode, result.stdout, time.monotonic() - began)


def tm20(*args: str) -> list[str]:
    return [TWISTD, "-n", "--pidfile=", "tm20", "--log-format", "json", *args]


def local(port: int) -> str:
    return f"tcp:{port}:interface=127.0.0.1"


def withUser(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, ""))


def assertOneLine(testCase: TestCase, result: Run, *needles: str) -> str:
    """Status 1, no traceback, and exactly one line at warn or above: the critical one."""
    testCase.assertEqual(result.code, 1, result.output)
    testCase.assertNotIn("Traceback", result.output)
    problems = result.problems()
    testCase.assertEqual(len(problems), 1, result.output)
    line = problems[0]
    testCase.assertTrue(line.startswith("tm20 could not start: "), line)
    testCase.assertNotIn("\n", line)
    for needle in needles:
        testCase.assertIn(needle, line)
    testCase.assertEqual(result.lines("critical"), [line])
    return line


class StartupFailureTests(TestCase):
    """Each way of failing to start: status 1, one line (level critical) saying why."""

    timeout = 120

    def test_portInUse(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run(self, tm20("--port", local(port)))
        assertOneLine(
            self, result, f"cannot listen on 127.0.0.1:{port}", "the address is already in use"
        )

    def test_portInUseUnderTwist(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run(self, [TWIST, "--log-format=json", "tm20", "--port", local(port)])
        assertOneLine(self, result, f"cannot listen on 127.0.0.1:{port}")

    def test_portInUseUnderTac(self) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run(
                self,
                [TWISTD, "-n", "--pidfile=", "-y", TAC],
                env={"TM20_WEBSOCKET_PORT": local(port), "TM20_LOG_FORMAT": "json"},
            )
        assertOneLine(self, result, f"cannot listen on 127.0.0.1:{port}")

    def test_portInUseUnderMakeRun(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        with socket.socket() as busy:
            busy.bind(("0.0.0.0", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = run(
                self,
                [
                    "make",
                    "-s",
                    "-C",
                    str(REPO),
                    "run",
                    f"PORT={port}",
                    f"DATABASE=sqlite:{workdir}/tm20.sqlite3",
                ],
            )
        self.assertNotEqual(result.code, 0, result.output)
        self.assertNotIn("Traceback", result.output)
        failures = [line for line in result.output.splitlines() if "could not start" in line]
        self.assertEqual(len(failures), 1, result.output)
        self.assertIn(f"cannot listen on *:{port}: the address is already in use", failures[0])

    def test_tlsKeyMissingIsNotBlamedOnTheDatabase(self) -> None:
        port = freePort()
        result = run(
            self,
            tm20("--port", f"ssl:{port}:privateKey=nokey.pem:interface=127.0.0.1"),
        )
        assertOneLine(self, result, f"cannot listen on ssl:{port}:", "nokey.pem")

    def test_sqliteFolderMissing(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        result = run(
            self,
            tm20("--port", local(freePort()), "--database", "sqlite:missing/tm20.sqlite3"),
            cwd=workdir,
        )
        assertOneLine(
            self,
            result,
            f"cannot open the SQLite database missing/tm20.sqlite3: its folder"
            f" {workdir / 'missing'} does not exist",
        )

    def test_sqliteFileIsNotADatabase(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        (workdir / "tm20.sqlite3").write_bytes(b"not SQLite at all " * 300)
        result = run(self, tm20("--port", local(freePort())), cwd=workdir)
        assertOneLine(self, result, "cannot open the SQLite database tm20.sqlite3: file is not a")

    def test_sqliteFolderIsAFile(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        (workdir / "afile").write_text("not a folder")
        result = run(
            self,
            tm20("--port", local(freePort()), "--database", f"sqlite:{workdir}/afile/x.sqlite3"),
            cwd=workdir,
        )
        assertOneLine(self, result, f"{workdir / 'afile'} is a file, not a folder")

    def test_sqliteFolderReadOnly(self) -> None:
        # root ignores permission bits, not a read-only file system: mount one
        folder = Path(self.mktemp()).resolve()
        folder.mkdir()
        if os.geteuid() == 0:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], check=True)
            self.addCleanup(subprocess.run, ["umount", str(folder)], check=True)
            expected = f"its folder {folder} is on a read-only file system"
        else:
            folder.chmod(0o555)
            self.addCleanup(folder.chmod, 0o755)
            expected = f"its folder {folder} is read-only for this user"
        result = run(
            self,
            tm20("--port", local(freePort()), "--database", f"sqlite:{folder}/tm20.sqlite3"),
        )
        assertOneLine(self, result, expected)

    def test_postgresUnreachable(self) -> None:
        port = freePort()
        result = run(
            self,
            tm20(
                "--port",
                local(freePort()),
                "--database",
                f"postgresql://tm20@127.0.0.1:{port}/tm20",
            ),
        )
        assertOneLine(
            self,
            result,
            f"cannot use PostgreSQL at 127.0.0.1:{port}/tm20: unreachable, nothing listens there",
            "Connection refused",
        )

    def test_postgresThatNeverAnswers(self) -> None:
        with socket.socket() as silent:  # the kernel accepts; nothing ever answers
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            result = run(
                self,
                tm20(
                    "--port",
                    local(freePort()),
                    "--database",
                    f"postgresql://tm20@127.0.0.1:{port}/tm20",
                ),
            )
        assertOneLine(
            self, result, "unreachable, no answer in time", "no answer to a connection attempt"
        )

    def test_postgresRefusesTheRole(self) -> None:
        url = withUser(pgharness.databaseURL(), "nosuchrole")
        result = run(self, tm20("--port", local(freePort()), "--database", url))
        assertOneLine(
            self, result, "it refused the credentials", 'role "nosuchrole" does not exist'
        )

    def test_postgresNoSuchDatabase(self) -> None:
        url = pgharness.withDatabase(pgharness.databaseURL(), "no_such_database")
        result = run(self, tm20("--port", local(freePort()), "--database", url))
        assertOneLine(self, result, "no such database")

    def test_postgresFull(self) -> None:
        cluster = pgharness.Cluster()
        self.addCleanup(cluster.destroy)
        with open(os.path.join(cluster.dataDir, "postgresql.conf"), "a") as conf:
            conf.write("max_connections = 3\nsuperuser_reserved_connections = 0\n")
        cluster.start()
        import psycopg2

        held = []
        try:
            while True:
                held.append(psycopg2.connect(cluster.url(), connect_timeout=10))
        except psycopg2.OperationalError as e:
            self.assertIn("too many clients", str(e))
        self.addCleanup(lambda: [c.close() for c in held])
        result = run(self, tm20("--port", local(freePort()), "--database", cluster.url()))
        assertOneLine(self, result, "it is full (max_connections reached", "too many clients")

    def test_malformedPostgresURL(self) -> None:
        result = run(
            self,
            tm20("--port", local(freePort()), "--database", "postgresql://u@host:notaport/db"),
            timeout=30,
        )
        self.assertEqual(result.code, 1, result.output)
        self.assertNotIn("Traceback", result.output)
        self.assertEqual(result.events, [])
        self.assertIn(
            "--database: malformed PostgreSQL URL: Port could not be cast to integer value as"
            " 'notaport'",
            result.other[-1],
        )


class WaitForDatabaseTests(TestCase):
    timeout = 180

    def test_databaseNeverComes(self) -> None:
        port = freePort()
        result = run(
            self,
            tm20(
                "--port",
                local(freePort()),
                "--database",
                f"postgresql://tm20@127.0.0.1:{port}/tm20",
                "--wait-for-database",
                "2",
            ),
        )
        assertOneLine(self, result, "unreachable")
        self.assertGreaterEqual(result.elapsed, 2)
        waiting = [line for line in result.lines("info") if "waiting up to 2" in line]
        self.assertEqual(len(waiting), 1, result.output)

    def test_databaseComesUpLater(self) -> None:
        cluster = pgharness.Cluster()
        self.addCleanup(cluster.destroy)
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        port = freePort()
        logFile = workdir / "out.log"
        with logFile.open("wb") as log:
            proc = subprocess.Popen(
                tm20("--port", local(port), "--database", cluster.url()),
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, TM20_WAIT_FOR_DATABASE="60"),
            )

            def stop() -> None:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

            self.addCleanup(stop)
            deadline = time.monotonic() + 30
            while not any(
                "waiting up to 60" in line for line in Run(0, logFile.read_text(), 0).lines("info")
            ):
                self.assertIsNone(proc.poll(), logFile.read_text())
                self.assertLess(time.monotonic(), deadline, "never said it was waiting")
                time.sleep(0.1)
            cluster.start()
            waitForPort(port, proc, seconds=60)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
                self.assertEqual(json.loads(r.read())["status"], "ok")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        result = Run(proc.returncode, logFile.read_text(), 0)
        self.assertEqual(result.problems(), [], result.output)
        self.assertTrue(any("database reachable after" in x for x in result.lines("info")))


class TacEnvironmentTests(TestCase):
    timeout = 60

    def test_badEnvironmentValueIsOneLine(self) -> None:
        for variable, value, needle in [
            ("TM20_HEARTBEAT_INTERVAL", "abc", "TM20_HEARTBEAT_INTERVAL must be a number"),
            ("DATABASE_URL", "postgresql://u@h:notaport/db", "DATABASE_URL: malformed"),
            ("TM20_LOG_LEVEL", "loud", "--log-level must be one of"),
        ]:
            result = run(
                self, [TWISTD, "-n", "--pidfile=", "-y", TAC], env={variable: value}, timeout=30
            )
            self.assertEqual(result.code, 1, result.output)
            self.assertNotIn("Traceback", result.output)
            lines = [line for line in result.output.splitlines() if line.strip()]
            self.assertEqual(len(lines), 1, result.output)
            self.assertTrue(lines[0].startswith("tm20.tac: "), lines[0])
            self.assertIn(needle, lines[0])


class DaemonLogTests(TestCase):
    """C{twistd tm20} without C{-n}: the log goes to C{twistd.log}, or to C{--logfile}."""

    timeout = 90

    def daemon(
        self, workdir: Path, *twistdArgs: str, port: int | None = None, args: tuple[str, ...] = ()
    ) -> int:
        port = freePort() if port is None else port
        subprocess.run(
            [TWISTD, *twistdArgs, "tm20", "--port", local(port), *args],
            cwd=workdir,
            check=True,
            timeout=60,
        )
        pidFile = workdir / "twistd.pid"

        def kill() -> None:
            try:
                os.kill(int(pidFile.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass

        self.addCleanup(kill)
        return port

    def waitForPidFileGone(self, workdir: Path) -> None:
        deadline = time.monotonic() + 30
        while (workdir / "twistd.pid").exists():
            self.assertLess(time.monotonic(), deadline, "the daemon did not stop")
            time.sleep(0.1)

    def test_twistdLog(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        port = self.daemon(workdir)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except (urllib.error.URLError, OSError):
                self.assertLess(time.monotonic(), deadline, "the daemon did not listen")
                time.sleep(0.1)
        os.kill(int((workdir / "twistd.pid").read_text()), signal.SIGTERM)
        self.waitForPidFileGone(workdir)
        text = (workdir / "twistd.log").read_text()
        self.assertIn(f"listening on {local(port)}", text)
        self.assertIn("tm20 stopped", text)

    def test_logfileOption(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        (workdir / "logs").mkdir(parents=True)
        port = self.daemon(workdir, "--logfile", "logs/tm20.log", args=("--log-format", "json"))
        deadline = time.monotonic() + 30
        log = workdir / "logs" / "tm20.log"
        while not log.exists() or "listening on" not in log.read_text():
            self.assertLess(time.monotonic(), deadline, "the daemon did not listen")
            time.sleep(0.1)
        os.kill(int((workdir / "twistd.pid").read_text()), signal.SIGTERM)
        self.waitForPidFileGone(workdir)
        result = Run(0, log.read_text(), 0)
        self.assertEqual(result.other, [])  # JSON lines only: --log-format applies
        self.assertTrue(any(f"listening on {local(port)}" in x for x in result.lines("info")))
        self.assertFalse((workdir / "twistd.log").exists())

    def test_tacDaemonLogsToTwistdLogAndReportsFailure(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        port = freePort()
        env = dict(os.environ, TM20_WEBSOCKET_PORT=local(port))
        subprocess.run([TWISTD, "-y", TAC], cwd=workdir, env=env, check=True, timeout=60)
        self.addCleanup(
            lambda: (
                os.kill(int((workdir / "twistd.pid").read_text()), signal.SIGTERM)
                if (workdir / "twistd.pid").exists()
                else None
            )
        )
        deadline = time.monotonic() + 30
        log = workdir / "twistd.log"
        while not log.exists() or "listening on" not in log.read_text():
            self.assertLess(time.monotonic(), deadline, "the daemon did not listen")
            time.sleep(0.1)
        # a second one on the same port: twistd's parent says it could not start
        other = workdir / "other"
        other.mkdir()
        result = run(self, [TWISTD, "-y", TAC], env={"TM20_WEBSOCKET_PORT": local(port)}, cwd=other)
        self.assertEqual(result.code, 1, result.output)
        self.assertIn("StartupError: cannot listen on", result.output)
        self.assertIn("tm20 could not start: cannot listen on", (other / "twistd.log").read_text())
        os.kill(int((workdir / "twistd.pid").read_text()), signal.SIGTERM)
        self.waitForPidFileGone(workdir)

    def test_startupFailureExitsNonZeroWithOneLine(self) -> None:
        cases = [
            ("port", ["--database", "sqlite:tm20.sqlite3"], "the address is already in use"),
            ("sqlite", ["--database", "sqlite:missing/x.sqlite3"], "does not exist"),
            (
                "postgres",
                ["--database", f"postgresql://tm20@127.0.0.1:{freePort()}/tm20"],
                "unreachable",
            ),
        ]
        for name, args, needle in cases:
            workdir = Path(self.mktemp()).resolve()
            workdir.mkdir()
            with socket.socket() as busy:
                busy.bind(("127.0.0.1", 0))
                busy.listen()
                port = busy.getsockname()[1] if name == "port" else freePort()
                result = run(
                    self,
                    [TWISTD, "tm20", "--port", local(port), "--log-format", "json", *args],
                    cwd=workdir,
                )
            # the parent reports what the daemon could not do
            self.assertEqual(result.code, 1, name)
            self.assertIn("An error has occurred", result.output)
            self.assertIn("StartupError: cannot", result.output)
            self.waitForPidFileGone(workdir)
            logged = Run(1, (workdir / "twistd.log").read_text(), 0)
            assertOneLine(self, logged, needle)
            self.assertEqual(logged.other, [], name)


class QuickStartTests(TestCase):
    """The README's quick start: `make token`, then an authenticated call to `make run`'s server."""

    timeout = 120

    def test_makeTokenThenFirstAuthenticatedCall(self) -> None:
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        database = f"sqlite:{workdir}/tm20.sqlite3"
        made = subprocess.run(
            ["make", "-s", "-C", str(REPO), "token", "NAME=me", f"DATABASE={database}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(made.returncode, 0, made.stdout + made.stderr)
        secret = made.stdout.strip().splitlines()[-1]
        port = freePort()
        with (workdir / "out.log").open("wb") as log:
            proc = subprocess.Popen(
                tm20("--port", local(port), "--database", database),
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                waitForPort(port, proc)
                url = f"http://127.0.0.1:{port}/api/terminals/"
                with self.assertRaises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(url, timeout=10)
                self.assertEqual(refused.exception.code, 401)
                body = json.loads(refused.exception.read())
                self.assertIn("make token", body["detail"])
                request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
                with urllib.request.urlopen(request, timeout=10) as r:
                    self.assertEqual(r.status, 200)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        readme = (REPO / "README.md").read_text()
        quickStart = readme.split("### Quick start", 1)[1].split("\n## ", 1)[0]
        for step in ("make run", "make token NAME=me", "Authorization: Bearer $TOKEN"):
            self.assertIn(step, quickStart)


class PreflightPortTests(SynchronousTestCase):
    """The daemon's early port check reads endpoint strings as Twisted does."""

    def test_busyPortsAreFoundWhateverTheSpelling(self) -> None:
        from twisted.internet.error import CannotListenError

        from tm20.preflight import checkPort

        with socket.socket(socket.AF_INET6) as busy6, socket.socket() as busy4:
            busy6.bind(("::1", 0))
            busy6.listen()
            busy4.bind(("127.0.0.1", 0))
            busy4.listen()
            port6, port4 = busy6.getsockname()[1], busy4.getsockname()[1]
            for spec in (
                f"tcp6:{port6}:interface=\\:\\:1:backlog=5",
                f"tcp:port={port4}:interface=127.0.0.1",
                f"ssl:{port4}:privateKey=k.pem:interface=127.0.0.1",
            ):
                with self.assertRaises(CannotListenError, msg=spec):
                    checkPort(spec)
        checkPort(f"tcp:{freePort()}:interface=127.0.0.1")
        checkPort("unix:/nonexistent/tm20.sock")  # left to the real start-up
