"""The pull service with a fake command service: persistence paces the paging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tm20.errors import CommandTimeout, StoreUnavailable
from tm20.model import LogInsertResult
from tm20.protocol.messages import CommandReply
from tm20.services.commands import CommandService
from tm20.services.pulls import PullBusyError, PullService


class Session:
    """A connected terminal whose replies the test gives, one at a time."""

    def __init__(self) -> None:
        self.sent: list[tuple[Mapping[str, Any], Deferred[Any]]] = []

    def executeCommand(self, payload: Mapping[str, Any], timeout: float) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.sent.append((payload, d))
        return d

    def page(self, start: int, n: int, total: int) -> None:
        payload, d = self.sent[-1]
        records = [
            {"enrollid": i + 1, "time": f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}", "mode": 1}
            for i in range(start, start + n)
        ]
        d.callback(
            CommandReply(
                ret=payload["cmd"],
                sn="SN1",
                result=True,
                fields={"count": total, "from": start, "to": start + n - 1, "record": records},
            )
        )


class Registry:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, sn: str) -> Any:
        return self.session


class Store:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.pending: Deferred[Any] | None = None
        self.pendings: list[Deferred[Any]] = []
        self.failOn: int | None = None

    def getTerminal(self, sn: str) -> Deferred[Any]:
        return succeed(None)

    def addLogs(self, sn: str, records: Any) -> Deferred[Any]:
        self.batches.append(len(records))
        if self.failOn == len(self.batches):
            return fail(StoreUnavailable("down"))
        self.pending = Deferred()
        self.pendings.append(self.pending)
        return self.pending


class PullTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.session = Session()
        self.store = Store()
        self.pulls = PullService(self.store, CommandService(Registry(self.session), Clock()))  # type: ignore[arg-type]

    def test_theNextPageWaitsForTheCommit(self) -> None:
        """With a store window of 1, each page is committed before the next one is asked."""
        self.pulls = PullService(
            self.store,  # type: ignore[arg-type]
            CommandService(Registry(self.session), Clock()),  # type: ignore[arg-type]
            logStoreWindow=1,
        )
        d = self.pulls.pullLogs("SN1", allLogs=True, since="2024-01-01")
        self.assertEqual(
            self.session.sent[0][0], {"cmd": "getalllog", "stn": True, "from": "2024-01-01"}
        )
        self.session.page(0, 50, 120)
        self.assertEqual(len(self.session.sent), 1)  # not before the first page is stored
        assert self.store.pending is not None
        self.store.pending.callback(LogInsertResult(inserted=50, duplicates=0))
        self.assertEqual(self.session.sent[1][0], {"cmd": "getalllog", "stn": False})
        self.session.page(50, 50, 120)
        self.store.pending.callback(LogInsertResult(inserted=49, duplicates=1))
        self.session.page(100, 20, 120)
        self.store.pending.callback(LogInsertResult(inserted=20, duplicates=0))
        result = self.successResultOf(d)
        self.assertEqual((result.received, result.inserted, result.duplicates), (120, 119, 1))
        self.assertEqual(self.store.batches, [50, 50, 20])

    def test_aStoreFailureStopsThePaging(self) -> None:
        self.store.failOn = 2
        d = self.pulls.pullLogs("SN1")
        self.session.page(0, 50, 500)
        assert self.store.pending is not None
        self.store.pending.callback(LogInsertResult(inserted=50, duplicates=0))
        self.session.page(50, 50, 500)
        self.failureResultOf(d, StoreUnavailable)
        self.assertEqual(len(self.session.sent), 2)
        self.assertFalse(self.pulls.busy("SN1"))

    def test_pagesAreAskedWhileEarlierOnesAreStored(self) -> None:
        """
        The next page is asked while earlier ones are being stored, at most C{logStoreWindow}
        pages being stored at once; the pull ends once every page is committed.
        """
        self.pulls = PullService(
            self.store,  # type: ignore[arg-type]
            CommandService(Registry(self.session), Clock()),  # type: ignore[arg-type]
            logStoreWindow=3,
        )
        d = self.pulls.pullLogs("SN1", allLogs=True)
        self.session.page(0, 50, 220)
        self.assertEqual(len(self.session.sent), 2)  # asked before page 1 is committed
        self.session.page(50, 50, 220)
        self.assertEqual(len(self.session.sent), 3)
        self.session.page(100, 50, 220)
        self.assertEqual(len(self.session.sent), 3, "three pages being stored: wait")
        self.store.pendings[0].callback(LogInsertResult(inserted=50, duplicates=0))
        self.assertEqual(len(self.session.sent), 4)
        self.assertEqual(self.session.sent[3][0], {"cmd": "getalllog", "stn": False})
        self.session.page(150, 50, 220)
        self.store.pendings[2].callback(LogInsertResult(inserted=50, duplicates=0))
        self.store.pendings[1].callback(LogInsertResult(inserted=48, duplicates=2))
        self.session.page(200, 20, 220)
        self.assertNoResult(d)  # the last pages are not committed yet
        self.store.pendings[4].callback(LogInsertResult(inserted=20, duplicates=0))
        self.assertNoResult(d)
        self.store.pendings[3].callback(LogInsertResult(inserted=50, duplicates=0))
        result = self.successResultOf(d)
        self.assertEqual((result.received, result.inserted, result.duplicates), (220, 218, 2))
        self.assertEqual(self.store.batches, [50, 50, 50, 50, 20])
        self.assertEqual(len(self.session.sent), 5)
        self.assertFalse(self.pulls.busy("SN1"))

    def test_anEarlierStoreFailureStopsThePaging(self) -> None:
        """
        A page whose storing fails while later pages are asked stops the paging: no page is
        asked once the failure is known, and the pull fails after the other stores finished.
        """
        d = self.pulls.pullLogs("SN1")
        self.session.page(0, 50, 500)
        self.session.page(50, 50, 500)
        self.assertEqual(len(self.session.sent), 3)
        self.store.pendings[0].errback(StoreUnavailable("down"))
        self.session.page(100, 50, 500)
        self.assertEqual(len(self.session.sent), 3)
        self.assertNoResult(d)  # pages 2 and 3 are still being stored
        self.assertTrue(self.pulls.busy("SN1"))
        self.store.pendings[1].callback(LogInsertResult(inserted=50, duplicates=0))
        self.store.pendings[2].callback(LogInsertResult(inserted=50, duplicates=0))
        self.failureResultOf(d, StoreUnavailable)
        self.assertFalse(self.pulls.busy("SN1"))

    def test_aCommandFailureWaitsForTheStores(self) -> None:
        """When the terminal stops answering, the pages received are still stored first."""
        d = self.pulls.pullLogs("SN1")
        self.session.page(0, 50, 500)
        self.session.sent[-1][1].errback(CommandTimeout("no reply"))
        self.assertNoResult(d)
        self.store.pendings[0].callback(LogInsertResult(inserted=50, duplicates=0))
        self.failureResultOf(d, CommandTimeout)
        self.assertFalse(self.pulls.busy("SN1"))

    def test_onePullPerTerminal(self) -> None:
        self.pulls.pullLogs("SN1")
        self.failureResultOf(self.pulls.pullUsers("SN1"), PullBusyError)
        self.failureResultOf(self.pulls.pullLogs("SN1"), PullBusyError)

    def test_invalidDates(self) -> None:
        self.failureResultOf(
            self.pulls.pullLogs("SN1", allLogs=True, since="2024-02-30"), ValueError
        )
        self.assertEqual(self.session.sent, [])
