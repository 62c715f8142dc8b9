"""Tests for L{tm20.protocol.paging}."""

from __future__ import annotations

from typing import Any

import pytest

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


class TestStopRules:
    def test_th900OneRecordExclusiveTo(self) -> None:
        decision = PageTracker(10).accept(_page("getnewlog", 0, 1, 1, 1))
        assert decision.done
        assert len(decision.records) == 1
        assert decision.page == 1

    def test_th900TwoUsers(self) -> None:
        decision = PageTracker(10).accept(_page("getuserlist", 0, 2, 2, 2))
        assert decision.done
        assert [r["enrollid"] for r in decision.records] == [1, 2]

    def test_docGetuserlistStyle(self) -> None:
        """count = records in this page (<= 40), inclusive to; stop on the short page."""
        tracker = PageTracker(10)
        first = tracker.accept(_page("getuserlist", 0, 39, 40, 40))
        assert not first.done and len(first.records) == 40
        second = tracker.accept(_page("getuserlist", 40, 79, 40, 40, base=40))
        assert not second.done
        third = tracker.accept(_page("getuserlist", 80, 96, 17, 17, base=80))
        assert third.done and third.why == "short page"
        assert len(third.records) == 17
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
        # 51 records in total: 0..49 inclusive is not the end.
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

    def test_learnsPageSize(self) -> None:
        tracker = PageTracker(10)
        assert not tracker.accept(_page("getnewlog", 0, 49, 50, 50)).done
        assert tracker.pageSize == 50
        assert tracker.accept(_page("getnewlog", 50, 94, 45, 45, base=50)).done

    def test_customPageSize(self) -> None:
        assert not PageTracker(10, pageSize=20).accept(_page("x", 0, 19, 20, 20)).done

    def test_noRecordList(self) -> None:
        reply = CommandReply(ret="getuserlist", sn=None, result=True, fields={"count": 0})
        assert PageTracker(10).accept(reply).done

    def test_acceptAfterDone(self) -> None:
        tracker = PageTracker(10)
        tracker.accept(_page("getnewlog", 0, 1, 1, 1))
        again = tracker.accept(_page("getnewlog", 0, 39, 40, 40))
        assert again.done and again.records == () and again.why == "already finished"

    def test_invalidArguments(self) -> None:
        with pytest.raises(ValueError):
            PageTracker(0)
        with pytest.raises(ValueError):
            PageTracker(1, pageSize=0)


class TestGetallusers:
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


def test_pageCapFor() -> None:
    assert pageCapFor(3000) == 75 + 10
    assert pageCapFor(3001, pageSize=50, slack=0) == 61
    assert pageCapFor(None) == 1000
