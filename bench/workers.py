"""
The driver's side of the load generators: L{WorkerPool} starts C{python -m bench.loadgen}
processes, sends each an op (one JSON line) and collects their replies, within a deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.procinfo import sample


class WorkerError(RuntimeError):
    """A load generator died, answered with an error, or did not answer in time."""


class Worker:
    """One load-generator process."""

    def __init__(self, index: int, cwd: str) -> None:
        self.index = index
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen"],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            bufsize=0,
        )
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, op: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(op).encode() + b"\n")
        self.process.stdin.flush()

    def takeLine(self) -> dict[str, Any] | None:
        """A complete reply already buffered, if any."""
        if b"\n" not in self._buffer:
            return None
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def feed(self) -> bool:
        """Read what is available; C{False} at end of file."""
        assert self.process.stdout is not None
        data = os.read(self.process.stdout.fileno(), 1 << 20)
        if not data:
            return False
        self._buffer += data
        return True

    def cpu(self) -> float:
        """CPU seconds used by this process so far (from /proc)."""
        try:
            return sample(self.pid).cpu
        except OSError:
            return 0.0


class WorkerPool:
    """Several load generators, driven together."""

    def __init__(self, count: int, cwd: str) -> None:
        self.workers = [Worker(i, cwd) for i in range(count)]
        self._cpuAtStart = 0.0

    def __len__(self) -> int:
        return len(self.workers)

    def cpu(self) -> float:
        """CPU seconds of all the load generators so far."""
        return sum(w.cpu() for w in self.workers)

    def run(
        self, ops: Sequence[dict[str, Any]], timeout: float, workers: Sequence[Worker] | None = None
    ) -> list[dict[str, Any]]:
        """
        Send C{ops[i]} to worker C{i} (of C{workers}, all by default) at once; wait for every
        reply.

        @raise WorkerError: a worker died, replied with an error, or C{timeout} passed.
        """
        chosen = list(self.workers if workers is None else workers)
        if len(ops) != len(chosen):
            raise ValueError("one op per worker")
        for worker, op in zip(chosen, ops, strict=True):
            worker.send(op)
        return self._collect(chosen, timeout)

    def broadcast(self, op: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        """Send the same op to every worker."""
        return self.run([op] * len(self.workers), timeout)

    def _collect(self, chosen: list[Worker], timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        replies: dict[int, dict[str, Any]] = {}
        selector = selectors.DefaultSelector()
        try:
            for worker in chosen:
                reply = worker.takeLine()
                if reply is not None:
                    replies[worker.index] = reply
                else:
                    assert worker.process.stdout is not None
                    selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
            while len(replies) < len(chosen):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [w.index for w in chosen if w.index not in replies]
                    raise WorkerError(f"load generators {missing} did not answer in {timeout}s")
                for key, _ in selector.select(min(left, 1.0)):
                    worker = key.data
                    if not worker.feed():
                        raise WorkerError(
                            f"load generator {worker.index} exited ({worker.process.poll()})"
                        )
                    reply = worker.takeLine()
                    if reply is not None:
                        replies[worker.index] = reply
                        selector.unregister(key.fileobj)
        finally:
            selector.close()
        out = [replies[w.index] for w in chosen]
        for reply in out:
            if "error" in reply:
                raise WorkerError(f"load generator error: {reply['error']}")
        return out

    def close(self) -> None:
        """Ask every worker to quit; kill those that do not."""
        for worker in self.workers:
            try:
                worker.send({"op": "quit"})
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 5.0
        for worker in self.workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(5)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Worker", "WorkerError", "WorkerPool"]
