"""
What the in-process CPU benchmarks (L{bench.ingestcpu}, L{bench.commandcpu}) share: a real store
(a temporary SQLite file, or a database of the private PostgreSQL cluster), terminals on the
in-memory WebSocket of C{tests/memoryws.py} registered on a server built in this process, the
cluster's CPU, and the profiles of the reactor and of the store's threads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, inlineCallbacks


def storeURL(kind: str, name: str) -> str:
    """A new empty database for C{kind} (C{sqlite} or C{postgresql}), named after C{name}."""
    if kind == "sqlite":
        return "sqlite:" + str(Path(tempfile.mkdtemp()) / f"{name}.sqlite3")
    from tests import pgharness

    return pgharness.createDatabase(f"tm20_{name}")


def dropStore(kind: str, url: str) -> None:
    """Drop the database L{storeURL} made (a SQLite file is left to its temporary directory)."""
    if kind != "sqlite":
        from tests import pgharness

        pgharness.dropDatabase(url)


def profileThreads(timer: Callable[[], float]) -> list[Any]:
    """
    Give every thread started from now on (the stores' writer threads) a profiler of its own.
    @return: the list those profilers are added to.
    """
    import cProfile
    import threading

    profilers: list[Any] = []

    def start(*_: Any) -> None:
        # the first event of a new thread: a profiler of its own, in place of this hook
        profiler = cProfile.Profile(timer)
        profilers.append(profiler)
        profiler.enable()

    threading.setprofile(start)
    return profilers


def printProfile(
    profiler: Any, threadProfilers: list[Any], path: str, tottime: int, cumulative: int
) -> None:
    """Save C{profiler} to C{path}; print it with the threads' profiles added."""
    import pstats

    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    for threadProfiler in threadProfilers:
        stats.add(threadProfiler)
    stats.sort_stats("tottime").print_stats(tottime)
    stats.sort_stats("cumulative").print_stats(cumulative)


def databaseCPU(kind: str) -> float:
    """CPU seconds of the private cluster's processes; 0 for SQLite or a cluster not ours."""
    from tests import pgharness

    if kind == "sqlite" or pgharness._cluster is None:
        return 0.0
    from bench.procinfo import sample

    total = 0.0
    for pid in pgharness._cluster.pids():
        try:
            total += sample(pid).cpu
        except (OSError, ValueError):
            continue
    return total


@inlineCallbacks
def registerTerminals(
    reactor: Any, factory: Any, prefix: str, count: int
) -> Generator[Deferred[Any], Any, list[tuple[str, Any]]]:
    """
    C{count} in-memory terminals C{<prefix>00000...} registered on C{factory}, once their
    registrations' follow-up work has ended; @return: C{(sn, terminal)} pairs, read empty.
    """
    from tests.memoryws import MemoryTerminal

    terms = []
    for i in range(count):
        sn = f"{prefix}{i:05d}"
        term = MemoryTerminal(factory)
        term.send(
            {
                "cmd": "reg",
                "sn": sn,
                "cpusn": f"CPU-{sn}",
                "devinfo": {"modelname": "AiFace", "firmware": "ai806_f32v_2.73"},
            }
        )
        terms.append((sn, term))
    for _ in range(2000):
        if all(t.transport.value() for _, t in terms):
            break
        yield task.deferLater(reactor, 0.005, lambda: None)
    for _, t in terms:
        reply = t.messages()
        assert reply and reply[0].get("result") is True, reply
    # the registrations' follow-up work ends first
    yield task.deferLater(reactor, 1.5, lambda: None)
    for _, t in terms:
        t.messages()
    return terms
