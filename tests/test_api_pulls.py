"""The pull service with a fake command service: persistence paces the paging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from tm20.errors import StoreUnavailable
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
        self.failOn: int | None = None

    def getTerminal(self, sn: str) -> Deferred[Any]:
        return succeed(None)

    def addLogs(self, sn: str, records: Any) -> Deferred[Any]:
        self.batches.append(len(records))
        if self.failOn == len(self.batches):
            return fail(StoreUnavailable("down"))
        self.pending = Deferred()
        return self.pending


class PullTests(SynchronousTestCase):
    def setUp(self) -> None:
        from twisted.internet.task import Clock

        self.session = Session()
        self.store = Store()
        self.pulls = PullService(self.store, CommandService(Registry(self.session), Clock()))  # type: ignore[arg-type]

    def test_theNextPageWaitsForTheCommit(self) -> None:
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

    def test_onePullPerTerminal(self) -> None:
        self.pulls.pullLogs("SN1")
        self.failureResultOf(self.pulls.pullUsers("SN1"), PullBusyError)
        self.failureResultOf(self.pulls.pullLogs("SN1"), PullBusyError)

    def test_invalidDates(self) -> None:
        self.failureResultOf(
            self.pulls.pullLogs("SN1", allLogs=True, since="2024-02-30"), ValueError
        )
        self.assertEqual(self.session.sent, [])
