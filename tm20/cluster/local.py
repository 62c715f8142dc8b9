"""One process alone (SQLite, or PostgreSQL without a cluster): the same view as a cluster."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

__all__ = ["LocalNode"]


class LocalNode:
    """
    The terminals connected to this process, shaped like L{tm20.cluster.node.ClusterNode}'s
    view (each terminal with its node), read from the registry without I/O.
    """

    def __init__(self, registry: Any, nodeId: str) -> None:
        self.registry = registry
        self.nodeId = nodeId

    def holders(self) -> Deferred[dict[str, str]]:
        return succeed({sn: self.nodeId for sn in self.registry.connected()})

    def holder(self, sn: str) -> Deferred[str | None]:
        return succeed(self.nodeId if self.registry.get(sn) is not None else None)

    def disconnect(self, sn: str, code: int, reason: str) -> Deferred[None]:
        """Close C{sn}'s connection with C{code}, if it is connected."""
        session = self.registry.get(sn)
        if session is not None:
            session.close(code, reason)
        return succeed(None)

    def terminalChanged(self, sn: str) -> Deferred[None]:
        """Nothing to tell: the caller updated the only session there is."""
        return succeed(None)

    def health(self) -> dict[str, Any]:
        count = len(self.registry)
        return {
            "node": self.nodeId,
            "lease": None,
            "leaseOk": True,
            "nodes": [{"node": self.nodeId, "terminals": count}],
            "terminals": count,
        }
