"""
Ingest of what terminals push: a batch is acknowledged only once it is committed.

A record that can never be stored (the parser says so: a bad time, a value out of range, not an
object ...) is held verbatim in the quarantine instead, committed before the acknowledgement
too, so that it neither blocks the terminal's backlog (a refused batch is resent forever) nor is
lost.

The service owns the group commit of log batches (L{GroupCommitQueue}): it groups the batches
of every terminal, bounds the rows waiting, signals backpressure and retries a refused flush
batch by batch, for both stores alike; a store only writes the batches it is given in one
transaction (L{ILogBatchWriter}) and says how it likes its flushes (its
L{tm20.model.LogFlushPolicy}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tm20.errors import StoreUnavailable
from tm20.interfaces import ILogBatchWriter, ILogIngest, IStore
from tm20.model import LogInsertResult, Terminal
from tm20.protocol.messages import LogRecord, RejectedRecord, SendLog
from tm20.protocol.replies import sendlogAckFields
from tm20.protocol.timefmt import cloudTime
from tm20.services.groupcommit import GroupCommitQueue
from tm20.services.outage import OutageLog

#: Reasons named in the quarantine warning (the API lists them all).
_REASONS_LOGGED = 3


@implementer(ILogIngest)
class LogIngest:
    """
    Groups the log batches of all terminals into few commits (its bounded L{queue}, around
    the store's L{ILogBatchWriter}), holds unstorable records in the quarantine, and keeps
    counters for the health/metrics output.  Batches refused because the store is unavailable
    are logged once per outage (L{OutageLog}), not once each.

    It owns backpressure: L{addBackpressureObserver} tells whoever reads from terminals to
    stop while its log queue is full (L{full}) and to read again once it has drained.

    @ivar queue: the group commit of log batches (for tests and metrics).
    """

    log = Logger()

    def __init__(
        self,
        store: IStore,
        clock: Any = None,
        metrics: Any = None,
        defaultTimezone: str | None = None,
        reactor: Any = None,
    ) -> None:
        """
        @param store: the store; it provides L{ILogBatchWriter}.
        @param clock: the wall clock of the acknowledgements' C{cloudtime} and of the metrics.
        @param defaultTimezone: the time zone of the C{cloudtime} of terminals without their
            own (C{None}: the server's).
        @param reactor: the timers of the log queue (the global reactor when C{None}).
        """
        if clock is None:
            from twisted.internet import reactor as clock
        if reactor is None:
            from twisted.internet import reactor
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.defaultTimezone = defaultTimezone
        #: Told C{(sn, message)} of every C{sendlog} batch committed, before its ack (the
        #: server's watch is told after the ack, by the terminal protocol).
        self.batchObservers: list[Callable[[str, SendLog], object]] = []
        self.outage = OutageLog("log batches", clock)
        self.received = 0
        self.inserted = 0
        self.duplicates = 0
        self.failed = 0
        self.quarantined = 0
        writer = ILogBatchWriter(store)
        policy = writer.logFlushPolicy
        self.queue: GroupCommitQueue[LogRecord, LogInsertResult] = GroupCommitQueue(
            reactor,
            writer.writeLogBatches,
            flushInterval=policy.flushInterval,
            flushRows=policy.flushRows,
            maxPendingRows=policy.maxQueuedRows,
            maxConcurrentFlushes=policy.maxConcurrentFlushes,
            isRetryable=policy.isRetryable,
        )

    # -- backpressure --------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """C{True} while the log queue is full: stop reading from terminals."""
        return self.queue.full

    @property
    def pendingRows(self) -> int:
        """Log records accepted and not yet committed (queued or being written)."""
        return self.queue.pendingRows

    def addBackpressureObserver(self, observer: Callable[[bool], object]) -> Callable[[], None]:
        """
        Call C{observer(True)} when the log queue becomes full (from when C{maxQueuedRows} of
        the store's L{tm20.model.LogFlushPolicy} rows wait for a commit) and C{observer(False)}
        once it has drained to half (at once with C{True} if it is full now).

        @return: a function that unregisters C{observer}.
        """
        return self.queue.addBackpressureObserver(observer)

    def stop(self) -> Deferred[None]:
        """
        Refuse new log batches (C{StoreUnavailable}), write those queued and wait for every
        flush: call before stopping the store.

        @return: a L{Deferred} firing when nothing is left (it never fails).
        """
        return self.queue.close()

    # -- ingest --------------------------------------------------------------------------------

    def sendlog(self, sn: str, terminal: Terminal | None, message: SendLog) -> Deferred[Any]:
        """
        Store a C{sendlog} batch of terminal C{sn} (its unstorable records in the quarantine),
        then tell the L{batchObservers}.

        @return: a L{Deferred} firing, once committed, with the acknowledgement's fields
            (without C{ret}), C{cloudtime} in C{terminal}'s time zone; failing if the batch
            could not be committed (nothing may be acknowledged then).
        """

        d = self.ingest(sn, message.records, message.rejected)
        return d.addCallback(lambda _: self.acknowledge(sn, terminal, message))

    def acknowledge(
        self,
        sn: str,
        terminal: Terminal | None,
        message: SendLog,
        access: int | None = None,
        accessMessage: str | None = None,
    ) -> dict[str, Any]:
        """
        After C{message} of C{sn} is committed (here, or with its access decision): tell the
        L{batchObservers} and build the acknowledgement's fields (C{cloudtime} in C{terminal}'s
        time zone; C{access} and its C{message} when the punch was decided).
        """
        for observer in self.batchObservers:
            try:
                observer(sn, message)
            except Exception:
                self.log.failure("sendlog observer failed")
        zone = terminal.timezone if terminal is not None and terminal.timezone else None
        return sendlogAckFields(
            count=message.count,
            logindex=message.logindex,
            cloudtime=cloudTime(self.clock.seconds(), zone or self.defaultTimezone),
            access=access,
            message=accessMessage,
        )

    def ingest(
        self,
        sn: str,
        records: Sequence[LogRecord],
        rejected: Sequence[RejectedRecord] = (),
        source: str = "sendlog",
    ) -> Deferred[LogInsertResult]:
        """
        Store C{records} of terminal C{sn} and hold C{rejected} (same batch) in its quarantine.

        @return: a L{Deferred} firing once both are committed, failing if either could not be.
        """
        if not rejected:
            return self._addLogs(sn, records)
        d = self.quarantine(sn, source, rejected)
        return d.addCallback(lambda _: self._addLogs(sn, records))

    def quarantine(self, sn: str, source: str, rejected: Sequence[RejectedRecord]) -> Deferred[int]:
        """
        Hold C{rejected} records of terminal C{sn} (from command C{source}) in the quarantine,
        with one warning naming the terminal.

        @return: a L{Deferred} of the number newly held (a resent record is held once), fired
            after the commit.
        """
        self.received += len(rejected)
        d: Deferred[int] = self.store.quarantineRecords(sn, source, list(rejected))

        def held(count: int) -> int:
            self.quarantined += count
            self.outage.succeeded()
            self.log.warn(
                "{sn}: {n} {source} record(s) can never be stored; held in quarantine"
                " ({held} new): {reasons}",
                sn=sn,
                source=source,
                n=len(rejected),
                held=count,
                reasons="; ".join(r.reason for r in rejected[:_REASONS_LOGGED])
                + ("; ..." if len(rejected) > _REASONS_LOGGED else ""),
            )
            return count

        def failed(f: Failure) -> Failure:
            return self._failed(f, sn, len(rejected), "quarantined records")

        return d.addCallbacks(held, failed)

    def addLogs(self, sn: str, records: Sequence[LogRecord]) -> Deferred[LogInsertResult]:
        """
        Store C{records} of terminal C{sn} through the group commit, without the counters,
        metrics and outage log of the batches terminals push (a page of a log pull).

        @return: a L{Deferred} firing after the commit; failing at once with
            L{tm20.services.groupcommit.LogQueueFull} (a C{StoreUnavailable}) when the queue
            has no room.
        """
        if not records:
            return succeed(LogInsertResult(inserted=0, duplicates=0))
        return self.queue.submit(sn, records)

    def _addLogs(self, sn: str, records: Sequence[LogRecord]) -> Deferred[LogInsertResult]:
        self.received += len(records)
        started = self.clock.seconds()
        d = self.addLogs(sn, records)

        def counted(result: LogInsertResult) -> LogInsertResult:
            if self.metrics is not None:
                self.metrics.storeCommit.observe(max(0.0, self.clock.seconds() - started))
                self.metrics.storeBatch.observe(len(records))
            self.inserted += result.inserted
            self.duplicates += result.duplicates
            self.outage.succeeded()
            return result

        def failed(f: Failure) -> Failure:
            return self._failed(f, sn, len(records), "logs")

        return d.addCallbacks(counted, failed)

    def _failed(self, f: Failure, sn: str, n: int, what: str) -> Failure:
        self.failed += n
        if f.check(StoreUnavailable):
            self.outage.refusedOne(n, f.getErrorMessage())
            return f
        self.log.warn(
            "could not store {n} {what} of {sn}: {error}",
            n=n,
            what=what,
            sn=sn,
            error=f.getErrorMessage(),
        )
        return f
