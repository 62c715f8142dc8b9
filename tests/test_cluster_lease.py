"""
The lease logic of a cluster node, deterministic: two nodes on a real PostgreSQL schema whose
stores and nodes share one injected C{Clock} (the database only stores the times it is given).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests import pgharness
from tm20.cluster.node import ClusterNode
from tm20.store._postgres_cluster import NodeIdInUse
from tm20.store.postgres import PostgresStore
from tm20.terminal.registry import TerminalRegistry

LEASE = 15.0


class _Socket:
    """What the registry holds for a connection (only C{close} is used by the node)."""

    def __init__(self) -> None:
        self.closed: list[tuple[int, str]] = []

    def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))


class LeaseTests(TestCase):
    @inlineCallbacks
    def setUp(self) -> Any:
        self.url = pgharness.createSchema("tm20_lease")
        self.addCleanup(pgharness.dropSchema, self.url)
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.stores = []
        for _ in range(2):
            store = PostgresStore(self.url, reactor=reactor, clock=self.clock, poolSize=1)
            yield store.start()
            self.addCleanup(store.stop)
            self.stores.append(store)

    def node(self, index: int, name: str) -> ClusterNode:
        node = ClusterNode(self.stores[index], TerminalRegistry(), self.clock, name, lease=LEASE)
        self.addCleanup(node.stop)
        return node

    @inlineCallbacks
    def started(self, *nodes: ClusterNode) -> Any:
        """Start C{nodes}; their renewals are then driven by the test (L{ClusterNode.tick})."""
        for node in nodes:
            yield node.start()
            node._loop.stop()  # type: ignore[union-attr]

    @inlineCallbacks
    def test_renewalExtendsTheLease(self) -> Any:
        a = self.node(0, "a")
        yield self.started(a)
        self.assertEqual(a.leaseUntil, self.clock.seconds() + LEASE)
        self.clock.advance(LEASE / 3)
        yield a.tick()
        self.assertEqual(a.leaseUntil, self.clock.seconds() + LEASE)
        nodes = yield self.stores[1].liveNodes()
        self.assertEqual([n["node"] for n in nodes], ["a"])
        self.assertFalse(a.lapsed)

    @inlineCallbacks
    def test_lapsedNodeHoldsNothingAndIsReaped(self) -> Any:
        a, b = self.node(0, "a"), self.node(1, "b")
        yield self.started(a, b)
        a.registry.bind("T1", _Socket())
        yield a.settled("T1")
        holder = yield self.stores[1].terminalHolder("T1")
        self.assertEqual(holder, "a")
        # a stops renewing (frozen): one second short of its lease it still holds T1
        self.clock.advance(LEASE - 1)
        yield b.tick()
        holder = yield self.stores[1].terminalHolder("T1")
        self.assertEqual(holder, "a")
        # past its lease, readers ignore it at once, and the next reaper deletes it
        self.clock.advance(1)
        self.assertTrue(a.lapsed)
        holder = yield self.stores[1].terminalHolder("T1")
        self.assertIsNone(holder)
        yield b.tick()
        nodes = yield self.stores[1].liveNodes()
        self.assertEqual([n["node"] for n in nodes], ["b"])
        holders = yield self.stores[1].terminalHolders()
        self.assertEqual(holders, {})
        self.assertEqual(b.health()["nodes"][0]["node"], "b")

    @inlineCallbacks
    def test_reapedNodeRegistersAgainAndDropsWhatOthersTook(self) -> Any:
        a, b = self.node(0, "a"), self.node(1, "b")
        yield self.started(a, b)
        kept, taken = _Socket(), _Socket()
        a.registry.bind("KEPT", kept)
        a.registry.bind("TAKEN", taken)
        yield a.settled("KEPT")
        yield a.settled("TAKEN")
        self.clock.advance(LEASE + 1)
        yield b.tick()  # reaps a
        b.registry.bind("TAKEN", _Socket())  # the terminal reconnected to b meanwhile
        yield b.settled("TAKEN")
        yield a.tick()  # a is back: its row is gone
        self.assertEqual(a.reregistrations, 1)
        yield a.settled("KEPT")
        yield a.settled("TAKEN")
        holders = yield self.stores[0].terminalHolders()
        self.assertEqual(holders, {"KEPT": "a", "TAKEN": "b"})
        self.assertEqual(taken.closed, [(4002, "connected to another node")])
        self.assertEqual(kept.closed, [])

    @inlineCallbacks
    def test_claimsAskedTogetherAreWrittenInBatches(self) -> Any:
        """
        Registrations in a storm: the claims asked while one is being written go together, in
        one transaction; each still learns which live node held its terminal (told to drop it).
        """
        a, b = self.node(0, "a"), self.node(1, "b")
        yield self.started(a, b)
        b.registry.bind("M0", _Socket())
        yield b.settled("M0")
        batches: list[list[str]] = []
        claimTerminals = self.stores[0].claimTerminals

        def counted(nodeId: str, sns: list[str], force: bool = True) -> Any:
            if force:  # a registration's claim (claimTerminal without force comes here too)
                batches.append(sorted(sns))
            return claimTerminals(nodeId, sns, force)

        self.patch(self.stores[0], "claimTerminals", counted)
        names = [f"M{i}" for i in range(20)]
        for name in names:
            a.registry.bind(name, _Socket())
        for name in names:
            yield a.settled(name)
        self.assertEqual(sorted(sn for batch in batches for sn in batch), sorted(names))
        self.assertEqual(len(batches), 2)  # the first alone, the 19 asked meanwhile together
        holders = yield self.stores[1].terminalHolders()
        self.assertEqual(holders, dict.fromkeys(names, "a"))

    @inlineCallbacks
    def test_releasesAskedTogetherAreWrittenInBatches(self) -> Any:
        """
        Disconnections in a storm: the releases asked while one is being written go together,
        in one statement; a terminal another node took meanwhile stays that node's.
        """
        a, b = self.node(0, "a"), self.node(1, "b")
        yield self.started(a, b)
        names = [f"R{i}" for i in range(20)]
        sockets = {name: _Socket() for name in names}
        for name in names:
            a.registry.bind(name, sockets[name])
        for name in names:
            yield a.settled(name)
        b.registry.bind("R5", _Socket())  # R5 moved to b
        yield b.settled("R5")
        batches: list[list[str]] = []
        releaseTerminals = self.stores[0].releaseTerminals

        def counted(nodeId: str, sns: list[str]) -> Any:
            batches.append(sorted(sns))
            return releaseTerminals(nodeId, sns)

        self.patch(self.stores[0], "releaseTerminals", counted)
        for name in names:
            a.registry.unbind(name, sockets[name])
        for name in names:
            yield a.settled(name)
        self.assertEqual(sorted(sn for batch in batches for sn in batch), sorted(names))
        self.assertEqual(len(batches), 2)  # the first alone, the 19 asked meanwhile together
        holders = yield self.stores[1].terminalHolders()
        self.assertEqual(holders, {"R5": "b"})

    @inlineCallbacks
    def test_liveDuplicateIdIsRefused(self) -> Any:
        a = self.node(0, "same")
        yield self.started(a)
        with self.assertRaises(NodeIdInUse) as caught:
            yield self.stores[1].registerNode("same", "other-run", "h", 1, LEASE)
        self.assertIn("choose another --node-id", str(caught.exception))
        # once its lease has lapsed, the id is free again (a crashed process's restart)
        self.clock.advance(LEASE)
        yield self.stores[1].registerNode("same", "other-run", "h", 1, LEASE)

    @inlineCallbacks
    def test_disconnectReleasesAndLeaveReleasesAll(self) -> Any:
        a = self.node(0, "a")
        yield self.started(a)
        one, two = _Socket(), _Socket()
        a.registry.bind("T1", one)
        a.registry.bind("T2", two)
        a.registry.unbind("T1", one)
        yield a.settled("T1")
        yield a.settled("T2")
        holders = yield self.stores[1].terminalHolders()
        self.assertEqual(holders, {"T2": "a"})
        yield a.stop()
        holders = yield self.stores[1].terminalHolders()
        self.assertEqual(holders, {})

    @inlineCallbacks
    def test_singletonRolesRunOnOneNodeAndMoveWhenItDies(self) -> Any:
        a, b = self.node(0, "a"), self.node(1, "b")
        running: dict[str, bool] = {}
        for node in (a, b):
            node.roles["sinks"] = (
                lambda n=node.nodeId: running.__setitem__(n, True),
                lambda n=node.nodeId: running.__setitem__(n, False),
            )
        yield self.started(a, b)
        yield a.tick()
        yield b.tick()
        self.assertEqual(running, {"a": True})  # the smallest live id leads; b never started
        self.assertEqual((a.leading, b.leading), (True, False))
        # a dies (stops renewing): b takes over once a's lease has lapsed, not before
        self.clock.advance(LEASE - 1)
        yield b.tick()
        self.assertFalse(b.leading)
        self.clock.advance(1)
        yield b.tick()
        self.assertEqual(running, {"a": True, "b": True})
        # a node that stops gives its roles up at once
        yield a.stop()
        self.assertEqual(running, {"a": False, "b": True})
