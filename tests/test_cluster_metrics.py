"""
C{/metrics} with C{--workers 2}, under real C{twistd} on a real PostgreSQL: whichever worker a
scrape reaches answers for the whole host, every series labelled with its worker; parsed with
C{prometheus_client}'s parser.  And L{merge} alone.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import treq
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests import pgharness
from tests.clustersupport import HEADERS, TOKEN, call, spawnServer
from tests.securitysupport import scratchDir
from tests.serverfixture import sleep
from tests.test_twistd import TWISTD, freePort, waitForPort
from tm20.cluster.hostmetrics import HostMetrics, merge
from tm20.metrics import Metrics
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class MergeTests(SynchronousTestCase):
    def exposition(self, opened: int, latency: float) -> str:
        registry = CollectorRegistry()
        Counter("tm20_connections_opened", "opened", registry=registry).inc(opened)
        Histogram("tm20_ack_latency_seconds", "acks", ["command"], registry=registry).labels(
            "reg"
        ).observe(latency)
        return generate_latest(registry).decode()

    def test_labelsEachWorkersSeries(self) -> None:
        text = merge(
            {"w0": self.exposition(3, 0.002), "w1": self.exposition(5, 0.2)},
            {"w0": True, "w1": True, "w2": False},
        ).decode()
        got = samples(text)
        opened = "tm20_connections_opened_total"
        self.assertEqual(got[(opened, frozenset({("worker", "w0")}))], 3)
        self.assertEqual(got[(opened, frozenset({("worker", "w1")}))], 5)
        bucket = "tm20_ack_latency_seconds_bucket"
        w0 = frozenset({("worker", "w0"), ("command", "reg"), ("le", "0.005")})
        w1 = frozenset({("worker", "w1"), ("command", "reg"), ("le", "0.005")})
        self.assertEqual((got[(bucket, w0)], got[(bucket, w1)]), (1, 0))
        up = "tm20_worker_scraped"
        self.assertEqual(
            [got[(up, frozenset({("worker", w)}))] for w in ("w0", "w1", "w2")], [1, 1, 0]
        )
        # one family per name (not one per worker), so the exposition is valid
        names = [f.name for f in text_string_to_metric_families(text)]
        self.assertEqual(len(names), len(set(names)))


class SiblingsTests(TestCase):
    """One worker's scrape with siblings that answer, hang, or are gone (real Unix sockets)."""

    timeout = 60

    @inlineCallbacks
    def test_aSiblingThatHangsOrIsGoneIsReportedNotWaitedFor(self) -> Any:
        directory = scratchDir(self)
        me = Metrics()
        me.sampleCount("tm20_connections_opened", "opened", lambda: 2)
        sibling = Metrics()
        sibling.sampleCount("tm20_connections_opened", "opened", lambda: 7)
        mine, theirs = (
            HostMetrics(reactor, directory, 0, me),
            HostMetrics(reactor, directory, 1, sibling),
        )
        for host in (mine, theirs):
            yield Deferred.fromCoroutine(host.start())
            self.addCleanup(lambda h=host: Deferred.fromCoroutine(h.stop()))
        # w2 accepts and never answers; w3's socket is left over from a worker that died
        hung = yield UNIXServerEndpoint(reactor, os.path.join(directory, "w2.sock")).listen(
            Factory.forProtocol(Protocol)
        )
        self.addCleanup(hung.stopListening)
        gone = socket.socket(socket.AF_UNIX)
        gone.bind(os.path.join(directory, "w3.sock"))
        gone.close()
        got = samples((yield Deferred.fromCoroutine(mine.scrape())).decode())
        opened = "tm20_connections_opened_total"
        self.assertEqual(got[(opened, frozenset({("worker", "w0")}))], 2)
        self.assertEqual(got[(opened, frozenset({("worker", "w1")}))], 7)
        scraped = {
            w: got[("tm20_worker_scraped", frozenset({("worker", "w" + w)}))] for w in "0123"
        }
        self.assertEqual(scraped, {"0": 1, "1": 1, "2": 0, "3": 0})


class WorkersMetricsTests(TestCase):
    timeout = 240

    @inlineCallbacks
    def setUp(self) -> Any:
        self.url = yield threads.deferToThread(pgharness.createDatabase, "tm20_workers_metrics")
        self.addCleanup(threads.deferToThread, pgharness.dropDatabase, self.url)
        self.port = freePort()
        self.workdir = Path(scratchDir(self))

    def log(self) -> str:
        return (self.workdir / "twistd.log").read_text(errors="replace")

    @inlineCallbacks
    def scrape(self) -> Any:
        response = yield treq.get(
            f"http://127.0.0.1:{self.port}/metrics", headers=HEADERS, persistent=False
        )
        text = yield response.text()
        self.assertEqual(response.code, 200, text)
        return text

    @inlineCallbacks
    def test_aScrapeAnswersForEveryWorker(self) -> Any:
        proc = spawnServer(
            self,
            [TWISTD, "-n", "--pidfile=", "tm20", "--workers", "2"]
            + ["--port", f"tcp:{self.port}:interface=127.0.0.1", "--database", self.url]
            + ["--node-lease", "3", "--api-token", TOKEN],
            self.workdir,
        )
        yield threads.deferToThread(waitForPort, self.port, proc, 30)
        nodes: set[str] = set()
        for _ in range(150):
            code, body = yield call("GET", f"http://127.0.0.1:{self.port}/health")
            nodes = {n["node"] for n in body["cluster"]["nodes"]}
            if len(nodes) == 2:
                break
            yield sleep(0.2)
        self.assertEqual(len(nodes), 2, self.log())
        # terminals until both workers hold some (the kernel chooses the worker of each)
        connections: list[TerminalConnection] = []
        held: dict[str, int] = {}
        while len(connections) < 40 and len(held) < 2:
            for _ in range(4):
                terminal = SimulatedTerminal(f"MW{len(connections):03d}", logs=3, seed=500)
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
            for connection in connections:
                yield connection.whenAllLogsAcknowledged()
            for _ in range(150):  # (each holder is recorded just after its registration)
                code, body = yield call("GET", f"http://127.0.0.1:{self.port}/api/connected/")
                if body["count"] == len(connections):
                    break
                yield sleep(0.2)
            self.assertEqual(body["count"], len(connections), body)
            held = {}
            for item in body["items"]:
                worker = item["node"].rsplit("-", 1)[1].split(".")[0]  # NODE-wI.G -> wI
                held[worker] = held.get(worker, 0) + 1
        self.assertEqual(sorted(held), ["w0", "w1"], body)
        # every scrape, whichever worker answers, has both workers' counts: what each holds
        for _ in range(6):
            got = samples((yield self.scrape()))
            for worker in ("w0", "w1"):
                key = frozenset({("worker", worker)})
                self.assertEqual(got[("tm20_worker_scraped", key)], 1)
                # (at least: a terminal may have reconnected on a loaded machine)
                self.assertGreaterEqual(got[("tm20_connections_opened_total", key)], held[worker])
                reg = frozenset({("worker", worker), ("command", "reg")})
                self.assertGreaterEqual(got[("tm20_messages_received_total", reg)], held[worker])
                state = frozenset({("worker", worker), ("state", "connected")})
                self.assertEqual(got[("tm20_terminals", state)], held[worker])
        proc.send_signal(signal.SIGTERM)
        yield threads.deferToThread(proc.wait, 60)
        self.assertNotIn("Traceback", self.log())
        self.assertNotIn("not read", self.log())
