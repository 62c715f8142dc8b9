"""A node's name, and the notification channel that reaches it."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket

__all__ = ["defaultNodeId", "nodeChannel", "newIncarnation"]


def defaultNodeId(host: str | None = None, pid: int | None = None) -> str:
    """
    C{HOST-PID-XXXX}: the short host name, the process id and four random hex digits, so a
    process restarted with the same pid (pid 1 in a container) is a new node, never the ghost
    of the one that crashed.
    """
    host = (host or socket.gethostname()).split(".")[0] or "tm20"
    pid = os.getpid() if pid is None else pid
    return f"{host}-{pid}-{secrets.token_hex(2)}"


def newIncarnation() -> str:
    """A random token telling this run of a node from another run with the same id."""
    return secrets.token_hex(8)


def nodeChannel(nodeId: str) -> str:
    """The C{LISTEN} channel of C{nodeId} (an identifier whatever characters the id holds)."""
    return "tm20_node_" + hashlib.sha1(nodeId.encode("utf-8")).hexdigest()[:24]
