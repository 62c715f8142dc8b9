"""
Webhooks end to end with a real C{twistd tm20} process killed (SIGKILL) in the middle of
deliveries, on SQLite and on PostgreSQL: simulated terminals upload logs, a real receiver
(signatures checked with the C{standardwebhooks} library) takes batches slowly; after the
restart every acknowledged log's event is delivered at least once, in id order (a re-delivered
batch may repeat, nothing is skipped or reordered).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

from twisted.internet import reactor, threads
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import pgharness
from tests.test_twistd import TWISTD, freePort, waitForPort
from tests.webhookreceiver import Receiver
from tm20.events.webhooks import generateSecret
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal

TOKEN = "e2e-admin-secret-0123456789"
TERMINALS = 5
LOGS_PER_TERMINAL = 200


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    """One blocking API call (run in a thread)."""
    data = None if body is None else json.dumps(body).encode()
    request = Request(
        f"http://127.0.0.1:{port}/api{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


class _KillMidDelivery:
    """The scenario; subclasses give the database."""

    timeout = 240

    def database(self) -> str:
        raise NotImplementedError

    @inlineCallbacks
    def test_killedMidDeliveryNothingMissing(self) -> Any:
        test: TestCase = self  # type: ignore[assignment]
        url = self.database()
        port = freePort()
        workdir = Path(test.mktemp()).resolve()
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
                    url,
                    "--api-token",
                    f"e2e:{TOKEN}",
                    "--webhook-batch-size",
                    "20",
                    "--webhook-retry-schedule",
                    "0.1s,0.1s,0.1s,0.1s,0.1s,0.1s,0.1s,0.1s,0.1s,0.1s",
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

        secret = generateSecret()
        receiver = Receiver(secret)
        receiver.up()
        test.addCleanup(receiver.stop)
        receiver.mode = "slow"
        receiver.delay = 0.05

        proc = spawn()
        test.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        yield threads.deferToThread(waitForPort, port, proc)
        hook = yield threads.deferToThread(
            api,
            port,
            "POST",
            "/webhooks/",
            {"url": receiver.url, "secret": secret, "types": ["log.created"]},
        )
        connections = []
        for i in range(TERMINALS):
            terminal = SimulatedTerminal(f"KILL{i:04d}", logs=LOGS_PER_TERMINAL, seed=7 + i)
            connection = TerminalConnection(
                terminal,
                f"ws://127.0.0.1:{port}/pub/chat",
                reactor=reactor,
                batchSize=10,
                ackTimeout=2,
                regRetry=0.5,
            )
            connection.start()
            test.addCleanup(connection.disconnect)
            connections.append(connection)
        # kill it while deliveries are under way (some delivered, many not)
        yield receiver.until(lambda: len(receiver.events) >= 100, "deliveries under way", 60)
        proc.send_signal(signal.SIGKILL)
        yield threads.deferToThread(proc.wait)
        deliveredBeforeKill = len(receiver.events)
        proc = spawn()
        yield threads.deferToThread(waitForPort, port, proc)
        yield gatherResults([c.whenAllLogsAcknowledged() for c in connections])
        receiver.mode = "ok"
        page = yield threads.deferToThread(api, port, "GET", "/events/?type=log.created&limit=1000")
        expected = [event["id"] for event in page["items"]]
        self.assertEqual(len(expected), TERMINALS * LOGS_PER_TERMINAL)
        yield receiver.until(
            lambda: set(expected) <= set(receiver.ids()), "every log delivered", 120
        )
        self.assertGreater(len(receiver.events), deliveredBeforeKill)
        # in order: apart from a batch sent again, every id is above all before it
        firsts: list[int] = []
        highest = 0
        for eventId in receiver.ids():
            if eventId > highest:
                self.assertEqual(eventId, min(set(expected) - set(firsts)))
                firsts.append(eventId)
                highest = eventId
        self.assertEqual(firsts, expected)
        self.assertEqual(receiver.rejected, [])
        # every acknowledged log has its event, with the dedup key of the stored row
        keys = {tuple(event["data"]["key"]) for event in receiver.events}
        for connection in connections:
            for entry in connection.terminal.logs:
                key = (
                    connection.sn,
                    entry.enrollid,
                    entry.time,
                    entry.mode,
                    entry.inout,
                    entry.event,
                )
                self.assertIn(key, keys)
        state = yield threads.deferToThread(api, port, "GET", f"/webhooks/{hook['id']}")
        self.assertEqual(state["state"], "active")
        proc.send_signal(signal.SIGTERM)
        yield threads.deferToThread(proc.wait, 30)


class SQLiteKillTests(_KillMidDelivery, TestCase):
    def database(self) -> str:
        return "sqlite:" + str(Path(self.mktemp()).resolve()) + ".sqlite3"


class PostgresKillTests(_KillMidDelivery, TestCase):
    def database(self) -> str:
        url = pgharness.createDatabase("tm20_events_e2e")
        self.addCleanup(pgharness.dropDatabase, url)
        return url
