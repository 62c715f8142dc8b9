"""
The whole server on PostgreSQL under failure, with simulated terminals over loopback:

  - chaos: PostgreSQL crashes (C{pg_ctl stop -m immediate}) and restarts while 20 terminals upload;
  - crash: the server process is killed (SIGKILL) mid-upload and restarted.

Afterwards every log a terminal saw acknowledged is stored exactly once, and nothing sent is lost.
Both run on a private cluster (they kill things), whatever C{TM20_TEST_DATABASE_URL} says.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
from twisted.internet import reactor, threads
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.serverfixture import privateDatabase, sleep, startServer
from tests.test_twistd import TWISTD, freePort, waitForPort
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal
from tm20.store.postgres import PostgresStore

TERMINALS = 20
LOGS_PER_TERMINAL = 300


def rowCounts(url: str) -> dict[str, int]:
    """Stored punches + door events per terminal, and the number of distinct keys (blocking)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT sn, count(*) FROM ("
            " SELECT sn FROM attendance_logs UNION ALL SELECT sn FROM door_events) t GROUP BY sn"
        )
        counts = {sn: n for sn, n in cur.fetchall()}
        cur.execute(
            "SELECT count(*) - count(DISTINCT (sn, enrollid, time, mode, inout, event))"
            " FROM attendance_logs"
        )
        counts["__duplicates__"] = cur.fetchone()[0]
    return counts


class PostgresFailureTests(TestCase):
    timeout = 240

    @inlineCallbacks
    def setUp(self) -> Any:
        self.cluster, self.url = yield privateDatabase(self, "tm20_e2e")

    def terminals(self, url: str, prefix: str) -> list[TerminalConnection]:
        connections = []
        for i in range(TERMINALS):
            terminal = SimulatedTerminal(f"{prefix}{i:04d}", logs=LOGS_PER_TERMINAL, seed=100 + i)
            connection = TerminalConnection(
                terminal, url, reactor=reactor, batchSize=10, ackTimeout=2, regRetry=2
            )
            connection.start()
            self.addCleanup(connection.disconnect)
            connections.append(connection)
        return connections

    @inlineCallbacks
    def test_databaseCrashDuringIngest(self) -> Any:
        store = PostgresStore(self.url, reactor=reactor, statementTimeout=5)
        running = yield startServer(self, store=store)
        connections = self.terminals(running.wsURL(), "CHAOS")
        # Let the upload get going, then crash PostgreSQL and bring it back.
        for _ in range(200):
            if sum(c.stats.logsAcknowledged for c in connections) >= 1000:
                break
            yield sleep(0.05)
        ackedBeforeCrash = sum(c.stats.logsAcknowledged for c in connections)
        self.assertGreater(ackedBeforeCrash, 0)
        yield threads.deferToThread(self.cluster.stop, "immediate")
        yield sleep(1.5)  # terminals keep sending: they must get result:false, never an ack
        yield threads.deferToThread(self.cluster.start)
        yield gatherResults([c.whenAllLogsAcknowledged() for c in connections])
        counts = yield threads.deferToThread(rowCounts, self.url)
        self.assertEqual(counts.pop("__duplicates__"), 0)
        self.assertEqual(counts, {c.sn: LOGS_PER_TERMINAL for c in connections})
        # Ingest resumed in the same server process, and the outage was seen by the terminals.
        self.assertGreater(running.context.ingest.failed, 0)
        self.assertEqual(
            sum(c.stats.logsAcknowledged for c in connections), TERMINALS * LOGS_PER_TERMINAL
        )
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_serverKilledMidUploadAndRestarted(self) -> Any:
        port = freePort()
        workdir = Path(self.mktemp()).resolve()
        workdir.mkdir()

        def spawn() -> subprocess.Popen[bytes]:
            log = (workdir / "twistd.log").open("ab")
            proc = subprocess.Popen(
                [
                    TWISTD,
                    "-n",
                    "--pidfile=",
                    "tm20",
                    "--port",
                    f"tcp:{port}:interface=127.0.0.1",
                    "--database",
                    self.url,
                    "--log-level",
                    "warn",
                ],
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ),
            )
            log.close()
            return proc

        proc = spawn()
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        yield threads.deferToThread(waitForPort, port, proc)
        connections = self.terminals(f"ws://127.0.0.1:{port}/pub/chat", "CRASH")
        for _ in range(400):
            if sum(c.stats.logsAcknowledged for c in connections) >= 1500:
                break
            yield sleep(0.05)
        self.assertGreater(sum(c.stats.logsAcknowledged for c in connections), 0)
        proc.send_signal(signal.SIGKILL)
        yield threads.deferToThread(proc.wait)
        proc = spawn()
        yield threads.deferToThread(waitForPort, port, proc)
        yield gatherResults([c.whenAllLogsAcknowledged() for c in connections])
        counts = yield threads.deferToThread(rowCounts, self.url)
        self.assertEqual(counts.pop("__duplicates__"), 0)
        self.assertEqual(counts, {c.sn: LOGS_PER_TERMINAL for c in connections})
        self.assertTrue(all(c.stats.reconnects >= 1 for c in connections))
        proc.send_signal(signal.SIGTERM)
        yield threads.deferToThread(proc.wait, 30)
