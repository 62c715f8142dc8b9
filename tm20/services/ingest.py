"""Attendance log ingest: a batch is acknowledged only once it is committed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from tm20.errors import StoreUnavailable
from tm20.interfaces import IStore
from tm20.model import LogInsertResult
from tm20.protocol.messages import LogRecord
from tm20.services.outage import OutageLog


class LogIngest:
    """
    Hands log batches to the store (the PostgreSQL store groups concurrent batches into one
    commit) and keeps counters for the health/metrics output.  Batches refused because the
    store is unavailable are logged once per outage (L{OutageLog}), not once each.
    """

    log = Logger()

    def __init__(self, store: IStore, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = store
        self.outage = OutageLog("log batches", clock)
        self.received = 0
        self.inserted = 0
        self.duplicates = 0
        self.failed = 0

    def ingest(self, sn: str, records: Sequence[LogRecord]) -> Deferred[LogInsertResult]:
        """Store C{records} of terminal C{sn}; fires after commit, fails if nothing was stored."""
        self.received += len(records)
        d: Deferred[LogInsertResult] = self.store.addLogs(sn, list(records))

        def counted(result: LogInsertResult) -> LogInsertResult:
            self.inserted += result.inserted
            self.duplicates += result.duplicates
            self.outage.succeeded()
            return result

        def failed(f):  # type: ignore[no-untyped-def]
            self.failed += len(records)
            if f.check(StoreUnavailable):
                self.outage.refusedOne(len(records), f.getErrorMessage())
                return f
            self.log.warn(
                "could not store {n} logs of {sn}: {error}",
                n=len(records),
                sn=sn,
                error=f.getErrorMessage(),
            )
            return f

        return d.addCallbacks(counted, failed)
