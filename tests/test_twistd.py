"""`twistd tm20` as an operator runs it: a real process, a real socket, a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.serverfixture import RawClient, RunningServer
from tests.test_plugins import writePlugin

TWISTD = str(Path(sys.executable).parent / "twistd")


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def waitForPort(port: int, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"twistd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("twistd did not listen in time")


class TwistdTests(TestCase):
    timeout = 60

    def startTwistd(
        self, *args: str, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], int, Path]:
        workdir = Path(self.mktemp())
        workdir.mkdir()
        port = freePort()
        logFile = workdir / "out.log"
        log = logFile.open("wb")
        proc = subprocess.Popen(
            [
                TWISTD,
                "-n",
                "--pidfile=",
                "tm20",
                "--port",
                f"tcp:{port}:interface=127.0.0.1",
                "--log-format",
                "json",
                *args,
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )

        def stop() -> None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()

        self.addCleanup(stop)
        waitForPort(port, proc)
        return proc, port, logFile

    def test_listedByTwistd(self) -> None:
        out = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60).stdout
        self.assertIn("tm20", out)

    def test_badDatabaseIsAUsageError(self) -> None:
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "tm20", "--database", "mysql://nope"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(
            "--database must be sqlite:PATH or postgresql://", result.stdout + result.stderr
        )
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    @inlineCallbacks
    def test_runsWithCustomPluginAndStopsCleanly(self) -> Any:
        pluginRoot = writePlugin(Path(self.mktemp()))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(pluginRoot), os.getcwd()]))
        proc, port, logFile = self.startTwistd(env=env)
        from tests.serverfixture import connectRaw

        running = RunningServer(service=None, port=port)  # type: ignore[arg-type]
        client: RawClient = yield connectRaw(self, running, "/ws/tm20/")
        reply = yield client.request({"cmd": "reg", "sn": "T1", "devinfo": {"modelname": "tfs30"}})
        self.assertIs(reply["result"], True)
        custom = yield client.request({"cmd": "sendtemp", "sn": "T1", "value": 36.6})
        self.assertEqual(custom, {"ret": "sendtemp", "result": True, "echo": 36.6})
        qr = yield client.request({"cmd": "sendqrcode", "sn": "T1", "record": "abc"})
        self.assertEqual(qr["access"], 1)
        proc.send_signal(signal.SIGTERM)
        _, code, _ = yield client.closed
        self.assertEqual(code, 4001)
        self.assertIsNotNone(proc.wait(timeout=20))
        events = [
            json.loads(line) for line in logFile.read_text().splitlines() if line.startswith("{")
        ]
        self.assertTrue(any("tm20 stopped" in e.get("log_format", "") for e in events))
        self.assertFalse(any(e.get("log_level", {}).get("name") == "critical" for e in events))
        self.assertTrue((Path(logFile).parent / "tm20.sqlite3").exists())
        # the garbage collector settled once started (tm20.collector), with the default
        settled = [e for e in events if "objects frozen" in e.get("log_format", "")]
        self.assertEqual([e["threshold"] for e in settled], [10_000])
        self.assertGreater(settled[0]["frozen"], 1000)


class MigrateOnlyTests(TestCase):
    timeout = 60

    def test_sqliteMigrateOnlyExits(self) -> None:
        import sqlite3

        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        result = subprocess.run(
            [
                TWISTD,
                "-n",
                "--pidfile=",
                "tm20",
                "--database",
                "sqlite:m.sqlite3",
                "--migrate-only",
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with sqlite3.connect(workdir / "m.sqlite3") as db:
            versions = [
                v for (v,) in db.execute("SELECT version FROM schema_migrations ORDER BY version")
            ]
        self.assertGreaterEqual(len(versions), 1)
        self.assertEqual(versions[0], 1)

    def test_postgresMigrateOnlyExits(self) -> None:
        import psycopg2

        from tests import pgharness

        url = pgharness.createDatabase("tm20_migrate")
        self.addCleanup(pgharness.dropDatabase, url)
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "tm20", "--database", url, "--migrate-only"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM schema_migrations")
            self.assertGreaterEqual(cur.fetchone()[0], 1)

    def test_migrateOnlyFailureExitsNonZero(self) -> None:
        result = subprocess.run(
            [
                TWISTD,
                "-n",
                "--pidfile=",
                "tm20",
                "--database",
                f"postgresql://nobody@127.0.0.1:{freePort()}/none",
                "--migrate-only",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("migration failed", result.stdout + result.stderr)


class TacTests(TestCase):
    timeout = 60

    def test_tacConfiguredByEnvironment(self) -> None:
        import urllib.request

        tac = Path(__file__).resolve().parents[1] / "tm20.tac"
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()
        port = freePort()
        env = dict(
            os.environ,
            TM20_WEBSOCKET_PORT=f"tcp:{port}:interface=127.0.0.1",
            DATABASE_URL="sqlite:from-env.sqlite3",
            TM20_LOG_FORMAT="json",
        )
        with (workdir / "out.log").open("wb") as log:
            proc = subprocess.Popen(
                [TWISTD, "-n", "--pidfile=", "-y", str(tac)],
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                waitForPort(port, proc)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    self.assertEqual(json.loads(r.read())["status"], "ok")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
        self.assertTrue((workdir / "from-env.sqlite3").exists())
        lines = (workdir / "out.log").read_text().splitlines()
        self.assertTrue(any(line.startswith("{") and "tm20 stopped" in line for line in lines))
