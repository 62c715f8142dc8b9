"""Tests for L{tm20.protocol.paging}."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tm20.protocol.messages import CommandReply
from tm20.protocol.paging import PageTracker, pageCapFor


def _page(
    ret: str,
    first: int | str | None,
    last: int | str | None,
    n: int,
    count: Any,
    *,
    base: int = 0,
    result: bool = True,
) -> CommandReply:
    fields: dict[str, Any] = {"record": [{"enrollid": base + i + 1} for i in range(n)]}
    if count is not None:
        fields["count"] = count
    if first is not None:
        fields["from"] = first
    if last is not None:
        fields["to"] = last
    return CommandReply(ret=ret, sn="S", result=result, fields=fields)


def _user(index: int, count: int) -> CommandReply:
    return CommandReply(
        ret="getallusers",
        sn="S",
        result=True,
        fields={
            "count": count,
            "index": index,
            "enrollid": index + 1,
            "backupnum": 0,
            "admin": 0,
            "record": "x",
        },
    )


def _run(
    total: int, size: int, countIsTotal: bool, inclusiveTo: bool, ret: str = "getnewlog"
) -> tuple[PageTracker, list[Any], str | None]:
    """
    Page through C{total} records as a terminal paging C{size} at a time would answer, until the
    tracker stops; past the end the terminal answers the protocol's empty page.
    """
    tracker = PageTracker(1000)
    got: list[Any] = []
    start = 0
    while True:
        n = max(0, min(size, total - start))
        if n == 0:
            reply = _page(ret, 0, 0, 0, 0)
        else:
            last = start + n - 1 if inclusiveTo else start + n
            reply = _page(ret, start, last, n, total if countIsTotal else n, base=start)
        decision = tracker.accept(reply)
        got.extend(r["enrollid"] for r in decision.records)
        start += n
        if decision.done:
            return tracker, got, decision.why
        assert tracker.pages < 100


class PageSizesTests(SynchronousTestCase):
    """Terminals paging 10, 40 or 50 at a time, in every count/to convention, lose nothing."""

    def test_everyRecordOnce(self) -> None:
        for size in [10, 40, 50]:
            for countIsTotal in [True, False]:
                for inclusiveTo in [True, False]:
                    for total in [0, 1, 9, 10, 30, 40, 49, 50, 51, 99, 100, 101, 137]:
                        tracker, got, why = _run(total, size, countIsTotal, inclusiveTo)
                        assert got == list(range(1, total + 1)), why

    def test_tenAtATimeWithPageSizeCount(self) -> None:
        """The issue's case: 30 logs, 10 a page, count = 10: all 30, ended by the empty page."""
        tracker, got, why = _run(30, 10, countIsTotal=False, inclusiveTo=True)
        assert len(got) == 30
        assert (tracker.pages, why) == (4, "empty page")

    def test_totalCountStopsWithoutAnExtraRoundTrip(self) -> None:
        for inclusiveTo in (True, False):
            tracker, got, why = _run(30, 10, countIsTotal=True, inclusiveTo=inclusiveTo)
            assert len(got) == 30
            assert (tracker.pages, why) == (3, "the total count is reached")


class StopRulesTests(SynchronousTestCase):
    def test_th900OneRecordExclusiveTo(self) -> None:
        """count:1 from 0 to 1: count is not clearly a total, so the next page is asked."""
        tracker = PageTracker(10)
        decision = tracker.accept(_page("getnewlog", 0, 1, 1, 1))
        assert not decision.done
        assert len(decision.records) == 1
        assert decision.page == 1
        assert tracker.accept(_page("getnewlog", 0, 0, 0, 0)).done

    def test_th900TwoUsers(self) -> None:
        tracker = PageTracker(10)
        decision = tracker.accept(_page("getuserlist", 0, 2, 2, 2))
        assert not decision.done
        assert [r["enrollid"] for r in decision.records] == [1, 2]
        # a firmware answering the same page again past the end: stopped, nothing twice
        again = tracker.accept(_page("getuserlist", 0, 2, 2, 2))
        assert again.done and again.records == ()

    def test_docGetuserlistStyle(self) -> None:
        """count = records in this page (<= 40), inclusive to: a short page is not the end."""
        tracker = PageTracker(10)
        first = tracker.accept(_page("getuserlist", 0, 39, 40, 40))
        assert not first.done and len(first.records) == 40
        second = tracker.accept(_page("getuserlist", 40, 79, 40, 40, base=40))
        assert not second.done
        third = tracker.accept(_page("getuserlist", 80, 96, 17, 17, base=80))
        assert not third.done and len(third.records) == 17
        fourth = tracker.accept(_page("getuserlist", 0, 0, 0, 0))
        assert fourth.done and fourth.why == "empty page"
        assert tracker.received == 97

    def test_docLogStyleTotalCount(self) -> None:
        """count:1000 total, from 0 to 49: continue until to+1 reaches the total."""
        tracker = PageTracker(100)
        for page in range(19):
            decision = tracker.accept(
                _page("getnewlog", page * 50, page * 50 + 49, 50, 1000, base=page * 50)
            )
            assert not decision.done, page
        last = tracker.accept(_page("getnewlog", 950, 999, 50, 1000, base=950))
        assert last.done and last.why == "the total count is reached"
        assert tracker.received == 1000

    def test_totalCountExclusiveTo(self) -> None:
        tracker = PageTracker(100)
        assert not tracker.accept(_page("getalllog", 0, 50, 50, 51)).done
        last = tracker.accept(_page("getalllog", 50, 51, 1, 51, base=50))
        assert last.done and len(last.records) == 1

    def test_totalCountInclusiveNotStoppedEarly(self) -> None:
        assert not PageTracker(10).accept(_page("getalllog", 0, 49, 50, 51)).done

    def test_totalCountWithoutFromTo(self) -> None:
        tracker = PageTracker(10)
        assert not tracker.accept(_page("getnewlog", None, None, 50, 80)).done
        assert tracker.accept(_page("getnewlog", None, None, 30, 80, base=50)).done

    def test_stringCount(self) -> None:
        assert not PageTracker(10).accept(_page("getnewlog", "0", "49", 50, "1000")).done

    def test_resultFalse(self) -> None:
        decision = PageTracker(10).accept(_page("getnewlog", 0, 39, 40, 40, result=False))
        assert decision.done and decision.records == ()

    def test_emptyPage(self) -> None:
        decision = PageTracker(10).accept(_page("getuserlist", 0, 0, 0, 0))
        assert decision.done and decision.records == () and decision.why == "empty page"

    def test_emptyAfterFullPage(self) -> None:
        tracker = PageTracker(10)
        assert not tracker.accept(_page("getuserlist", 0, 39, 40, 40)).done
        assert tracker.accept(_page("getuserlist", 0, 0, 0, 0)).done

    def test_countZeroWithRecords(self) -> None:
        decision = PageTracker(10).accept(_page("getuserlist", 0, 39, 40, 0))
        assert decision.done and len(decision.records) == 40

    def test_repeatedPage(self) -> None:
        tracker = PageTracker(10)
        assert not tracker.accept(_page("getuserlist", 0, 39, 40, 40)).done
        repeated = tracker.accept(_page("getuserlist", 0, 39, 40, 40))
        assert repeated.done and repeated.records == ()
        assert repeated.why == "the page repeats the previous one"

    def test_repeatedPageWithoutFromTo(self) -> None:
        tracker = PageTracker(10)
        assert not tracker.accept(_page("getuserlist", None, None, 40, None)).done
        assert tracker.accept(_page("getuserlist", None, None, 40, None)).done
        other = PageTracker(10)
        other.accept(_page("getuserlist", None, None, 40, None))
        assert not other.accept(_page("getuserlist", None, None, 40, None, base=40)).done

    def test_pageCap(self) -> None:
        tracker = PageTracker(3)
        decisions = [
            tracker.accept(_page("getnewlog", i * 50, i * 50 + 49, 50, 10_000, base=i * 50))
            for i in range(3)
        ]
        assert [d.done for d in decisions] == [False, False, True]
        assert decisions[-1].records and "cap" in (decisions[-1].why or "")

    def test_startingOver(self) -> None:
        """A firmware that wraps around to its first page is stopped, nothing counted twice."""
        tracker = PageTracker(10)
        assert not tracker.accept(_page("getnewlog", 0, 9, 10, 10)).done
        assert not tracker.accept(_page("getnewlog", 10, 19, 10, 10, base=10)).done
        wrapped = tracker.accept(_page("getnewlog", 0, 9, 10, 10))
        assert wrapped.done and wrapped.records == ()
        assert wrapped.why == "the terminal starts over"
        assert tracker.received == 20

    def test_stuckFromIsNotAnEnd(self) -> None:
        """A firmware always saying from 0 while to advances is still paged to the end."""
        tracker = PageTracker(10)
        for i in range(3):
            assert not tracker.accept(_page("getnewlog", 0, 10 * i + 9, 10, 10, base=10 * i)).done
        assert tracker.accept(_page("getnewlog", 0, 0, 0, 0)).done
        assert tracker.received == 30

    def test_recordCap(self) -> None:
        tracker = PageTracker(100, maxRecords=25)
        assert not tracker.accept(_page("getnewlog", 0, 9, 10, 10)).done
        assert not tracker.accept(_page("getnewlog", 10, 19, 10, 10, base=10)).done
        last = tracker.accept(_page("getnewlog", 20, 29, 10, 10, base=20))
        assert last.done and len(last.records) == 10 and "record cap" in (last.why or "")

    def test_noRecordList(self) -> None:
        reply = CommandReply(ret="getuserlist", sn=None, result=True, fields={"count": 0})
        assert PageTracker(10).accept(reply).done

    def test_acceptAfterDone(self) -> None:
        tracker = PageTracker(10)
        tracker.accept(_page("getnewlog", 0, 0, 0, 0))
        again = tracker.accept(_page("getnewlog", 0, 39, 40, 40))
        assert again.done and again.records == () and again.why == "already finished"

    def test_invalidArguments(self) -> None:
        with self.assertRaises(ValueError):
            PageTracker(0)
        with self.assertRaises(ValueError):
            PageTracker(1, maxRecords=0)


class GetallusersTests(SynchronousTestCase):
    def test_continueWhileIndexBelowCountMinusOne(self) -> None:
        tracker = PageTracker(10)
        decisions = [tracker.accept(_user(i, 3)) for i in range(3)]
        assert [d.done for d in decisions] == [False, False, True]
        assert [d.records[0]["enrollid"] for d in decisions] == [1, 2, 3]
        assert "index" not in decisions[0].records[0]
        assert decisions[0].records[0]["record"] == "x"

    def test_single(self) -> None:
        assert PageTracker(10).accept(_user(0, 1)).done

    def test_countZero(self) -> None:
        reply = CommandReply(ret="getallusers", sn=None, result=True, fields={"count": 0})
        decision = PageTracker(10).accept(reply)
        assert decision.done and decision.records == ()

    def test_repeatedIndex(self) -> None:
        tracker = PageTracker(10)
        tracker.accept(_user(0, 5))
        decision = tracker.accept(_user(0, 5))
        assert decision.done and decision.records == ()

    def test_cap(self) -> None:
        tracker = PageTracker(2)
        tracker.accept(_user(0, 5))
        assert tracker.accept(_user(1, 5)).done

    def test_resultFalse(self) -> None:
        reply = CommandReply(ret="getallusers", sn=None, result=False, reason=1)
        assert PageTracker(10).accept(reply).done


class PagingTests(SynchronousTestCase):
    def test_pageCapFor(self) -> None:
        assert pageCapFor(3000) == 3000 + 10
        assert pageCapFor(3001, pageSize=50, slack=0) == 61
        assert pageCapFor(None) == 10_000
