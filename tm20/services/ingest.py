"""Attendance log ingest: a batch is acknowledged only once it is committed."""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from tm20.interfaces import IStore
from tm20.model import LogInsertResult
from tm20.protocol.messages import LogRecord


class LogIngest:
    """
    Hands log batches to the store (the PostgreSQL store groups concurrent batches into one
    commit) and keeps counters for the health/metrics output.
    """

    log = Logger()

    def __init__(self, store: IStore) -> None:
        self.store = store
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
            return result

        def failed(f):  # type: ignore[no-untyped-def]
            self.failed += len(records)
            self.log.warn(
                "could not store {n} logs of {sn}: {error}",
                n=len(records),
                sn=sn,
                error=f.getErrorMessage(),
            )
            return f

        return d.addCallbacks(counted, failed)
