"""
C{--workers 2} with an C{ssl:} port, under real C{twistd}: the parent holds a plain TCP socket,
each worker runs TLS with the certificate and key of the C{ssl:} endpoint string.  Terminals
connect over C{wss://} (trusting only the test CA, hostname checked), register, and get a command
posted through the REST API over C{https://}, whichever worker holds them and whichever answers.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor, threads
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from tests import pgharness
from tests.clustersupport import HEADERS, TOKEN, spawnServer
from tests.securitysupport import makePKI, scratchDir, tlsOptionsFor
from tests.serverfixture import sleep
from tests.test_twistd import TWISTD, freePort, waitForPort
from tm20.cluster.tlsport import readTLSPort
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal


class ReadTLSPortTests(TestCase):
    def test_readsWhatTheEndpointStringAsks(self) -> None:
        pki = makePKI(scratchDir(self))
        tls = readTLSPort(
            f"ssl:7443:privateKey={pki.keyFile}:certKey={pki.certFile}:interface=\\:\\:1:backlog=99"
        )
        self.assertEqual((tls.port, tls.backlog, tls.interface), (7443, 99, "::1"))
        self.assertEqual(tls.family, 10)  # AF_INET6: from the interface
        self.assertIsNotNone(tls.contextFactory.getContext())

    def test_missingKeyRaises(self) -> None:
        with self.assertRaises(FileNotFoundError):
            readTLSPort("ssl:7443:privateKey=/nonexistent/key.pem")


class WorkersTLSTests(TestCase):
    timeout = 240

    @inlineCallbacks
    def setUp(self) -> Any:
        self.url = yield threads.deferToThread(pgharness.createDatabase, "tm20_workers_tls")
        self.addCleanup(threads.deferToThread, pgharness.dropDatabase, self.url)
        self.port = freePort()
        self.workdir = Path(scratchDir(self))
        self.pki = makePKI(str(self.workdir / "pki"))
        pool = HTTPConnectionPool(reactor, persistent=False)
        policy = BrowserLikePolicyForHTTPS(trustRoot=self.pki.trustRoot)
        self.https = treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))

    @inlineCallbacks
    def call(self, method: str, path: str, body: Any = None) -> Any:
        kwargs: dict[str, Any] = {"headers": HEADERS, "timeout": 30}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            kwargs["headers"] = {**HEADERS, b"Content-Type": [b"application/json"]}
        response = yield self.https.request(
            method, f"https://localhost:{self.port}{path}", **kwargs
        )
        text = yield response.text()
        return response.code, json.loads(text) if text else None

    def log(self) -> str:
        return (self.workdir / "twistd.log").read_text(errors="replace")

    @inlineCallbacks
    def test_unreadableKeyStopsTheStart(self) -> Any:
        missing = self.workdir / "missing-key.pem"
        argv = [TWISTD, "-n", "--pidfile=", "tm20", "--workers", "2", "--port"]
        argv += [f"ssl:{self.port}:privateKey={missing}:interface=127.0.0.1"]
        argv += ["--database", self.url, "--api-token", TOKEN]
        done = yield threads.deferToThread(
            subprocess.run, argv, cwd=self.workdir, capture_output=True, text=True, timeout=120
        )
        self.assertNotEqual(done.returncode, 0, done.stdout)
        self.assertIn("tm20 could not start", done.stdout + done.stderr)
        self.assertIn("missing-key.pem", done.stdout + done.stderr)
        self.assertNotIn("worker 0 started", done.stdout + done.stderr)

    @inlineCallbacks
    def test_wssAndHttpsServedByEveryWorker(self) -> Any:
        spec = (
            f"ssl:{self.port}:privateKey={self.pki.keyFile}:certKey={self.pki.certFile}"
            ":interface=127.0.0.1"
        )
        proc = spawnServer(
            self,
            [TWISTD, "-n", "--pidfile=", "tm20", "--workers", "2", "--port", spec]
            + ["--database", self.url, "--node-lease", "3", "--api-token", TOKEN],
            self.workdir,
        )
        yield threads.deferToThread(waitForPort, self.port, proc, 30)
        # both workers are live nodes, and each answers https itself
        answered: set[str] = set()
        nodes: set[str] = set()
        for _ in range(300):
            code, body = yield self.call("GET", "/health")
            self.assertEqual(code, 200, body)
            nodes = {n["node"] for n in body["cluster"]["nodes"]}
            answered.add(body["cluster"]["node"])
            if len(nodes) == 2 and answered == nodes:
                break
            yield sleep(0.05)
        self.assertEqual(len(nodes), 2, self.log())
        self.assertEqual(answered, nodes, self.log())
        connections = []
        for i in range(6):
            terminal = SimulatedTerminal(f"TLSW{i:03d}", logs=20, seed=400 + i)
            connection = TerminalConnection(
                terminal,
                f"wss://localhost:{self.port}/pub/chat",
                reactor=reactor,
                tlsOptions=tlsOptionsFor(self.pki),
                regRetry=2,
                ackTimeout=2,
                retryPolicy=lambda attempt: 0.3,
            )
            connection.start()
            self.addCleanup(connection.disconnect)
            connections.append(connection)
        yield gatherResults([c.whenAllLogsAcknowledged() for c in connections])
        for _ in range(150):  # (each holder is recorded just after its registration)
            code, body = yield self.call("GET", "/api/connected/")
            if code == 200 and body["count"] == len(connections):
                break
            yield sleep(0.2)
        self.assertEqual((code, body["count"]), (200, len(connections)), body)
        self.assertTrue({t["node"] for t in body["items"]} <= nodes)
        for connection in connections:
            code, body = yield self.call(
                "POST",
                f"/api/terminals/{connection.sn}/command/",
                {"command": "opendoor", "params": {"doornum": 1}},
            )
            self.assertEqual((code, body["status"]), (200, "succeeded"), body)
        for connection in connections:
            yield connection.disconnect()
        proc.send_signal(signal.SIGTERM)
        code = yield threads.deferToThread(proc.wait, 60)
        self.assertIn(code, (0, -signal.SIGTERM), self.log())
        self.assertIn("serving the parent's socket", self.log())
        self.assertNotIn("Traceback", self.log())
