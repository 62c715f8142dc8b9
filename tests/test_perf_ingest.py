"""
Behaviour of the ingest fast paths (no timing assertions): SQLite's group commit of log batches,
and the parser on the frames the load generator sends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tm20.model import LogInsertResult
from tm20.protocol.messages import LogRecord, SendLog
from tm20.protocol.parser import parseFrame
from tm20.services.ingest import LogIngest
from tm20.store.sqlite import SQLiteStore

from .storecontract import punch


class SQLiteGroupCommitTests(TestCase):
    """
    Concurrent batches share transactions (the ingest service's group commit on SQLite); each
    caller keeps its own counts.
    """

    @inlineCallbacks
    def setUp(self) -> Generator[Deferred[Any], Any, None]:
        directory = tempfile.mkdtemp(prefix="tm20-perf-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        clock = Clock()
        clock.advance(1_777_000_000)
        self.store = SQLiteStore(os.path.join(directory, "t.sqlite3"), reactor=reactor, clock=clock)
        yield self.store.start()
        self.addCleanup(self.store.stop)
        self.ingest = LogIngest(self.store, reactor=reactor)
        self.addCleanup(self.ingest.stop)

    @inlineCallbacks
    def test_concurrentCallersGetTheirOwnCounts(self) -> Generator[Deferred[Any], Any, None]:
        yield self.ingest.ingest("T0", [punch(1, "2026-04-30 07:00:00")])  # an old row
        calls = []
        for i in range(30):
            records = [punch(100 + i, f"2026-04-30 08:00:{s:02d}") for s in range(10)]
            if i % 4 == 0:
                records.append(records[0])  # a repeat within the batch
            calls.append(self.ingest.ingest(f"T{i}", records))
        # a record another caller sends in the same transaction, and an old row
        calls.append(self.ingest.ingest("T1", [punch(101, "2026-04-30 08:00:00")]))
        calls.append(self.ingest.ingest("T0", [punch(1, "2026-04-30 07:00:00")]))
        results = yield defer.gatherResults(calls)
        for i in range(30):
            self.assertEqual(results[i], LogInsertResult(10, 1 if i % 4 == 0 else 0), i)
        self.assertEqual(results[30], LogInsertResult(0, 1))
        self.assertEqual(results[31], LogInsertResult(0, 1))
        self.assertEqual((yield self.store.countLogs(None)), 301)

    @inlineCallbacks
    def test_aRefusedBatchFailsAlone(self) -> Generator[Deferred[Any], Any, None]:
        """A batch the database cannot bind fails; the batches merged with it are stored."""
        good = self.ingest.ingest("T1", [punch(1, "2026-04-30 08:00:00")])
        bad = self.ingest.ingest("T2", [punch(2, "2026-04-30 08:00:00", temp=object())])
        other = self.ingest.ingest("T3", [punch(3, "2026-04-30 08:00:00")])
        self.assertEqual((yield good), LogInsertResult(1, 0))
        yield self.assertFailure(bad, Exception)
        self.assertEqual((yield other), LogInsertResult(1, 0))
        self.assertEqual((yield self.store.countLogs(None)), 2)
        self.assertEqual((yield self.store.countLogs("T2")), 0)


class LoadGeneratorFrameTests(TestCase):
    """The C{sendlog} frame of C{bench.loadgen} parses as the records it describes."""

    def test_sendlogFrame(self) -> None:
        from bench.loadgen import sendlogFrame

        message = parseFrame(sendlogFrame("SN1", 5000, 10))
        assert isinstance(message, SendLog)
        self.assertEqual((message.sn, message.count, message.logindex), ("SN1", 10, 5000))
        self.assertEqual(len(message.records), 10)
        for record in message.records:
            self.assertIsInstance(record, LogRecord)
            self.assertEqual((record.mode, record.event, record.extra), (1, 0, {}))
