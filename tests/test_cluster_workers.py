"""
C{--workers 2} for real: C{twistd -n tm20} and C{twistd -ny tm20.tac} on a real PostgreSQL, the
parent sharing one port with two worker processes; simulated terminals on that port; a worker
killed with SIGKILL is replaced; SIGTERM to the parent stops every worker and then the parent.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import pgharness
from tests.clustersupport import TOKEN, call, spawnServer
from tests.serverfixture import sleep
from tests.test_twistd import TWISTD, freePort, waitForPort
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal

ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


class WorkersTests(TestCase):
    timeout = 240

    @inlineCallbacks
    def setUp(self) -> Any:
        self.url = yield threads.deferToThread(pgharness.createDatabase, "tm20_workers")
        self.addCleanup(threads.deferToThread, pgharness.dropDatabase, self.url)
        self.port = freePort()
        self.workdir = Path(self.mktemp()).resolve()
        self.workdir.mkdir()

    def spawn(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return spawnServer(self, argv, self.workdir, env)

    @inlineCallbacks
    def health(self) -> Any:
        code, body = yield call("GET", f"http://127.0.0.1:{self.port}/health")
        self.assertEqual(code, 200, body)
        return body

    @inlineCallbacks
    def liveWorkers(self, count: int) -> Any:
        """Wait until C{count} workers are live nodes, seen from any of them; their pids."""
        pids: dict[str, int] = {}
        for _ in range(150):
            body = yield self.health()
            # read at each renewal: ask a few times so both workers answer
            pids = {n["node"]: n["pid"] for n in body["cluster"]["nodes"]}
            if len(pids) == count and all(alive(p) for p in pids.values()):
                return pids
            yield sleep(0.2)
        self.fail(f"not {count} live workers: {pids}\n{self.log()}")

    def log(self) -> str:
        return (self.workdir / "twistd.log").read_text(errors="replace")

    @inlineCallbacks
    def exercise(self, proc: subprocess.Popen[bytes]) -> Any:
        yield threads.deferToThread(waitForPort, self.port, proc, 30)
        pids = yield self.liveWorkers(2)
        self.assertNotIn(proc.pid, pids.values())  # the parent serves nothing itself
        connections = []
        for i in range(6):
            terminal = SimulatedTerminal(f"WK{i:03d}", logs=50, seed=300 + i)
            connection = TerminalConnection(
                terminal,
                f"ws://127.0.0.1:{self.port}/pub/chat",
                reactor=reactor,
                regRetry=2,
                ackTimeout=2,
                retryPolicy=lambda attempt: 0.3,
            )
            connection.start()
            self.addCleanup(connection.disconnect)
            connections.append(connection)
        yield gatherResults([c.whenAllLogsAcknowledged() for c in connections])
        # every terminal answers a command, whichever worker the request lands on
        for connection in connections:
            code, body = yield call(
                "POST",
                f"http://127.0.0.1:{self.port}/api/terminals/{connection.sn}/command/",
                {"command": "opendoor", "params": {"doornum": 1}},
            )
            self.assertEqual((code, body["status"]), (200, "succeeded"), body)
        # a worker killed is replaced by a new one (a new node); its terminals come back
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        for _ in range(150):
            body = yield self.health()
            now = {n["node"]: n["pid"] for n in body["cluster"]["nodes"]}
            if victim not in now.values() and len(now) == 2:
                break
            yield sleep(0.2)
        self.assertNotIn(victim, now.values(), self.log())
        self.assertEqual(len(now), 2)
        self.assertIn("exited (status None, signal 9); replacing it", self.log())
        for _ in range(150):
            code, body = yield call("GET", f"http://127.0.0.1:{self.port}/api/connected/")
            if body["count"] == len(connections):
                break
            yield sleep(0.2)
        self.assertEqual(body["count"], len(connections))
        self.assertTrue(set(t["node"] for t in body["items"]) <= set(now))
        # SIGTERM to the parent: every worker stops, then the parent, cleanly
        for connection in connections:
            yield connection.disconnect()
        proc.send_signal(signal.SIGTERM)
        code = yield threads.deferToThread(proc.wait, 60)
        # (twistd re-raises the signal that stopped it once it has shut down: -15)
        self.assertIn(code, (0, -signal.SIGTERM), self.log())
        for pid in now.values():
            for _ in range(50):
                if not alive(pid):
                    break
                yield sleep(0.1)
            self.assertFalse(alive(pid), f"worker {pid} survived its parent")
        self.assertIn("tm20 workers stopped", self.log())
        self.assertNotIn("Traceback", self.log())
        # each worker, the replacement included, settled its garbage collector once started
        settled = re.findall(r"young-generation threshold (\d+) \(was", self.log())
        self.assertEqual(settled, ["10000"] * 3, self.log())

    def twistdWorkers(self, *extra: str) -> subprocess.Popen[bytes]:
        """C{twistd -n tm20 --workers 2} on this test's port and database."""
        return self.spawn(
            [
                TWISTD,
                "-n",
                "--pidfile=",
                "tm20",
                "--workers",
                "2",
                "--port",
                f"tcp:{self.port}:interface=127.0.0.1",
                "--database",
                self.url,
                "--api-token",
                TOKEN,
                *extra,
            ],
            {},
        )

    def test_twistd(self) -> Any:
        return self.exercise(self.twistdWorkers("--node-lease", "3"))

    def test_tac(self) -> Any:
        proc = self.spawn(
            [TWISTD, "-ny", str(ROOT / "tm20.tac"), "--pidfile="],
            {
                "TM20_WORKERS": "2",
                "TM20_WEBSOCKET_PORT": f"tcp:{self.port}:interface=127.0.0.1",
                "DATABASE_URL": self.url,
                "TM20_NODE_LEASE": "3",
                "TM20_API_TOKENS": TOKEN,
            },
        )
        return self.exercise(proc)

    @inlineCallbacks
    def test_workersStopWhenTheParentIsKilled(self) -> Any:
        """
        The parent killed with SIGKILL (it cannot stop its workers): each worker is told by the
        kernel and stops; none is left serving the port as an orphan.
        """
        proc = self.twistdWorkers()
        yield threads.deferToThread(waitForPort, self.port, proc, 30)
        pids = yield self.liveWorkers(2)
        proc.kill()
        proc.wait()
        for _ in range(300):
            if not any(alive(p) for p in pids.values()):
                break
            yield sleep(0.1)
        self.assertEqual([p for p in pids.values() if alive(p)], [], self.log())

    @inlineCallbacks
    def test_daemonizedWorkersLogBesideTheParent(self) -> Any:
        argv = [
            TWISTD,
            "--pidfile=tm20.pid",
            "--logfile=tm20.log",
            "tm20",
            "--workers",
            "2",
            "--port",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--database",
            self.url,
            "--api-token",
            TOKEN,
        ]
        launcher = subprocess.run(argv, cwd=self.workdir, env=dict(os.environ), timeout=60)
        self.assertEqual(launcher.returncode, 0)
        pid = int((self.workdir / "tm20.pid").read_text())

        def cleanup() -> None:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

        self.addCleanup(cleanup)
        for _ in range(150):
            try:
                pids = yield self.liveWorkers(2)
                break
            except Exception:
                yield sleep(0.2)
        for index in (0, 1):
            path = self.workdir / f"tm20.log.worker{index}"
            for _ in range(100):  # (written just after the node's row)
                if path.exists() and "cluster node" in path.read_text():
                    break
                yield sleep(0.1)
            self.assertIn("cluster node", path.read_text())
        self.assertIn("worker 1 started", (self.workdir / "tm20.log").read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            if not alive(pid) and not any(alive(p) for p in pids.values()):
                break
            yield sleep(0.1)
        self.assertFalse(alive(pid))
        self.assertFalse(any(alive(p) for p in pids.values()))
