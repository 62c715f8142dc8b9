"""
Chaos test of L{tm20.store.postgres.PostgresStore}: PostgreSQL crashes (C{pg_ctl stop -m
immediate}) and comes back while terminals upload logs.

It always runs on a private cluster (it kills the server), even when C{TM20_TEST_DATABASE_URL}
names one.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import psycopg2
from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.serverfixture import privateDatabase, sleep
from tm20.errors import StoreUnavailable
from tm20.protocol.messages import LogRecord
from tm20.services.ingest import LogIngest
from tm20.store.postgres import PostgresStore

#: Records per batch, and writers (terminals) uploading at the same time.
BATCH = 10
WRITERS = 12


class _Writer:
    """
    One terminal: sends numbered batches; a batch that fails is sent again (as a terminal
    resends what was not acknowledged) until it is acknowledged.
    """

    def __init__(self, ingest: LogIngest, sn: str) -> None:
        self.ingest = ingest
        self.sn = sn
        self.acked: set[tuple[str, int, str]] = set()
        self.inserted = 0
        self.unavailable = 0
        self.unexpected: list[str] = []
        self.ackTimes: list[float] = []
        self.stopping = False

    def batch(self, number: int) -> list[LogRecord]:
        return [
            LogRecord(enrollid=number * BATCH + i + 1, time="2026-04-30 08:00:00")
            for i in range(BATCH)
        ]

    @inlineCallbacks
    def run(self) -> Generator[Deferred[Any], Any, None]:
        number = 0
        while not self.stopping:
            records = self.batch(number)
            try:
                result = yield self.ingest.ingest(self.sn, records)
            except StoreUnavailable:
                self.unavailable += 1
                yield sleep(0.02)
                continue
            except Exception as e:  # anything else is a bug the test reports
                self.unexpected.append(repr(e))
                yield sleep(0.02)
                continue
            if result.inserted + result.duplicates != BATCH:
                self.unexpected.append(f"counts of batch {number}: {result}")
            self.inserted += result.inserted
            self.acked.update((self.sn, r.enrollid, r.time) for r in records)
            self.ackTimes.append(time.monotonic())
            number += 1


class ChaosTests(TestCase):
    timeout = 120

    @inlineCallbacks
    def test_crashAndRestartWhileWriting(self) -> Generator[Deferred[Any], Any, None]:
        """
        Writers upload logs while PostgreSQL is killed and restarted.  Calls fail with
        L{StoreUnavailable} while it is down (nothing else); ingest resumes by itself afterwards;
        every acknowledged log is in the database exactly once, and nothing else is.
        """
        cluster, url = yield privateDatabase(self, "tm20_chaos")
        store = PostgresStore(
            url, reactor=reactor, poolSize=3, statementTimeout=5.0, reconnectDelay=(0.05, 0.3)
        )
        self.addCleanup(store.stop)
        yield store.start()
        ingest = LogIngest(store, reactor=reactor)  # the server's road: its group commit
        self.addCleanup(ingest.stop)
        writers = [_Writer(ingest, f"TERM{w:02d}") for w in range(WRITERS)]
        running = gatherResults([w.run() for w in writers], consumeErrors=True)

        yield sleep(0.5)
        self.assertTrue(all(w.ackTimes for w in writers), "every writer stored before the crash")
        yield threads.deferToThread(cluster.stop, "immediate")
        yield sleep(0.7)
        restartedAt = time.monotonic()
        yield threads.deferToThread(cluster.start)

        # ingest resumes, without restarting the store
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(sum(t > restartedAt for t in w.ackTimes) >= 3 for w in writers):
                break
            yield sleep(0.05)
        for w in writers:
            w.stopping = True
        yield running

        self.assertEqual([e for w in writers for e in w.unexpected], [])
        self.assertGreater(sum(w.unavailable for w in writers), 0, "the outage was noticed")
        for w in writers:
            resumed = sum(t > restartedAt for t in w.ackTimes)
            self.assertGreaterEqual(resumed, 3, f"{w.sn} stored again after the restart")
        self.assertGreater(store.pool.connectionsMade, store.pool.size)

        acked = set().union(*(w.acked for w in writers))
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT sn, enrollid, time, count(*) FROM attendance_logs GROUP BY 1, 2, 3"
                )
                rows = cur.fetchall()
        finally:
            conn.close()
        self.assertEqual([r for r in rows if r[3] != 1], [], "no log stored twice")
        stored = {(sn, enrollid, t) for sn, enrollid, t, _ in rows}
        self.assertEqual(acked - stored, set(), "every acknowledged log is stored")
        # every batch was resent until acknowledged, so nothing else is stored either
        self.assertEqual(stored - acked, set())
        # a batch committed just as the server died is acknowledged later as duplicates
        self.assertLessEqual(sum(w.inserted for w in writers), len(stored))
