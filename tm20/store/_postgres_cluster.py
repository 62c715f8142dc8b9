"""
The cluster tables of L{tm20.store.postgres.PostgresStore} (L{tm20.interfaces.IClusterStore}):
nodes and their leases, the terminal each node holds, and the calls one node asks of another
(migration C{0013_cluster}).  PostgreSQL only: a SQLite server is one node (L{tm20.cluster}).

Times are the store's clock (C{clock.seconds()}), like every other timestamp of the store: the
hosts of one cluster must keep their clocks in step (NTP) to well under a lease.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet.defer import Deferred

from tm20.model import COMMAND_QUEUED, Claim, ClusterCall, NodeRecord
from tm20.store._pgpool import Cursor

__all__ = [
    "CALL_ASKED",
    "CALL_DONE",
    "CALL_RUNNING",
    "Claim",
    "ClusterCall",
    "NodeIdInUse",
    "NodeRecord",
    "PostgresClusterMixin",
]

CALL_ASKED = "asked"
CALL_RUNNING = "running"
CALL_DONE = "done"

#: Finished calls nobody read, and calls never taken, are deleted after this long.
_CALL_RETENTION = timedelta(hours=1)


class NodeIdInUse(Exception):
    """Another live process holds this node id (its lease has not lapsed)."""


def _dicts(cur: Cursor) -> list[dict[str, Any]]:
    names = [column[0] for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _node(row: Mapping[str, Any]) -> NodeRecord:
    return NodeRecord(
        node=row["node_id"],
        host=row["host"],
        pid=row["pid"],
        startedAt=_utc(row["started_at"]).isoformat(),
        renewedAt=_utc(row["renewed_at"]).isoformat(),
        leaseUntil=_utc(row["lease_until"]).isoformat(),
        terminals=int(row.get("terminals") or 0),
        sinks=bool(row["sinks"]),
    )


def _call(row: Mapping[str, Any]) -> ClusterCall:
    return ClusterCall(
        id=row["id"],
        sn=row["sn"],
        kind=row["kind"],
        params=_json(row["params"]),
        askedBy=row["asked_by"],
        node=row["node_id"],
        status=row["status"],
        result=_json(row["result"]),
        error=_json(row["error"]),
    )


#: The live holder of a terminal (a holder whose lease lapsed holds nothing).
_LIVE_HOLDER = (
    "SELECT t.node_id FROM cluster_terminals t JOIN cluster_nodes n USING (node_id)"
    " WHERE t.sn = %s AND n.lease_until > %s"
)


class PostgresClusterMixin:
    """Mixed into L{tm20.store.postgres.PostgresStore}: defines its cluster methods."""

    _run: Callable[..., Deferred[Any]]
    _runAlone: Callable[..., Deferred[Any]]
    _now: Callable[[], datetime]

    # -- nodes ---------------------------------------------------------------------------------

    def registerNode(
        self,
        nodeId: str,
        incarnation: str,
        host: str,
        pid: int,
        lease: float,
        sinks: bool = True,
    ) -> Deferred[None]:
        """
        Record this process as node C{nodeId} with a lease of C{lease} seconds, holding no
        terminal.  A row of the same id whose lease has lapsed (a crashed process) is replaced.

        @return: L{Deferred} of C{None}; fails with L{NodeIdInUse} when a live process of
            another incarnation has the id.
        """
        now = self._now()
        until = now + timedelta(seconds=lease)

        async def register(cur: Cursor) -> None:
            await cur.execute(
                "SELECT incarnation, lease_until FROM cluster_nodes WHERE node_id = %s FOR UPDATE",
                (nodeId,),
            )
            row = cur.fetchone()
            if row is not None and row[0] != incarnation and row[1] > now:
                raise NodeIdInUse(
                    f"node id {nodeId!r} is held by a live process (lease until"
                    f" {_utc(row[1]).isoformat()}): choose another --node-id, or wait for that"
                    " lease to lapse"
                )
            await cur.execute("DELETE FROM cluster_nodes WHERE node_id = %s", (nodeId,))
            await cur.execute(
                "INSERT INTO cluster_nodes"
                " (node_id, incarnation, host, pid, started_at, renewed_at, lease_until, sinks)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (nodeId, incarnation, host, pid, now, now, until, bool(sinks)),
            )

        return self._run(register)

    def renewNode(self, nodeId: str, incarnation: str, lease: float) -> Deferred[bool]:
        """
        Extend the lease of C{nodeId} (this incarnation) to C{lease} seconds from now.

        @return: L{Deferred} of C{False} when the row is gone (reaped after a lapse, or taken):
            the node must register again.
        """
        now = self._now()

        async def renew(cur: Cursor) -> bool:
            await cur.execute(
                "UPDATE cluster_nodes SET renewed_at = %s, lease_until = %s"
                " WHERE node_id = %s AND incarnation = %s",
                (now, now + timedelta(seconds=lease), nodeId, incarnation),
            )
            return bool(cur.rowcount)

        return self._run(renew)

    def leaveNode(self, nodeId: str, incarnation: str) -> Deferred[None]:
        """Delete the row of C{nodeId} (this incarnation) and so every terminal it holds."""

        async def leave(cur: Cursor) -> None:
            await cur.execute(
                "DELETE FROM cluster_nodes WHERE node_id = %s AND incarnation = %s",
                (nodeId, incarnation),
            )

        return self._run(leave)

    def reapNodes(self) -> Deferred[list[str]]:
        """
        Delete the nodes whose lease has lapsed (and so their terminals); settle the calls they
        were running as failed; delete calls nobody will read.

        @return: L{Deferred} of the reaped node ids.
        """
        now = self._now()

        async def reap(cur: Cursor) -> list[str]:
            await cur.execute(
                "DELETE FROM cluster_nodes WHERE lease_until <= %s RETURNING node_id", (now,)
            )
            reaped = sorted(row[0] for row in cur.fetchall())
            await cur.execute(
                "UPDATE cluster_calls SET status = %s, finished_at = %s, error = %s"
                " WHERE status = %s AND node_id NOT IN (SELECT node_id FROM cluster_nodes)",
                (
                    CALL_DONE,
                    now,
                    json.dumps({"code": "node_lost", "message": "the node running it stopped"}),
                    CALL_RUNNING,
                ),
            )
            await cur.execute(
                "DELETE FROM cluster_calls WHERE created_at < %s", (now - _CALL_RETENTION,)
            )
            return reaped

        return self._run(reap)

    def liveNodes(self) -> Deferred[list[NodeRecord]]:
        """@return: L{Deferred} of the nodes whose lease is current, each with its terminals."""
        now = self._now()

        async def select(cur: Cursor) -> list[NodeRecord]:
            await cur.execute(
                "SELECT n.*, (SELECT count(*) FROM cluster_terminals t"
                "             WHERE t.node_id = n.node_id) AS terminals"
                " FROM cluster_nodes n WHERE n.lease_until > %s ORDER BY n.node_id",
                (now,),
            )
            return [_node(row) for row in _dicts(cur)]

        return self._run(select)

    # -- terminals -----------------------------------------------------------------------------

    def claimTerminal(
        self, nodeId: str, sn: str, force: bool = True, registration: int = 0
    ) -> Deferred[Claim]:
        """
        Make C{nodeId} the holder of C{sn} (L{claimTerminals} of one).

        @param force: take it even from another live node (a registration: the newest
            connection wins); C{False}: only when no other live node holds it.
        @param registration: the count of the registration claimed for
            (L{tm20.model.Terminal.registrations}).
        @return: L{Deferred} of the L{Claim}.
        """
        d = self.claimTerminals(nodeId, [sn], force, {sn: registration})
        return d.addCallback(lambda held: held[sn])

    def claimTerminals(
        self,
        nodeId: str,
        sns: list[str],
        force: bool = True,
        registrations: Mapping[str, int] | None = None,
    ) -> Deferred[dict[str, Claim]]:
        """
        Make C{nodeId} the holder of every C{sn} of C{sns}, in one transaction.

        The newest connection wins: another live node holding a terminal for a later
        registration (a greater count, L{tm20.model.Terminal.registrations}) keeps it, however
        late this claim is written.

        @param force: take them even from another live node (for a registration not older than
            its); C{False}: only those no other live node holds.
        @param registrations: C{sn} -> the count of the registration claimed for (0: unknown).
        @return: L{Deferred} of C{sn} -> its L{Claim}.
        """
        now = self._now()
        ordered = sorted(set(sns))  # rows locked in one order by every node
        counts = {sn: int((registrations or {}).get(sn, 0)) for sn in ordered}

        async def claim(cur: Cursor) -> dict[str, Claim]:
            await cur.execute(
                "SELECT t.sn, t.node_id, n.lease_until > %s, t.registration"
                " FROM cluster_terminals t LEFT JOIN cluster_nodes n USING (node_id)"
                " WHERE t.sn = ANY(%s) ORDER BY t.sn FOR UPDATE OF t",
                (now, ordered),
            )
            claims: dict[str, Claim] = {sn: Claim(None, True) for sn in ordered}
            for sn, holder, live, registration in cur.fetchall():
                if live and holder != nodeId:
                    claims[sn] = Claim(str(holder), force and counts[sn] >= int(registration))
            taken = [sn for sn in ordered if claims[sn].taken]
            if taken:
                await cur.execute(
                    "INSERT INTO cluster_terminals (sn, node_id, claimed_at, registration)"
                    " SELECT sn, %s, %s, registration"
                    " FROM unnest(%s::text[], %s::bigint[]) AS c (sn, registration)"
                    " ON CONFLICT (sn) DO UPDATE SET node_id = EXCLUDED.node_id,"
                    " claimed_at = EXCLUDED.claimed_at, registration = EXCLUDED.registration",
                    (nodeId, now, taken, [counts[sn] for sn in taken]),
                )
            return claims

        return self._run(claim)

    def releaseTerminal(self, nodeId: str, sn: str) -> Deferred[bool]:
        """C{nodeId} no longer holds C{sn} (unless another node took it since)."""

        async def release(cur: Cursor) -> bool:
            await cur.execute(
                "DELETE FROM cluster_terminals WHERE sn = %s AND node_id = %s", (sn, nodeId)
            )
            return bool(cur.rowcount)

        return self._run(release)

    def releaseTerminals(self, nodeId: str, sns: list[str]) -> Deferred[list[bool]]:
        """
        L{releaseTerminal} of every C{sn} of C{sns}, in one statement.
        @return: L{Deferred} of, for each C{sn} in order, whether C{nodeId} held it.
        """

        async def release(cur: Cursor) -> list[bool]:
            await cur.execute(
                "DELETE FROM cluster_terminals WHERE node_id = %s AND sn = ANY(%s) RETURNING sn",
                (nodeId, sorted(set(sns))),
            )
            released = {str(row[0]) for row in cur.fetchall()}
            return [sn in released for sn in sns]

        return self._run(release)

    def terminalHolder(self, sn: str) -> Deferred[str | None]:
        """@return: L{Deferred} of the live node holding C{sn}, or C{None}."""
        now = self._now()

        async def select(cur: Cursor) -> str | None:
            await cur.execute(_LIVE_HOLDER, (sn, now))
            row = cur.fetchone()
            return None if row is None else str(row[0])

        return self._runAlone(select)

    def terminalHolders(self) -> Deferred[dict[str, str]]:
        """@return: L{Deferred} of C{{sn: node}} for every terminal a live node holds."""
        now = self._now()

        async def select(cur: Cursor) -> dict[str, str]:
            await cur.execute(
                "SELECT t.sn, t.node_id FROM cluster_terminals t JOIN cluster_nodes n"
                " USING (node_id) WHERE n.lease_until > %s",
                (now,),
            )
            return {sn: node for sn, node in cur.fetchall()}

        return self._run(select)

    def queuedCommandTerminals(self, nodeId: str) -> Deferred[list[str]]:
        """@return: L{Deferred} of the terminals C{nodeId} holds that have queued commands."""

        async def select(cur: Cursor) -> list[str]:
            await cur.execute(
                "SELECT DISTINCT c.sn FROM commands c JOIN cluster_terminals t ON t.sn = c.sn"
                " WHERE t.node_id = %s AND c.status = %s",
                (nodeId, COMMAND_QUEUED),
            )
            return sorted(row[0] for row in cur.fetchall())

        return self._run(select)

    # -- calls ---------------------------------------------------------------------------------

    def askCall(self, sn: str, kind: str, params: Mapping[str, Any], askedBy: str) -> Deferred[int]:
        """Record a call for the node holding C{sn}.  @return: L{Deferred} of its id."""
        now = self._now()

        async def ask(cur: Cursor) -> int:
            await cur.execute(
                "INSERT INTO cluster_calls (sn, kind, params, asked_by, created_at)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (sn, kind, json.dumps(dict(params)), askedBy, now),
            )
            row = cur.fetchone()
            assert row is not None
            return int(row[0])

        return self._run(ask)

    def takeCalls(self, nodeId: str) -> Deferred[list[ClusterCall]]:
        """
        Take the asked calls for terminals C{nodeId} holds (each taken by one node only:
        C{FOR UPDATE SKIP LOCKED}), marking them running.

        @return: L{Deferred} of the calls taken.
        """

        async def take(cur: Cursor) -> list[ClusterCall]:
            await cur.execute(
                "UPDATE cluster_calls SET status = %s, node_id = %s WHERE id IN ("
                " SELECT c.id FROM cluster_calls c JOIN cluster_terminals t ON t.sn = c.sn"
                " WHERE c.status = %s AND t.node_id = %s FOR UPDATE OF c SKIP LOCKED)"
                " RETURNING *",
                (CALL_RUNNING, nodeId, CALL_ASKED, nodeId),
            )
            return [_call(row) for row in _dicts(cur)]

        return self._run(take)

    def finishCall(
        self, callId: int, result: Mapping[str, Any] | None, error: Mapping[str, Any] | None
    ) -> Deferred[None]:
        """Record the outcome of a running call."""
        now = self._now()

        async def finish(cur: Cursor) -> None:
            await cur.execute(
                "UPDATE cluster_calls SET status = %s, result = %s, error = %s, finished_at = %s"
                " WHERE id = %s",
                (
                    CALL_DONE,
                    None if result is None else json.dumps(dict(result)),
                    None if error is None else json.dumps(dict(error)),
                    now,
                    callId,
                ),
            )

        return self._run(finish)

    def getCall(self, callId: int) -> Deferred[ClusterCall | None]:
        """@return: L{Deferred} of the call, or C{None} when it was deleted."""

        async def select(cur: Cursor) -> ClusterCall | None:
            await cur.execute("SELECT * FROM cluster_calls WHERE id = %s", (callId,))
            rows = _dicts(cur)
            return _call(rows[0]) if rows else None

        return self._run(select)

    def deleteCall(self, callId: int) -> Deferred[None]:
        """Forget a call (its asker read the outcome, or gave up)."""

        async def delete(cur: Cursor) -> None:
            await cur.execute("DELETE FROM cluster_calls WHERE id = %s", (callId,))

        return self._run(delete)
