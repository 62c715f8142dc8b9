"""
The health of the store, as C{/health} reports it.

  - L{tm20.store._health.HealthMonitor} alone, with a L{Clock}: worst condition wins, a probe that
    does not answer makes the store degraded, probes never pile up, one log line per change.
  - SQLite on a real full file system (a small tmpfs, mounted for the test): C{/health} says
    C{unhealthy} (503) with the reason, batches are refused, and it is C{ok} again once there is
    room;
  - PostgreSQL made read-only: C{unhealthy} too;
  - SQLite locked by another process: C{degraded}.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import treq
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import provider

from tests import pgharness
from tests.serverfixture import registeredClient, startServer
from tm20.errors import StoreUnavailable
from tm20.protocol.messages import LogRecord
from tm20.store._health import DEGRADED, OK, PROBE, UNHEALTHY, HealthMonitor
from tm20.store.postgres import PostgresStore
from tm20.store.sqlite import SQLiteStore


class _Probe:
    """A probe whose answers the test gives."""

    def __init__(self) -> None:
        self.pending: list[Deferred[tuple[str, str | None]]] = []

    def __call__(self) -> Deferred[tuple[str, str | None]]:
        d: Deferred[tuple[str, str | None]] = Deferred()
        self.pending.append(d)
        return d


def _capture(testCase: TestCase) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        events.append(event)

    globalLogPublisher.addObserver(observe)
    testCase.addCleanup(globalLogPublisher.removeObserver, observe)
    return events


class HealthMonitorTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.probe = _Probe()
        self.monitor = HealthMonitor(self.clock, "test", self.probe, interval=2.0, overdue=1.0)

    def test_worstConditionWins(self) -> None:
        """The state is the worst source's; C{since} is when the state last changed."""
        m = self.monitor
        self.assertEqual((m.current().state, m.current().reason), (OK, None))
        self.clock.advance(5)
        m.report("reads", DEGRADED, "locked")
        self.assertEqual((m.current().state, m.current().since), (DEGRADED, 1_000_005))
        self.clock.advance(5)
        m.report("writes", UNHEALTHY, "disk full")
        self.assertEqual(
            (m.current().state, m.current().reason, m.current().since),
            (UNHEALTHY, "disk full", 1_000_010),
        )
        m.report("writes", OK)
        self.assertEqual((m.current().state, m.current().reason), (DEGRADED, "locked"))
        m.report("reads", OK)
        self.assertEqual((m.current().state, m.current().since), (OK, 1_000_010))
        self.assertEqual(
            m.current().asJSON(), {"state": "ok", "reason": None, "since": "1970-01-12T13:46:50Z"}
        )

    def test_unansweredProbeIsDegraded(self) -> None:
        """A probe not answered within C{overdue} makes the store degraded until one answers."""
        self.monitor.start()
        self.addCleanup(self.monitor.stop)
        self.assertEqual(len(self.probe.pending), 1)
        self.clock.advance(0.9)
        self.assertEqual(self.monitor.current().state, OK)
        self.clock.advance(0.2)
        self.assertEqual(self.monitor.current().state, DEGRADED)
        self.assertIn("has not answered for 1s", self.monitor.current().reason)
        # probes never pile up: the next tick finds the first still running
        self.clock.advance(2)
        self.assertEqual((len(self.probe.pending), self.monitor.probes), (1, 1))
        self.probe.pending.pop().callback((OK, None))
        self.assertEqual(self.monitor.current().state, OK)
        self.clock.advance(2)
        self.assertEqual(self.monitor.probes, 2)

    def test_failedProbeIsDegraded(self) -> None:
        self.monitor.probe()
        self.probe.pending.pop().errback(ConnectionError("refused"))
        self.assertEqual(
            (self.monitor.current().state, self.monitor.current().reason), (DEGRADED, "refused")
        )

    def test_probeFailingAfterStopIsIgnored(self) -> None:
        """
        A probe still running when the monitor stops (the store is closing, and closing its
        connections fails the probe) changes nothing and logs nothing.
        """
        events = _capture(self)
        self.monitor.start()
        self.monitor.stop()
        self.probe.pending.pop().errback(ConnectionError("the connection was lost"))
        self.assertEqual(self.monitor.current().state, OK)
        self.assertEqual(
            [e for e in events if e.get("log_namespace", "").endswith("HealthMonitor")], []
        )

    def test_oneLogLinePerChange(self) -> None:
        """A change of state is logged once, however many times it is reported."""
        events = _capture(self)
        for _ in range(100):
            self.monitor.report(PROBE, DEGRADED, "down")
        self.monitor.report(PROBE, OK)
        lines = [e for e in events if e.get("log_namespace", "").endswith("HealthMonitor")]
        self.assertEqual([e["log_level"] for e in lines], [LogLevel.warn, LogLevel.info])


def _mountTmpfs(testCase: TestCase, size: str) -> str:
    """A fresh tmpfs of C{size} (unmounted by a cleanup); mounting needs root."""
    path = os.path.abspath(testCase.mktemp())
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], check=True)
    testCase.addCleanup(subprocess.run, ["umount", "-l", path], check=False)
    return path


def _fill(folder: str) -> str:
    """Fill the file system of C{folder} to the last byte; @return: the filler file."""
    filler = os.path.join(folder, "filler")
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return filler


@inlineCallbacks
def _health(running: Any) -> Any:
    response = yield treq.get(running.httpURL("/health"), persistent=False)
    body = yield treq.json_content(response)
    return response.code, body


@inlineCallbacks
def _waitForHealth(running: Any, code: int, seconds: float = 10.0) -> Any:
    for _ in range(int(seconds / 0.05)):
        got, body = yield _health(running)
        if got == code:
            return body
        yield deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"/health still {got} {body}")


class SQLiteFullDiskTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_fullDiskIsUnhealthy(self) -> Any:
        """
        With the SQLite file on a full file system, C{/health} answers 503 C{unhealthy} with the
        reason, even before anything is written; a batch is refused, not acknowledged; once
        there is room again the store is C{ok} and the batch is stored.
        """
        folder = _mountTmpfs(self, "4m")
        store = SQLiteStore(
            os.path.join(folder, "tm20.sqlite3"), reactor=reactor, healthInterval=0.1
        )
        running = yield startServer(self, store=store)
        client = yield registeredClient(self, running, sn="FULLDISK01")
        code, body = yield _health(running)
        self.assertEqual((code, body["status"], body["store"]["state"]), (200, "ok", "ok"))

        filler = _fill(folder)
        body = yield _waitForHealth(running, 503)
        self.assertEqual((body["status"], body["store"]["state"]), ("unhealthy", "unhealthy"))
        self.assertIn("full", body["store"]["reason"])
        self.assertIn(folder, body["store"]["reason"])

        batch = {
            "cmd": "sendlog",
            "sn": "FULLDISK01",
            "count": 1,
            "logindex": 1,
            "record": [
                {"enrollid": 7, "time": "2026-04-30 08:00:00", "mode": 1, "inout": 0, "event": 0}
            ],
        }
        reply = yield client.request(batch)
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", False))
        code, body = yield _health(running)
        self.assertEqual((code, body["status"]), (503, "unhealthy"))

        os.unlink(filler)
        body = yield _waitForHealth(running, 200)
        self.assertEqual((body["status"], body["store"]["reason"]), ("ok", None))
        reply = yield client.request(batch)
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", True))
        self.assertEqual((yield store.countLogs("FULLDISK01")), 1)

    @inlineCallbacks
    def test_failedWriteIsUnhealthy(self) -> Any:
        """
        A write refused by SQLite because the disk is full makes the store unhealthy at once
        (before any probe), and the next write that succeeds makes it ok again.
        """
        folder = _mountTmpfs(self, "4m")
        store = SQLiteStore(
            os.path.join(folder, "tm20.sqlite3"), reactor=reactor, healthInterval=3600
        )
        yield store.start()
        self.addCleanup(store.stop)
        yield deferLater(reactor, 0.05, lambda: None)  # the first probe ran (ok)
        self.assertEqual(store.health().state, OK)
        filler = _fill(folder)
        records = [
            LogRecord(enrollid=i, time="2026-04-30 08:00:00", image="x" * 2000)
            for i in range(1, 501)
        ]
        yield self.assertFailure(store.addLogs("FULLDISK02", records), StoreUnavailable)
        health = store.health()
        self.assertEqual(health.state, UNHEALTHY)
        self.assertIn("disk is full", health.reason)
        os.unlink(filler)
        result = yield store.addLogs("FULLDISK02", records)
        self.assertEqual(result.inserted, 500)
        self.assertEqual(store.health().state, OK)


class PostgresCannotWriteTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_readOnlyDatabaseIsUnhealthy(self) -> Any:
        """
        A PostgreSQL that answers but refuses writes (here made read-only, as a standby would
        be) makes the store C{unhealthy}, with the reason; it is C{ok} again once writable.
        """
        url = yield threads.deferToThread(pgharness.createDatabase, "tm20_health")
        self.addCleanup(threads.deferToThread, pgharness.dropDatabase, url)
        name = urlsplit(url).path.lstrip("/")
        store = PostgresStore(url, reactor=reactor, healthInterval=0.1)
        yield store.start()
        self.addCleanup(store.stop)

        def readOnly(on: bool) -> None:
            conn = psycopg2.connect(pgharness.withDatabase(url, "postgres"))
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    value = "on" if on else "off"
                    cur.execute(
                        f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}'
                    )
                    # the store's connections reconnect, with the new setting
                    cur.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()",
                        (name,),
                    )
            finally:
                conn.close()

        @inlineCallbacks
        def waitFor(state: str) -> Any:
            for _ in range(200):
                if store.health().state == state:
                    return store.health()
                yield deferLater(reactor, 0.05, lambda: None)
            raise AssertionError(f"still {store.health()}")

        self.assertEqual(store.health().state, OK)
        yield threads.deferToThread(readOnly, True)
        health = yield waitFor(UNHEALTHY)
        self.assertIn("read-only", health.reason)
        yield threads.deferToThread(readOnly, False)
        yield waitFor(OK)


class SQLiteLockedTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_lockedByAnotherProcessIsDegraded(self) -> Any:
        """
        Another process holding SQLite's write lock past C{busyTimeout} makes the store
        C{degraded} (not unhealthy: nothing is wrong with the disk); ok again once released.
        """
        path = os.path.abspath(self.mktemp()) + ".sqlite3"
        store = SQLiteStore(path, reactor=reactor, busyTimeout=0.1, healthInterval=3600)
        yield store.start()
        self.addCleanup(store.stop)
        other = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        records = [LogRecord(enrollid=1, time="2026-04-30 08:00:00")]
        yield self.assertFailure(store.addLogs("LOCKED01", records), StoreUnavailable)
        health = store.health()
        self.assertEqual(health.state, DEGRADED)
        self.assertIn("locked", health.reason)
        other.execute("ROLLBACK")
        yield store.addLogs("LOCKED01", records)
        self.assertEqual(store.health().state, OK)
