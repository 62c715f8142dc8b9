"""
PostgreSQL frozen (SIGSTOP to the postmaster and every backend) under a running server: the
reactor must never wait for it.

A frozen server is worse than a dead one: TCP connections are accepted by the kernel and then
nothing answers, so a blocking call (libpq's cancel, a connection's start-up) hangs for as long as
the freeze lasts.  While it lasts, a terminal command that needs no database is answered at once,
C{/health} answers at once (503, the store C{degraded}), and once the server is resumed ingest
carries on by itself with nothing lost.

Always on a private cluster (it freezes the server), whatever C{TM20_TEST_DATABASE_URL} says.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg2
import treq
from twisted.internet import reactor, threads
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import provider

from tests.serverfixture import privateDatabase, registeredClient, sleep, startServer
from tm20.errors import StoreUnavailable
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal
from tm20.store.postgres import PostgresStore, StatementTimeout

#: The bound on an answer that needs no database, while the database is frozen (seconds).
ANSWER_BOUND = 0.2

WRITERS = 3

#: Logs each of the outage test's terminals uploads.
OUTAGE_LOGS = 2000


def storedKeys(url: str) -> list[tuple[str, int, str]]:
    """Every stored log's key (blocking)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT sn, enrollid, time FROM attendance_logs")
        return [(sn, enrollid, t) for sn, enrollid, t in cur.fetchall()]


@inlineCallbacks
def timedHealth(running: Any) -> Any:
    """GET /health: (seconds taken, status code, body)."""
    started = time.monotonic()
    response = yield treq.get(running.httpURL("/health"), persistent=False)
    body = yield treq.content(response)
    return time.monotonic() - started, response.code, json.loads(body)


class FrozenDatabaseTests(TestCase):
    timeout = 180

    @inlineCallbacks
    def setUp(self) -> Any:
        self.cluster, self.url = yield privateDatabase(self, "tm20_hang")

    @inlineCallbacks
    def test_frozenDatabaseNeverFreezesTheServer(self) -> Any:
        """
        With PostgreSQL frozen, an unknown command and C{GET /health} are each answered within
        L{ANSWER_BOUND}; C{/health} says the store is degraded (503); after SIGCONT every log
        is stored exactly once, without restarting anything.
        """
        store = PostgresStore(
            self.url,
            reactor=reactor,
            poolSize=2,
            statementTimeout=1.0,
            connectTimeout=1.0,
            reconnectDelay=(0.05, 0.3),
            healthInterval=0.5,
        )
        running = yield startServer(self, store=store)
        writers = []
        for i in range(WRITERS):
            terminal = SimulatedTerminal(f"HANG{i:04d}", logs=20, seed=7 + i)
            connection = TerminalConnection(
                terminal, running.wsURL(), reactor=reactor, batchSize=5, ackTimeout=2, regRetry=2
            )
            connection.start()
            self.addCleanup(connection.disconnect)
            writers.append(connection)
        yield gatherResults([w.whenAllLogsAcknowledged() for w in writers])
        prober = yield registeredClient(self, running, sn="HANGPROBE01")
        elapsed, code, body = yield timedHealth(running)
        self.assertEqual((code, body["status"]), (200, "ok"))

        self.addCleanup(self.cluster.thaw)  # whatever happens
        yield threads.deferToThread(self.cluster.freeze)
        frozenAt = time.monotonic()
        commandTimes: list[float] = []
        healthTimes: list[float] = []
        healthSeen: list[tuple[int, dict[str, Any]]] = []
        punches = 0
        while time.monotonic() - frozenAt < 5.0:
            for w in writers:  # people keep punching: batches keep coming
                w.punch(enrollid=1000 + punches)
                punches += 1
            started = time.monotonic()
            reply = yield prober.request({"cmd": "nosuchcommand", "sn": "HANGPROBE01"}, 30)
            commandTimes.append(time.monotonic() - started)
            self.assertEqual((reply["ret"], reply["result"]), ("nosuchcommand", False))
            elapsed, code, body = yield timedHealth(running)
            healthTimes.append(elapsed)
            healthSeen.append((code, body))
            yield sleep(0.1)
        print(
            f"\nfrozen PostgreSQL: unknown command max {max(commandTimes) * 1000:.1f} ms,"
            f" /health max {max(healthTimes) * 1000:.1f} ms"
            f" ({len(commandTimes)} probes each)"
        )
        self.assertLess(max(commandTimes), ANSWER_BOUND, commandTimes)
        self.assertLess(max(healthTimes), ANSWER_BOUND, healthTimes)
        degraded = [body for code, body in healthSeen if code == 503]
        self.assertTrue(degraded, f"/health noticed the hang: {healthSeen[-1]}")
        self.assertEqual(degraded[-1]["status"], "degraded")
        self.assertEqual(degraded[-1]["store"]["state"], "degraded")
        self.assertTrue(degraded[-1]["store"]["reason"])
        self.assertEqual(healthSeen[-1][0], 503, "still degraded at the end of the hang")

        # nothing was acknowledged during the hang
        self.assertEqual(
            sum(w.terminal.pendingLogCount() for w in writers), punches, "no ack while frozen"
        )
        yield threads.deferToThread(self.cluster.thaw)
        yield gatherResults([w.whenAllLogsAcknowledged() for w in writers])
        keys = yield threads.deferToThread(storedKeys, self.url)
        self.assertEqual(len(keys), len(set(keys)), "no log stored twice")
        self.assertEqual(len(keys), WRITERS * 20 + punches, "every log stored")
        for _ in range(100):
            elapsed, code, body = yield timedHealth(running)
            if code == 200:
                break
            yield sleep(0.1)
        self.assertEqual((code, body["status"], body["store"]["state"]), (200, "ok", "ok"))

    @inlineCallbacks
    def test_outageIsOneWarningNotOneTracebackPerBatch(self) -> Any:
        """
        PostgreSQL crashes while terminals upload and comes back: the batches refused meanwhile
        are one warning at the start of the outage and one at its end that counts them; nothing
        is logged as an error or with a traceback.
        """
        events: list[dict[str, Any]] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            if not event.get("log_namespace", "").startswith("tm20.simulator"):
                events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        store = PostgresStore(
            self.url,
            reactor=reactor,
            poolSize=2,
            statementTimeout=2.0,
            reconnectDelay=(0.05, 0.3),
            healthInterval=0.5,
        )
        running = yield startServer(self, store=store)
        writers = []
        for i in range(10):
            terminal = SimulatedTerminal(f"OUTAGE{i:04d}", logs=OUTAGE_LOGS, seed=70 + i)
            connection = TerminalConnection(
                terminal, running.wsURL(), reactor=reactor, batchSize=5, ackTimeout=0.1
            )
            connection.start()
            self.addCleanup(connection.disconnect)
            writers.append(connection)
        for _ in range(200):
            if sum(w.stats.logsAcknowledged for w in writers) >= 100:
                break
            yield sleep(0.05)
        # the work each registration starts (reconciler, clock drift, log counts, connection
        # events) is done before the crash: what the outage meets is log batches (COPY ingest
        # acknowledges the first 100 logs within a few reactor turns of the registrations)
        yield sleep(1.0)
        # ingest is still running when the database dies (COPY ingest is quick: hence the
        # larger uploads)
        self.assertLess(sum(w.stats.logsAcknowledged for w in writers), 10 * OUTAGE_LOGS)
        yield threads.deferToThread(self.cluster.stop, "immediate")
        yield sleep(2.0)
        yield threads.deferToThread(self.cluster.start)
        yield gatherResults([w.whenAllLogsAcknowledged() for w in writers])
        keys = yield threads.deferToThread(storedKeys, self.url)
        self.assertEqual(len(set(keys)), 10 * OUTAGE_LOGS)

        ingest = running.context.ingest
        messages = [e.get("log_format", "") for e in events]
        starts = [e for e in events if e.get("log_format", "").startswith("store unavailable")]
        ends = [e for e in events if e.get("log_format", "").startswith("store available")]
        self.assertEqual((len(starts), len(ends)), (1, 1), messages)
        self.assertEqual(starts[0]["log_level"], LogLevel.warn)
        refusedBatches = ends[0]["refused"]
        self.assertGreater(refusedBatches, 20, "many batches were refused")
        self.assertEqual(ends[0]["items"], ingest.failed, "every refused log is counted")
        loud = [
            e
            for e in events
            if e.get("log_level") in (LogLevel.critical, LogLevel.error) or "log_failure" in e
        ]
        self.assertEqual(loud, [])
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn]
        print(
            f"\noutage: {refusedBatches} batches refused, {len(warnings)} warnings logged:"
            + "".join(f"\n  {e['log_format']}" for e in warnings)
        )
        self.assertLess(len(warnings), 12)

    @inlineCallbacks
    def test_connectionAttemptsHaveDeadlines(self) -> Any:
        """
        With PostgreSQL frozen, a statement fails at its deadline, the C{LISTEN} connection's
        attempt gives up at C{connectTimeout}, the pool keeps trying to reconnect, one attempt
        per slot at a time (attempts never pile up); after SIGCONT everything works again.
        """
        store = PostgresStore(
            self.url,
            reactor=reactor,
            poolSize=2,
            statementTimeout=0.5,
            connectTimeout=0.3,
            reconnectDelay=(0.05, 0.1),
            healthInterval=0.5,
        )
        yield store.start()
        self.addCleanup(store.stop)
        self.addCleanup(self.cluster.thaw)
        yield threads.deferToThread(self.cluster.freeze)

        started = time.monotonic()
        yield self.assertFailure(store.listen("news", lambda c, p: None), StoreUnavailable)
        self.assertLess(time.monotonic() - started, 3.0)

        async def write(cur: Any) -> None:
            await cur.execute("SELECT 1")

        started = time.monotonic()
        yield self.assertFailure(store.runInTransaction(write), StatementTimeout)
        self.assertLess(time.monotonic() - started, 3.0)

        # the pool retries every ~0.4 s, each attempt abandoned at its deadline: sockets to the
        # server never outnumber the slots
        sockets: list[int] = []
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            sockets.append(self.cluster.clientConnections())
            yield sleep(0.02)
        self.assertLessEqual(max(sockets), store.pool.size, sockets)
        self.assertEqual(store.pool.liveConnections, 0)
        self.assertEqual(store.health().state, "degraded")

        yield threads.deferToThread(self.cluster.thaw)
        for _ in range(200):
            if store.pool.liveConnections == store.pool.size:
                break
            yield sleep(0.05)
        self.assertEqual(store.pool.liveConnections, store.pool.size)
        heard: list[str] = []
        yield store.listen("news", lambda channel, payload: heard.append(payload))
        yield store.notify("news", "back")
        for _ in range(100):
            if heard:
                break
            yield sleep(0.05)
        self.assertEqual(heard, ["back"])
