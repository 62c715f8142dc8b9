"""
One tm20 process as a node of a cluster sharing one PostgreSQL database.

  - B{Identity and lease.}  At start the node records itself (L{IClusterStore.registerNode})
    with a lease of C{lease} seconds, and renews it every third of the lease.  Readers ignore a
    node whose lease has passed; every node reaps lapsed nodes (and so their terminals) at each
    renewal.  A node whose row was reaped (it could not renew in time: a long database outage)
    registers again and claims back only the terminals no other node took meanwhile; the
    others were reconnected elsewhere, so its sockets for them are stale and are closed.
  - B{Holdings.}  A terminal is claimed when it registers here (the newest connection wins:
    the node that held it is told, and closes its stale socket with 4002) and released when
    its socket closes.  Claims and releases of one terminal are written in order on one node;
    across nodes, "newest" is the order of the registrations themselves
    (L{tm20.model.Terminal.registrations}, counted in the registration's transaction), never
    that of the claims, which are written later (the background lane): a claim written late for
    an older connection does not take the terminal from the node holding a newer one (it closes
    its own stale socket instead), and a node told to drop a terminal keeps a connection newer
    than the one that took it.
  - B{Singleton roles.}  What must run once per cluster (the event sinks: webhooks and sink
    plugins; the silence sweep) runs on its leader: the oldest live node that runs it
    (L{_leader}; the sinks: a node not started with C{--no-sinks}).  When it dies, the next
    one takes over at its first renewal after the lease lapsed.  A node
    that cannot renew past its own lease gives its roles up.  In the hand-over window two
    nodes may deliver the same batch: sinks are at-least-once, with the same delivery ids.
  - B{Wake-ups.}  Each node listens on its own channel (L{nodeChannel}) for C{deliver} (a
    command for a terminal it holds was queued by another node), C{drop} (another node took a
    terminal), C{call} (a pull was asked), C{settled} and C{called} (the outcome another node
    waited for is stored: see L{tm20.cluster.routing}), C{changed} (an operator changed the
    record of a terminal it holds on another node: it re-reads it, so that its time zone applies
    at once).  A lost notification costs latency only: at every renewal the node also delivers
    the queued commands and takes the calls of the terminals it holds (a lost C{changed} is the
    exception: the new record applies from the terminal's next registration; it is logged).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from twisted.internet.defer import (
    Deferred,
    DeferredList,
    inlineCallbacks,
    maybeDeferred,
    succeed,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from tm20.batches import Batcher
from tm20.cluster.identity import newIncarnation, nodeChannel
from tm20.cluster.settled import settledMessage
from tm20.errors import CommandTimeout, StoreUnavailable, TerminalGone
from tm20.interfaces import IClusterStore, ITerminalSession
from tm20.model import Claim, StoredCommand
from tm20.protocol.codes import CloseCode
from tm20.services.pulls import PullBusyError
from tm20.store._postgres_cluster import NodeIdInUse

__all__ = ["DEFAULT_LEASE", "SINKS_ROLE", "ClusterNode"]

#: Seconds a node's lease lasts unless renewed (C{--node-lease}).
DEFAULT_LEASE = 15.0


@attrs.define
class _Snapshot:
    """The cluster as last read (for C{/health}, which must not wait for the database)."""

    nodes: list[dict[str, Any]] = attrs.Factory(list)
    at: float | None = None


#: The name of the event sinks' singleton role (L{ClusterNode.roles}): recorded with the node
#: (C{--no-sinks} nodes do not run it, and are not its leader).
SINKS_ROLE = "sinks"


def _leader(nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """
    The leader of a singleton role among the live C{nodes} that run it: the oldest (its
    C{startedAt}; the smallest id of those started at the same time), or C{None}.
    """
    if not nodes:
        return None
    oldest = min(nodes, key=lambda n: (datetime.fromisoformat(n["startedAt"]), n["node"]))
    return str(oldest["node"])


class ClusterNode:
    """
    This process as a node (see the module docstring).

    @ivar nodeId: the node's name (C{--node-id}).
    @ivar lease: seconds of its lease (C{--node-lease}).
    @ivar queue: the L{tm20.services.queue.CommandQueue} (to deliver what others queued).
    @ivar pulls: the local L{tm20.services.pulls.PullService} (to run the calls of others).
    """

    log = Logger()

    def __init__(
        self,
        store: Any,
        registry: Any,
        clock: Any,
        nodeId: str,
        lease: float = DEFAULT_LEASE,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.store: Any = store
        if not IClusterStore.providedBy(store):
            raise ValueError("a cluster node needs a store with the cluster role (PostgreSQL)")
        if lease < 3:
            raise ValueError("the node lease must be at least 3 seconds")
        self.registry = registry
        self.clock = clock
        self.nodeId = nodeId
        self.lease = lease
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.incarnation = newIncarnation()
        self.channel = nodeChannel(nodeId)
        self.queue: Any = None
        self.pulls: Any = None
        #: Called with C{(kind, message)} for C{settled} / C{called} (the router).
        self.onOutcome: Callable[[str, dict[str, Any]], object] | None = None
        #: Called with a terminal's record re-read after another node changed it, while it is
        #: held here (the registration service's C{terminalChanged}).
        self.onTerminalChanged: Callable[[Any], object] | None = None
        #: When the lease recorded by the last successful renewal ends (clock seconds).
        self.leaseUntil: float | None = None
        self._running = False
        self._loop: LoopingCall | None = None
        self._chains: dict[str, Deferred[Any]] = {}
        #: Claims of registered terminals: those asked while one batch is written go together.
        self._claims: Batcher[tuple[str, int], Claim] = Batcher(self._writeClaims)
        #: The session of each terminal held here and the count of the registration it
        #: connected with (as it was when it was bound: a record re-read later may count newer
        #: registrations, on other nodes).
        self._registrations: dict[str, tuple[ITerminalSession, int]] = {}
        #: Releases of disconnected terminals: those asked while one is written go together.
        self._releases: Batcher[str, bool] = Batcher(
            lambda sns: self.store.releaseTerminals(self.nodeId, sns)
        )
        self._replyTo: dict[int, set[str]] = {}
        self._snapshot = _Snapshot()
        self._taking = False
        self._takeAgain = False
        self._ticking: Deferred[None] | None = None
        #: Singleton roles (name -> (start, stop)): run by the leader only (L{_lead}).
        self.roles: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}
        #: The singleton roles this node runs now (names of L{roles}).
        self.leadingRoles: frozenset[str] = frozenset()
        #: Renewals that failed in a row (the database unreachable).
        self.failedRenewals = 0
        #: Times the node registered again after its row was reaped.
        self.reregistrations = 0

    # -- life ----------------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Whether this node runs any singleton role now."""
        return bool(self.leadingRoles)

    @inlineCallbacks
    def start(self) -> Any:
        """Record the node, listen on its channel, start renewing; @return: L{Deferred}."""
        yield self._register()
        yield self.store.listen(self.channel, self._message)
        self.registry.observers.append(self._changed)
        nodes = yield self.store.liveNodes()
        self._snapshot = _Snapshot(list(nodes), self.clock.seconds())
        if self.queue is not None:
            self.queue.observers.append(self._commandChanged)
        self._running = True
        loop = self._loop = LoopingCall(self.tick)
        loop.clock = self.clock
        loop.start(self.lease / 3, now=False).addErrback(
            lambda f: self.log.failure("cluster renewals stopped", f)
        )
        for sn in self.registry.connected():
            self._serial(sn, self._claim, sn, True)
        self._lead(self._rolesToLead(nodes))
        self.log.info(
            "cluster node {node} started (lease {lease}s, channel {channel})",
            node=self.nodeId,
            lease=self.lease,
            channel=self.channel,
        )

    @inlineCallbacks
    def _register(self) -> Any:
        deadline = self.clock.seconds() + self.lease + 1
        warned = False
        while True:
            try:
                yield self.store.registerNode(
                    self.nodeId,
                    self.incarnation,
                    self.host,
                    self.pid,
                    self.lease,
                    sinks=SINKS_ROLE in self.roles,
                )
            except NodeIdInUse as e:
                # a process of this id that crashed a moment ago: its lease lapses soon
                if self.clock.seconds() >= deadline:
                    raise
                if not warned:
                    self.log.warn("{error}; waiting for it to lapse", error=str(e))
                    warned = True
                from twisted.internet.task import deferLater

                yield deferLater(self.clock, 0.5, lambda: None)
                continue
            self.leaseUntil = self.clock.seconds() + self.lease
            return

    @inlineCallbacks
    def stop(self) -> Any:
        """Stop renewing and leave the cluster (its terminals are released at once)."""
        if not self._running:
            return
        self._running = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        yield self._lead(())  # (the sinks finish their last step)
        if self._changed in self.registry.observers:
            self.registry.observers.remove(self._changed)
        if self.queue is not None and self._commandChanged in self.queue.observers:
            self.queue.observers.remove(self._commandChanged)
        # the releases of the sockets closed at shutdown, before the row (and they) go
        yield DeferredList(list(self._chains.values()), consumeErrors=True)
        try:
            yield self.store.unlisten(self.channel, self._message)
            yield self.store.leaveNode(self.nodeId, self.incarnation)
        except Exception as e:
            self.log.warn(
                "cluster node {node} could not leave cleanly ({error}); its lease lapses in"
                " {lease}s",
                node=self.nodeId,
                error=str(e),
                lease=self.lease,
            )

    # -- the lease -----------------------------------------------------------------------------

    @property
    def lapsed(self) -> bool:
        """Whether the last renewal that worked is older than the lease."""
        return self.leaseUntil is None or self.clock.seconds() >= self.leaseUntil

    def tick(self) -> Deferred[None]:
        """
        One renewal: extend the lease (registering again if the row was reaped), reap lapsed
        nodes, refresh the cluster snapshot, then deliver and take what notifications may have
        missed.  Errors are logged; the next tick tries again.

        @return: L{Deferred} firing when this renewal (or the one running already) is done.
        """
        if not self._running:
            return succeed(None)
        if self._ticking is None:
            running: Deferred[None] = self._tick()
            if running.called:
                return succeed(None)
            self._ticking = running

            def clear(_: object) -> None:
                self._ticking = None

            running.addBoth(clear)
        d: Deferred[None] = Deferred()
        self._ticking.addBoth(lambda _: d.callback(None))
        return d

    @inlineCallbacks
    def _tick(self) -> Any:
        try:
            yield self._renew()
            reaped = yield self.store.reapNodes()
            if reaped:
                self.log.warn(
                    "cluster: nodes {nodes} lapsed (lease not renewed); their terminals are"
                    " released",
                    nodes=", ".join(reaped),
                )
            nodes = yield self.store.liveNodes()
            self._snapshot = _Snapshot(list(nodes), self.clock.seconds())
            self._lead(self._rolesToLead(nodes))
            if self.queue is not None:
                waiting = yield self.store.queuedCommandTerminals(self.nodeId)
                for sn in waiting:
                    self.queue.kick(sn)
            self.takeCalls()
        except StoreUnavailable as e:
            self.failedRenewals += 1
            if self.lapsed:
                self._lead(())  # another node leads once our lease is seen lapsed
            self.log.warn(
                "cluster node {node} cannot renew its lease ({error}); lease ends in {left:.1f}s",
                node=self.nodeId,
                error=str(e),
                left=max(0.0, (self.leaseUntil or 0) - self.clock.seconds()),
            )
        except Exception:
            self.failedRenewals += 1
            self.log.failure("cluster node {node}: renewal failed", node=self.nodeId)

    @inlineCallbacks
    def _renew(self) -> Any:
        renewed = yield self.store.renewNode(self.nodeId, self.incarnation, self.lease)
        if renewed:
            self.leaseUntil = self.clock.seconds() + self.lease
            self.failedRenewals = 0
            return
        # reaped while we could not renew: others may have taken our terminals
        self.reregistrations += 1
        self.log.warn(
            "cluster node {node} was reaped (its lease lapsed); registering again",
            node=self.nodeId,
        )
        yield self._register()
        self.failedRenewals = 0
        for sn in self.registry.connected():
            self._serial(sn, self._claim, sn, False)

    def _rolesToLead(self, nodes: Sequence[Mapping[str, Any]]) -> frozenset[str]:
        """
        The roles this node leads among the live C{nodes}: each role's leader is the oldest
        live node (L{_leader}) of those that run it — every node runs the silence sweep, the
        sinks only the nodes recorded with C{sinks} (not started with C{--no-sinks}).
        """
        runsSinks = [n for n in nodes if n.get("sinks", True)]
        return frozenset(
            name
            for name in self.roles
            if _leader(runsSinks if name == SINKS_ROLE else nodes) == self.nodeId
        )

    def _lead(self, roles: Collection[str]) -> Deferred[Any]:
        """
        Start the singleton roles in C{roles} and stop the others.  Each role's leader is the
        oldest live node that runs it (each node reads the same table, so they agree); when it
        dies, the next oldest takes over as soon as its lease has lapsed.  A node that starts
        never takes a role from a live leader (it is younger), and of two nodes started
        together (the workers of one parent) the second to register finds the first there.
        """
        wanted = frozenset(roles) & frozenset(self.roles)
        starting, stopping = wanted - self.leadingRoles, self.leadingRoles - wanted
        self.leadingRoles = wanted
        changes = []
        # (what is logged, the roles, which of a role's (start, stop) to call)
        for what, names, step in (("takes", starting, 0), ("gives up", stopping, 1)):
            if names:
                self.log.info(
                    "cluster node {node} {what} the singleton roles ({roles})",
                    node=self.nodeId,
                    what=what,
                    roles=", ".join(sorted(names)),
                )
            for name in sorted(names):
                d: Deferred[Any] = maybeDeferred(self.roles[name][step])
                changes.append(d.addErrback(self._roleFailed, name))
        return DeferredList(changes)

    def _roleFailed(self, f: Failure, name: str) -> None:
        self.log.failure("cluster role {role} failed to change", f, role=name)

    # -- holdings ------------------------------------------------------------------------------

    def _serial(self, sn: str, fn: Callable[..., Deferred[Any]], *args: Any) -> Deferred[Any]:
        """Run C{fn(*args)} after the earlier claims/releases of C{sn} (in order)."""
        previous = self._chains.get(sn, succeed(None))
        d: Deferred[Any] = Deferred()

        def run(_: object) -> Deferred[Any]:
            return fn(*args)

        def done(result: object) -> None:
            if self._chains.get(sn) is d:
                del self._chains[sn]
            d.callback(None)

        previous.addCallback(run).addBoth(done)
        self._chains[sn] = d
        return d

    def settled(self, sn: str) -> Deferred[Any]:
        """A L{Deferred} firing once the claims and releases of C{sn} asked so far are written."""
        return self._chains.get(sn, succeed(None))

    def _changed(self, sn: str, session: Any, connected: bool) -> None:
        if not self._running:
            return
        if connected:
            self._registration(sn, session)  # as it is now, before any re-read of its record
            self._serial(sn, self._claim, sn, True, session)
        else:
            self._serial(sn, self._release, sn)

    def _registration(self, sn: str, session: ITerminalSession) -> int:
        """
        The count of the registration C{session} (the one of C{sn} here) connected with
        (L{tm20.model.Terminal.registrations}; 0 when unknown): noted once, the first time.
        """
        known = self._registrations.get(sn)
        if known is not None and known[0] is session:
            return known[1]
        count = 0 if session.terminal is None else session.terminal.registrations
        self._registrations[sn] = (session, count)
        return count

    @inlineCallbacks
    def _claim(self, sn: str, force: bool, session: Any = None) -> Any:
        current = self.registry.get(sn)
        if current is None:
            return  # gone again before the claim was written
        if session is not None and current is not session:
            return  # replaced here meanwhile: the newer session's own claim follows
        count = self._registration(sn, current)
        try:
            if force:
                claim = yield self._claimBatched(sn, count)
            else:
                claim = yield self.store.claimTerminal(self.nodeId, sn, False, count)
        except Exception as e:
            self.log.warn(
                "cluster: cannot record that {sn} is held by {node}: {error}",
                sn=sn,
                node=self.nodeId,
                error=str(e),
            )
            return
        previous = claim.previous
        if previous is None:
            return
        if not claim.taken:
            # another node holds it for a newer registration (or took it while this one was
            # reaped): our socket is stale
            self._dropStale(sn, previous, current)
            return
        self.log.info(
            "cluster: {sn} moved from node {previous} to {node}",
            sn=sn,
            previous=previous,
            node=self.nodeId,
        )
        yield self._send(
            previous, {"op": "drop", "sn": sn, "registration": count, "node": self.nodeId}
        )

    def _claimBatched(self, sn: str, registration: int) -> Deferred[Claim]:
        """
        Claim C{sn} (for its registration counted C{registration}) with the others asked
        meanwhile: one transaction for every claim asked while the previous batch was being
        written (a storm's registrations: one per batch, not one per terminal).

        @return: L{Deferred} of the L{Claim}.
        """
        return self._claims((sn, registration))

    def _writeClaims(self, claims: list[tuple[str, int]]) -> Deferred[list[Claim]]:
        # a terminal asked twice in a batch is claimed once, for its newest registration
        counts: dict[str, int] = {}
        for sn, count in claims:
            counts[sn] = max(count, counts.get(sn, 0))
        d: Deferred[dict[str, Claim]] = self.store.claimTerminals(
            self.nodeId, list(counts), True, counts
        )
        return d.addCallback(lambda held: [held[sn] for sn, _ in claims])

    @inlineCallbacks
    def _release(self, sn: str) -> Any:
        if self.registry.get(sn) is not None:
            return  # connected again meanwhile (the claim follows)
        self._registrations.pop(sn, None)
        try:
            yield self._releases(sn)
        except Exception as e:
            # the lease lapses (and a reconnection elsewhere claims it) anyway
            self.log.warn("cluster: cannot release {sn}: {error}", sn=sn, error=str(e))

    def _dropStale(self, sn: str, holder: str, stale: Any = None) -> None:
        """Close C{sn}'s socket here (only if it is still C{stale}, when given): C{holder} has it."""
        session = self.registry.get(sn)
        if session is None or (stale is not None and session is not stale):
            return
        self.log.info(
            "cluster: {sn} is held by node {holder} now; closing its stale socket here",
            sn=sn,
            holder=holder,
        )
        session.close(CloseCode.REPLACED, "connected to another node")

    # -- messages ------------------------------------------------------------------------------

    def send(self, nodeId: str, message: dict[str, Any]) -> Deferred[None]:
        """Notify node C{nodeId} (a wake-up only: what it must do is in the database)."""
        return self._send(nodeId, message)

    def _send(self, nodeId: str, message: dict[str, Any]) -> Deferred[None]:
        d: Deferred[None] = self.store.notify(nodeChannel(nodeId), json.dumps(message))

        def failed(f: Any) -> None:
            self.log.warn(
                "cluster: cannot notify node {target} ({error}); it will find out at its next"
                " renewal",
                target=nodeId,
                error=f.getErrorMessage(),
            )

        return d.addErrback(failed)

    def _message(self, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            self.log.warn("cluster: unreadable notification {payload!r}", payload=payload)
            return
        if op == "deliver":
            command = message.get("command")
            reply = message.get("reply")
            if isinstance(command, int) and isinstance(reply, str):
                self._replyTo.setdefault(command, set()).add(reply)
            if self.queue is not None:
                self.queue.kick(str(message.get("sn")))
        elif op == "drop":
            sn = str(message.get("sn"))
            registration = message.get("registration")
            if isinstance(registration, int):
                self._dropOlder(sn, registration, str(message.get("node")))
                return

            # from a node that does not say which registration it claimed for
            def check(holder: str | None) -> None:
                if holder != self.nodeId:
                    self._dropStale(sn, str(holder))

            self.store.terminalHolder(sn).addCallbacks(
                check,
                lambda f: self.log.warn("cluster: drop of {sn}: {e}", sn=sn, e=f.getErrorMessage()),
            )
        elif op == "close":
            session = self.registry.get(str(message.get("sn")))
            code = message.get("code")
            if session is not None and isinstance(code, int):
                session.close(code, str(message.get("reason", "")))
        elif op == "changed":
            self._reread(str(message.get("sn")))
        elif op == "call":
            self.takeCalls()
        elif op in ("settled", "called"):
            if self.onOutcome is not None:
                self.onOutcome(op, message)
        else:
            self.log.warn("cluster: unknown notification {op!r}", op=op)

    def _dropOlder(self, sn: str, registration: int, holder: str) -> None:
        """
        Node C{holder} took C{sn} for its registration counted C{registration}: the socket here is
        stale if it connected with an older one (a newer one keeps it: its own claim, written
        after that node's, takes the terminal back).
        """
        session = self.registry.get(sn)
        if session is None:
            return
        if self._registration(sn, session) < registration:
            self._dropStale(sn, holder, session)
        else:
            self.log.info(
                "cluster: {sn} was claimed by node {holder} for an older connection; kept here",
                sn=sn,
                holder=holder,
            )

    def _commandChanged(self, command: StoredCommand) -> None:
        """After a delivery attempt here: wake the nodes waiting for this command."""
        # the asker waits for the first outcome only (and re-reads the row on a timer)
        nodes = self._replyTo.pop(command.id, None)
        if not nodes:
            return
        # whether the terminal is still here tells a timeout (retried) from a disconnection
        here = self.registry.get(command.sn) is not None
        for node in list(nodes):
            # it carries the command as stored: the asker need not read it again
            self._send(node, settledMessage(command, here))

    def _reread(self, sn: str) -> None:
        """Another node changed C{sn}'s record: its session here uses the new one."""
        if self.registry.get(sn) is None or self.onTerminalChanged is None:
            return
        hook = self.onTerminalChanged

        def apply(terminal: Any) -> None:
            if terminal is not None:
                hook(terminal)
                self.log.info("cluster: {sn} changed on another node; record re-read", sn=sn)

        self.store.getTerminal(sn).addCallbacks(
            apply,
            lambda f: self.log.warn(
                "cluster: cannot re-read {sn} after a change on another node: {e}",
                sn=sn,
                e=f.getErrorMessage(),
            ),
        )

    @inlineCallbacks
    def terminalChanged(self, sn: str) -> Any:
        """
        An operator changed C{sn}'s record through this node: the node holding it, if another,
        re-reads it (this node's own session was updated by the caller).
        """
        if self.registry.get(sn) is not None:
            return
        holder = yield self.store.terminalHolder(sn)
        if holder is not None and holder != self.nodeId:
            yield self._send(holder, {"op": "changed", "sn": sn})

    # -- calls ---------------------------------------------------------------------------------

    def takeCalls(self) -> None:
        """Take and run the calls asked for terminals held here (one taker at a time)."""
        if self.pulls is None:
            return
        if self._taking:
            self._takeAgain = True
            return
        self._taking = True
        self._takeAgain = False

        def taken(calls: list[Any]) -> None:
            for call in calls:
                self._runCall(call)

        def failed(f: Any) -> None:
            self.log.warn("cluster: cannot take calls: {error}", error=f.getErrorMessage())

        def done(_: object) -> None:
            self._taking = False
            if self._takeAgain:
                self.takeCalls()

        self.store.takeCalls(self.nodeId).addCallbacks(taken, failed).addBoth(done)

    @inlineCallbacks
    def _runCall(self, call: dict[str, Any]) -> Any:
        sn, kind, params = call["sn"], call["kind"], call["params"] or {}
        self.log.info(
            "cluster: running {kind} of {sn} for node {asker}",
            kind=kind,
            sn=sn,
            asker=call["askedBy"],
        )
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        try:
            if kind == "pull.users":
                outcome = yield self.pulls.pullUsers(sn)
            elif kind == "pull.logs":
                outcome = yield self.pulls.pullLogs(
                    sn, bool(params.get("all")), params.get("from"), params.get("to")
                )
            else:
                raise ValueError(f"unknown call {kind!r}")
            result = attrs.asdict(outcome)
        except Exception as e:
            error = {"code": callErrorCode(e), "message": str(e)}
        try:
            yield self.store.finishCall(call["id"], result, error)
        except Exception as e:
            self.log.warn(
                "cluster: cannot store the outcome of call {id}: {error}",
                id=call["id"],
                error=str(e),
            )
            return
        yield self._send(call["askedBy"], {"op": "called", "call": call["id"]})

    # -- what the API and /health read ---------------------------------------------------------

    def holders(self) -> Deferred[dict[str, str]]:
        """
        @return: L{Deferred} of C{{sn: node}} for every terminal held by a live node: this
            node's own from its registry (exact at once: a claim is written just after the
            registration), the others' from the database.
        """
        d: Deferred[dict[str, str]] = self.store.terminalHolders()

        def merge(stored: dict[str, str]) -> dict[str, str]:
            holders = {sn: node for sn, node in stored.items() if node != self.nodeId}
            for sn in self.registry.connected():
                holders[sn] = self.nodeId
            return holders

        return d.addCallback(merge)

    def holder(self, sn: str) -> Deferred[str | None]:
        """@return: L{Deferred} of the live node holding C{sn}, or C{None}."""
        if self.registry.get(sn) is not None:
            return succeed(self.nodeId)
        d: Deferred[str | None] = self.store.terminalHolder(sn)
        # this node knows its own terminals exactly: a record of its own not yet released (the
        # release is written in the background lane, after the socket closed) holds nothing
        return d.addCallback(lambda node: None if node == self.nodeId else node)

    @inlineCallbacks
    def disconnect(self, sn: str, code: int, reason: str) -> Any:
        """Close C{sn}'s connection with C{code}: here, or on the node holding it."""
        session = self.registry.get(sn)
        if session is not None:
            session.close(code, reason)
            return
        holder = yield self.store.terminalHolder(sn)
        if holder is not None and holder != self.nodeId:
            yield self._send(holder, {"op": "close", "sn": sn, "code": code, "reason": reason})

    def health(self) -> dict[str, Any]:
        """The cluster as last read (no I/O): this node, its lease, every live node."""
        return {
            "node": self.nodeId,
            "lease": self.lease,
            "leaseOk": not self.lapsed,
            "nodes": self._snapshot.nodes,
            "terminals": sum(int(n.get("terminals", 0)) for n in self._snapshot.nodes),
        }


def callErrorCode(error: BaseException) -> str:
    """The code a call's error is stored with (turned back into the same error by its asker)."""
    if isinstance(error, PullBusyError):
        return "pull_in_progress"
    if isinstance(error, TerminalGone):
        return "terminal_offline"
    if isinstance(error, CommandTimeout):
        return "timeout"
    if isinstance(error, StoreUnavailable):
        return "unavailable"
    return "error"
