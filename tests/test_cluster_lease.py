"""
The lease logic of a cluster node, deterministic: two nodes on a real PostgreSQL schema whose
stores and nodes share one injected C{Clock} (the database only stores the times it is given).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests import pgharness
from tm20.cluster.node import ClusterNode
from tm20.model import Terminal
from tm20.store._postgres_cluster import NodeIdInUse
from tm20.store.postgres import PostgresStore
from tm20.terminal.registry import TerminalRegistry

LEASE = 15.0


class _Socket:
    """
    What the registry holds for a connection (the node uses C{close}, and the count of the
    registration it connected with: C{terminal.registrations}).
    """

    def __init__(self, registrations: int = 0) -> None:
        self.closed: list[tuple[int, str]] = []
        self.terminal = Terminal("T", registrations=registrations)

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

        def counted(nodeId: str, sns: list[str], force: bool = True, *rest: Any) -> Any:
            if force:  # a registration's claim (claimTerminal without force comes here too)
                batches.append(sorted(sns))
            return claimTerminals(nodeId, sns, force, *rest)

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

    def heldBack(self, index: int) -> Deferred[None]:
        """Hold store C{index}'s claims back until the returned L{Deferred} fires."""
        gate: Deferred[None] = Deferred()
        claimTerminals = self.stores[index].claimTerminals

        def late(*args: Any) -> Any:
            return gate.addCallback(lambda _: claimTerminals(*args))

        self.patch(self.stores[index], "claimTerminals", late)
        return gate

    def notified(self, index: int) -> list[dict[str, Any]]:
        """The notifications sent through store C{index} from now on (sent as well)."""
        sent: list[dict[str, Any]] = []
        notify = self.stores[index].notify

        def recorded(channel: str, payload: str) -> Any:
            sent.append(json.loads(payload))
            return notify(channel, payload)

        self.patch(self.stores[index], "notify", recorded)
        return sent

    @inlineCallbacks
    def test_lateClaimOfAClosedOlderConnectionTakesNothing(self) -> Any:
        """
        A reconnection storm: the terminal's connection to b registered (its first
        registration), b's claim is being written (the background lane: late), the socket
        closed and the terminal registered again on a (its second), whose claim is written
        first.  b's late claim does not take the terminal from a, nor tells a to drop it; b's
        release takes nothing either.
        """
        a, b = self.node(0, "a"), self.node(1, "b")
        yield self.started(a, b)
        gate = self.heldBack(1)
        sent = self.notified(1)
        old, new = _Socket(registrations=1), _Socket(registrations=2)
        b.registry.bind("T", old)
        a.registry.bind("T", new)
        yield a.settled("T")
        b.registry.unbind("T", old)  # the old socket's close, once its claim was under way
        gate.callback(None)
        yield b.settled("T")
        holder = yield self.stores[0].terminalHolder("T")
        self.assertEqual(holder, "a")
        self.assertEqual([m for m in sent if m["op"] == "drop"], [])
        self.assertEqual(new.closed, [])

    @inlineCallbacks
    def test_lateClaimOfAnOpenOlderConnectionClosesIt(self) -> Any:
        """
        The same, the old socket still open on b (a half-open connection b cannot see is
        dead): b's late claim finds a holding the terminal for a newer registration, and
        closes b's stale socket (4002); a keeps the terminal.
        """
        a, b = self.node(0, "a"), self.node(1, "b")
        yield self.started(a, b)
        gate = self.heldBack(1)
        old, new = _Socket(registrations=1), _Socket(registrations=2)
        b.registry.bind("T", old)
        a.registry.bind("T", new)
        yield a.settled("T")
        gate.callback(None)
        yield b.settled("T")
        holder = yield self.stores[0].terminalHolder("T")
        self.assertEqual(holder, "a")
        self.assertEqual(old.closed, [(4002, "connected to another node")])
        self.assertEqual(new.closed, [])

    @inlineCallbacks
    def test_newerClaimTakesTheTerminalAndTellsTheOlderHolder(self) -> Any:
        """The usual move: a newer registration on b takes the terminal from a, and says so."""
        a, b = self.node(0, "a"), self.node(1, "b")
        yield self.started(a, b)
        sent = self.notified(1)
        a.registry.bind("T", _Socket(registrations=1))
        yield a.settled("T")
        b.registry.bind("T", _Socket(registrations=2))
        yield b.settled("T")
        holder = yield self.stores[0].terminalHolder("T")
        self.assertEqual(holder, "b")
        self.assertEqual(
            [m for m in sent if m["op"] == "drop"],
            [{"op": "drop", "sn": "T", "registration": 2, "node": "b"}],
        )

    @inlineCallbacks
    def test_dropForAnOlderRegistrationKeepsTheSocket(self) -> Any:
        """
        A node told that another took the terminal closes its socket only if that socket
        connected with an older registration than the one the other node claimed for.
        """
        a = self.node(0, "a")
        yield self.started(a)
        held = _Socket(registrations=5)
        a.registry.bind("T", held)
        yield a.settled("T")
        for registration in (4, 5):
            a._message(
                a.channel,
                json.dumps({"op": "drop", "sn": "T", "registration": registration, "node": "b"}),
            )
        self.assertEqual(held.closed, [])
        a._message(a.channel, json.dumps({"op": "drop", "sn": "T", "registration": 6, "node": "b"}))
        self.assertEqual(held.closed, [(4002, "connected to another node")])

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
    def test_aYoungerNodeNeverTakesTheRoles(self) -> Any:
        """
        The oldest live node leads: a node started after it (here with a smaller id, as the
        workers of one parent start in any order) finds it there and never runs the roles,
        at its start or at its renewals; when the leader leaves, the younger one takes over.
        """
        a, b = self.node(0, "a"), self.node(1, "b")
        ran: list[str] = []
        for node in (a, b):
            node.roles["sinks"] = (lambda n=node.nodeId: ran.append(n), lambda: None)
        yield self.started(b)
        self.clock.advance(0.01)
        yield self.started(a)
        self.assertEqual((a.leading, b.leading, ran), (False, True, ["b"]))
        self.clock.advance(LEASE / 3)
        yield b.tick()
        yield a.tick()
        self.assertEqual((a.leading, b.leading, ran), (False, True, ["b"]))
        yield b.stop()
        yield a.tick()
        self.assertEqual((a.leading, ran), (True, ["b", "a"]))

    @inlineCallbacks
    def test_sinksLedByTheOldestNodeThatRunsThem(self) -> Any:
        """
        The oldest node, started with C{--no-sinks} (no sinks role), leads the silence sweep
        only; the sinks run on the oldest node that runs them, and the nodes record which
        run them (C{/health}).
        """
        a, b, c = self.node(0, "a"), self.node(1, "b"), self.node(0, "c")
        ran: list[tuple[str, str]] = []
        for node in (a, b, c):
            names = ("silence sweep",) if node is a else ("silence sweep", "sinks")
            for name in names:
                node.roles[name] = (
                    lambda n=node.nodeId, r=name: ran.append((n, r)),
                    lambda: None,
                )
        for node in (a, b, c):
            yield self.started(node)
            self.clock.advance(0.01)
        for node in (a, b, c):
            yield node.tick()
        self.assertEqual(
            (a.leadingRoles, b.leadingRoles, c.leadingRoles),
            ({"silence sweep"}, {"sinks"}, frozenset()),
        )
        self.assertEqual(sorted(ran), [("a", "silence sweep"), ("b", "sinks")])
        nodes = yield self.stores[1].liveNodes()
        self.assertEqual({n["node"]: n["sinks"] for n in nodes}, {"a": False, "b": True, "c": True})
        # b leaves: c takes the sinks, a keeps the sweep
        yield b.stop()
        yield a.tick()
        yield c.tick()
        self.assertEqual((a.leadingRoles, c.leadingRoles), ({"silence sweep"}, {"sinks"}))

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
