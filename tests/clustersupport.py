"""
Several real C{twistd tm20} processes (nodes) on one real PostgreSQL database, simulated
terminals spread over them, and a blocking-free HTTP helper (treq) to ask any node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer

from tests.test_twistd import TWISTD, freePort

TOKEN = "ops:cluster-test-secret"
HEADERS = {b"Authorization": [b"Bearer cluster-test-secret"]}


@implementer(IStreamClientEndpoint)
class FailoverEndpoint:
    """Connect to the first port, then (each new attempt) the next: a terminal behind a
    load balancer that sends a reconnection wherever a node answers."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.attempt = 0

    def connect(self, factory: Any) -> Any:
        port = self.ports[self.attempt % len(self.ports)]
        self.attempt += 1
        return TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=2).connect(factory)


class Node:
    """One C{twistd -n tm20} process."""

    def __init__(self, workdir: Path, url: str, name: str, lease: str = "3s") -> None:
        self.name = name
        self.port = freePort()
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.argv = [
            TWISTD,
            "-n",
            "--pidfile=",
            "tm20",
            "--port",
            f"tcp:{self.port}:interface=127.0.0.1",
            "--database",
            url,
            "--node-id",
            name,
            "--node-lease",
            lease,
            "--api-token",
            TOKEN,
            "--command-timeout",
            "5",
            "--log-level",
            "info",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def wsURL(self) -> str:
        return f"ws://127.0.0.1:{self.port}/pub/chat"

    def start(self, extra: list[str] | None = None) -> None:
        log = (self.workdir / "twistd.log").open("ab")
        self.proc = subprocess.Popen(
            self.argv + (extra or []),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return (self.workdir / "twistd.log").read_text(errors="replace")


def spawnServer(
    case: Any, argv: list[str], workdir: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """
    Start C{argv} (a C{twistd} command line) in its own session, its output appended to
    C{workdir/twistd.log}; the test case C{case} kills the whole session at cleanup.
    """
    log = (workdir / "twistd.log").open("ab")
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    log.close()

    def cleanup() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    case.addCleanup(cleanup)
    return proc


@inlineCallbacks
def call(method: str, url: str, body: Any = None, timeout: float = 30) -> Any:
    """C{(status, json)} of one API request."""
    kwargs: dict[str, Any] = {"headers": HEADERS, "timeout": timeout, "persistent": False}
    if body is not None:
        kwargs["data"] = json.dumps(body).encode()
        kwargs["headers"] = {**HEADERS, b"Content-Type": [b"application/json"]}
    response = yield treq.request(method, url, **kwargs)
    text = yield response.text()
    try:
        decoded = json.loads(text) if text else None
    except ValueError:
        decoded = text
    return response.code, decoded
