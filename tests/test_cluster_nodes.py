"""
Three real tm20 processes (nodes) on one real PostgreSQL database, with simulated terminals
spread over them (tests/clustersupport.py):

  - commands and pulls posted to every node reach every terminal, whichever node holds it;
  - C{/api/connected/} agrees on every node, each terminal with its node;
  - a node killed with SIGKILL under load: its terminals reconnect to the others, commands
    queued for them are delivered once, no acknowledged log is lost or duplicated, its lease
    lapses and nothing claims its terminals any more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
from twisted.internet import reactor, threads
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import pgharness
from tests.clustersupport import FailoverEndpoint, Node, call
from tests.serverfixture import registeredClient, sleep
from tests.test_postgres_e2e import rowCounts
from tests.test_twistd import waitForPort
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal

PER_NODE = 3
LOGS = 400


def clusterRows(url: str) -> tuple[list[str], dict[str, str]]:
    """The node rows and the holdings as stored (blocking)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT node_id FROM cluster_nodes ORDER BY node_id")
        nodes = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT sn, node_id FROM cluster_terminals")
        return nodes, dict(cur.fetchall())


class _Target:
    """Where L{registeredClient} connects: one node."""

    def __init__(self, node: Node) -> None:
        self.port = node.port

    def wsURL(self, path: str = "/pub/chat") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


class ThreeNodesTests(TestCase):
    timeout = 300

    @inlineCallbacks
    def setUp(self) -> Any:
        self.url = yield threads.deferToThread(pgharness.createDatabase, "tm20_cluster")
        self.addCleanup(threads.deferToThread, pgharness.dropDatabase, self.url)
        workdir = Path(self.mktemp()).resolve()
        self.nodes = [Node(workdir, self.url, f"node{i}") for i in (1, 2, 3)]
        # migrate once first, so the three start side by side on a current schema
        first = self.nodes[0]
        first.start()
        self.addCleanup(lambda: [n.stop() for n in self.nodes])
        yield threads.deferToThread(waitForPort, first.port, first.proc)
        for node in self.nodes[1:]:
            node.start()
        for node in self.nodes[1:]:
            yield threads.deferToThread(waitForPort, node.port, node.proc)

    def connect(self, logs: int) -> list[TerminalConnection]:
        connections = []
        ports = [n.port for n in self.nodes]
        for i in range(PER_NODE * len(self.nodes)):
            home = i % len(ports)
            order = ports[home:] + ports[:home]  # its own node first, then the others
            terminal = SimulatedTerminal(f"CL{i:03d}", logs=logs, seed=200 + i)
            connection = TerminalConnection(
                terminal,
                self.nodes[home].wsURL,
                reactor=reactor,
                endpoint=FailoverEndpoint(order),
                batchSize=10,
                ackTimeout=2,
                regRetry=2,
                retryPolicy=lambda attempt: 0.2,
            )
            connection.start()
            self.addCleanup(connection.disconnect)
            connections.append(connection)
        return connections

    @inlineCallbacks
    def connectedEverywhere(self, nodes: list[Node], expected: dict[str, str]) -> Any:
        """Wait until every node's /api/connected/ shows C{expected} ({sn: node})."""
        seen: dict[str, Any] = {}
        for _ in range(100):
            seen = {}
            for node in nodes:
                code, body = yield call("GET", f"{node.base}/api/connected/")
                self.assertEqual(code, 200, body)
                seen[node.name] = {t["sn"]: t["node"] for t in body["items"]}
            if all(view == expected for view in seen.values()):
                return seen
            yield sleep(0.2)
        self.fail(f"the nodes do not agree on {expected}: {seen}")

    @inlineCallbacks
    def test_anyNodeAnswersForAnyTerminal(self) -> Any:
        connections = self.connect(logs=0)
        yield gatherResults([c.whenRegistered() for c in connections])
        expected = {c.sn: self.nodes[i % 3].name for i, c in enumerate(connections)}
        yield self.connectedEverywhere(self.nodes, expected)
        # every node, every terminal: a command waited for, answered with the terminal's reply
        for node in self.nodes:
            for connection in connections:
                code, body = yield call(
                    "POST",
                    f"{node.base}/api/terminals/{connection.sn}/command/",
                    {"command": "opendoor", "params": {"doornum": 1}},
                )
                self.assertEqual(code, 200, (node.name, connection.sn, body))
                self.assertEqual(body["status"], "succeeded")
                self.assertIs(body["reply"]["result"], True)
        for connection in connections:
            self.assertEqual(len(connection.terminal.doorOpens), 3)
        # terminal details on a node that does not hold it name the node that does
        sn = connections[0].sn
        code, body = yield call("GET", f"{self.nodes[2].base}/api/terminals/{sn}/")
        self.assertEqual((code, body["connected"], body["node"]), (200, True, "node1"))
        # pulls through a node that does not hold the terminal
        for i, connection in enumerate(connections):
            asked = self.nodes[(i + 1) % 3]
            code, body = yield call(
                "POST", f"{asked.base}/api/terminals/{connection.sn}/logs/pull/"
            )
            self.assertEqual(code, 200, body)
            self.assertEqual(body["invalid"], 0)
            code, body = yield call(
                "POST", f"{asked.base}/api/terminals/{connection.sn}/users/pull/"
            )
            self.assertEqual(code, 200, body)
        # wait:false through another node: 202, then delivered by the holder
        code, body = yield call(
            "POST",
            f"{self.nodes[1].base}/api/terminals/{sn}/command/",
            {"command": "opendoor", "params": {"doornum": 1}, "wait": False},
        )
        self.assertEqual(code, 202, body)
        for _ in range(50):
            code, polled = yield call("GET", f"{self.nodes[1].base}/api/commands/{body['id']}")
            if polled["status"] == "succeeded":
                break
            yield sleep(0.1)
        self.assertEqual(polled["status"], "succeeded")
        # disabled through another node: the node holding it closes its socket (4003)
        victim = connections[2]  # held by node3
        code, body = yield call(
            "PATCH", f"{self.nodes[0].base}/api/terminals/{victim.sn}/", {"active": False}
        )
        self.assertEqual(code, 200, body)
        for _ in range(100):  # closed there, and refused when it registers again
            if f"terminal {victim.sn} refused: inactive" in self.nodes[2].log():
                break
            yield sleep(0.05)
        self.assertIn(f"terminal {victim.sn} refused: inactive", self.nodes[2].log())
        self.assertIn(f"terminal {victim.sn} disconnected", self.nodes[2].log())
        # /health shows the whole cluster
        code, health = yield call("GET", f"{self.nodes[0].base}/health")
        self.assertEqual(code, 200)
        self.assertEqual(
            sorted(n["node"] for n in health["cluster"]["nodes"]), ["node1", "node2", "node3"]
        )
        self.assertEqual(health["cluster"]["node"], "node1")

    @inlineCallbacks
    def test_newestConnectionWinsAcrossNodes(self) -> Any:
        terminal = SimulatedTerminal("MOVER01", seed=7)
        first = TerminalConnection(terminal, self.nodes[0].wsURL, reactor=reactor, regRetry=2)
        first.start()
        self.addCleanup(first.disconnect)
        yield first.whenRegistered()
        yield self.connectedEverywhere(self.nodes, {"MOVER01": "node1"})
        # the same terminal opens a second socket, to node 2: node 1 drops the stale one
        second = TerminalConnection(
            SimulatedTerminal("MOVER01", seed=7),
            self.nodes[1].wsURL,
            reactor=reactor,
            regRetry=2,
        )
        second.start()
        self.addCleanup(second.disconnect)
        yield second.whenRegistered()
        for _ in range(100):  # node 1 closes the first socket (4002)
            if not first.connected:
                break
            yield sleep(0.05)
        self.assertFalse(first.connected)
        yield first.disconnect()  # (the stale client must not reconnect on its own)
        yield self.connectedEverywhere(self.nodes, {"MOVER01": "node2"})
        log = self.nodes[0].log()
        self.assertIn("MOVER01 is held by node node2 now; closing its stale socket", log)

    @inlineCallbacks
    def test_nodeKilledUnderLoad(self) -> Any:
        connections = self.connect(logs=LOGS)
        yield gatherResults([c.whenRegistered() for c in connections])
        dying = self.nodes[2]
        victims = [c for i, c in enumerate(connections) if i % 3 == 2]
        # let the upload get going everywhere
        for _ in range(200):
            if sum(c.stats.logsAcknowledged for c in connections) >= 600:
                break
            yield sleep(0.05)
        dying.kill()
        # commands for its terminals, posted to node 1 while they are held by a dead node
        queued = []
        for connection in victims:
            code, body = yield call(
                "POST",
                f"{self.nodes[0].base}/api/terminals/{connection.sn}/command/",
                {"command": "opendoor", "params": {"doornum": 1}, "wait": False},
            )
            self.assertEqual(code, 202, body)
            queued.append(body["id"])
        yield gatherResults([c.whenAllLogsAcknowledged() for c in connections])
        counts = yield threads.deferToThread(rowCounts, self.url)
        self.assertEqual(counts.pop("__duplicates__"), 0)
        self.assertEqual(counts, {c.sn: LOGS for c in connections})
        for connection in victims:
            self.assertGreaterEqual(connection.stats.reconnects, 1)
        # the dead node's lease lapses: nothing claims its terminals, every node agrees
        survivors = self.nodes[:2]
        for _ in range(100):
            nodes, holders = yield threads.deferToThread(clusterRows, self.url)
            if nodes == ["node1", "node2"] and len(holders) == len(connections):
                break
            yield sleep(0.2)
        self.assertEqual(nodes, ["node1", "node2"])
        self.assertNotIn("node3", holders.values())
        yield self.connectedEverywhere(survivors, holders)
        # the commands queued meanwhile were delivered once each
        for commandId in queued:
            for _ in range(100):
                code, body = yield call("GET", f"{self.nodes[1].base}/api/commands/{commandId}")
                if body["status"] == "succeeded":
                    break
                yield sleep(0.1)
            self.assertEqual(body["status"], "succeeded", body)
        for connection in victims:
            self.assertEqual(len(connection.terminal.doorOpens), 1)

    @inlineCallbacks
    def test_crossNodeTimeoutIsA504(self) -> Any:
        client = yield registeredClient(self, _Target(self.nodes[0]), sn="MUTE01")
        yield self.connectedEverywhere(self.nodes, {"MUTE01": "node1"})
        started = reactor.seconds()
        code, body = yield call(
            "POST", f"{self.nodes[1].base}/api/terminals/MUTE01/command/", {"command": "gettime"}
        )
        took = reactor.seconds() - started
        self.assertEqual((code, body["error"]), (504, "timeout"), body)
        self.assertIn("it will be tried again", body["detail"])
        # the terminal's command timeout (5 s) and at most the cross-node slack
        self.assertGreaterEqual(took, 5)
        self.assertLess(took, 9)
        frame = yield client.next()
        self.assertEqual(frame["cmd"], "gettime")
