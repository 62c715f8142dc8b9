"""
When to stop asking a terminal for the next page (C{stn:false}) of C{getuserlist}, C{getnewlog},
C{getalllog} and C{getallusers}.

The protocol does not say (protocol notes, section 7) and firmwares disagree on what C{count}
(page size or total) and C{to} (inclusive or exclusive) mean, and on the page size (40, 50, or
whatever a firmware picks), so L{PageTracker} applies the robust rule of section 7 and nothing
else.  It stops:

  - on C{result:false};
  - on an empty page, or C{count:0};
  - when C{count} is clearly a total (larger than the page) and the page reaches it (C{to + 1}
    for an inclusive C{to}, C{to} for an exclusive one, else the records received so far);
  - on a page that repeats the previous one, or the first one (the terminal starts over);
  - at a page cap, or at a record cap (the terminal cannot hold more).

A short page is I{not} an end: a firmware paging 10 at a time whose C{count} is the page size
would otherwise be cut after its first page.  Such a pagination ends with the terminal's empty
page (one extra round trip).  It is pure: the caller sends the requests
(L{tm20.protocol.commands.pageRequest}) and feeds it the replies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tm20.protocol.messages import CommandReply

__all__ = ["DEFAULT_MAX_PAGES", "PageDecision", "PageTracker", "pageCapFor"]

#: The page cap when the terminal's capacity is unknown: 100 000 records at 10 a page.
DEFAULT_MAX_PAGES = 10_000

#: The replies that carry one credential each, numbered by C{index} out of C{count}.
_SINGLE_RECORD_COMMANDS = frozenset({"getallusers"})


def pageCapFor(capacity: int | None, pageSize: int = 1, slack: int = 10) -> int:
    """
    A page cap for a terminal of the given capacity.

    @param capacity: the number of records the terminal can hold (e.g. C{devinfo} C{logsize}),
        or C{None} when unknown (then L{DEFAULT_MAX_PAGES}).
    @param pageSize: the smallest page size to allow for (1 by default: a page that is not the
        last holds at least one record, so the cap never cuts a pagination of C{capacity}
        records however the terminal pages them).
    @param slack: extra pages allowed.
    """
    if capacity is None or capacity < 0:
        return DEFAULT_MAX_PAGES
    return -(-capacity // max(pageSize, 1)) + slack


def _intOrNone(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


@attrs.frozen
class PageDecision:
    """
    What to do after one page.

    @ivar records: the new raw records of this page (objects from the reply's C{record} list, or
        the reply's own fields for C{getallusers}); empty for a repeated page.
    @ivar done: C{True} to stop; C{False} to request the next page with C{stn:false}.
    @ivar why: why the pagination stopped (C{None} while it continues).
    @ivar page: the number of this page, from 1.
    """

    records: tuple[Mapping[str, Any], ...]
    done: bool
    why: str | None
    page: int


class PageTracker:
    """
    The state of one pagination (one command to one terminal).

    @ivar pages: the number of replies accepted.
    @ivar received: the number of records returned so far.
    @ivar done: whether the pagination has finished.
    """

    def __init__(self, maxPages: int, maxRecords: int | None = None) -> None:
        """
        @param maxPages: stop after this many pages whatever the terminal says.
        @param maxRecords: stop once this many records were received (the terminal cannot hold
            more: it repeats itself), or C{None}.
        @raise ValueError: if C{maxPages} or C{maxRecords} is below 1.
        """
        if maxPages < 1 or (maxRecords is not None and maxRecords < 1):
            raise ValueError("maxPages and maxRecords must be at least 1")
        self.maxPages = maxPages
        self.maxRecords = maxRecords
        self.pages = 0
        self.received = 0
        self.done = False
        self._previous: object = None
        self._first: object = None

    def _finish(self, why: str, records: tuple[Mapping[str, Any], ...] = ()) -> PageDecision:
        self.done = True
        return PageDecision(records=records, done=True, why=why, page=self.pages)

    def _next(self, records: tuple[Mapping[str, Any], ...]) -> PageDecision:
        if self.pages >= self.maxPages:
            return self._finish(f"page cap ({self.maxPages}) reached", records)
        if self.maxRecords is not None and self.received >= self.maxRecords:
            return self._finish(f"record cap ({self.maxRecords}) reached", records)
        return PageDecision(records=records, done=False, why=None, page=self.pages)

    def accept(self, reply: CommandReply) -> PageDecision:
        """
        Take one page.

        @param reply: the terminal's answer to the last page request.
        @return: its records and whether to stop.  Once done, further replies give no records.
        """
        if self.done:
            return PageDecision(records=(), done=True, why="already finished", page=self.pages)
        self.pages += 1
        if not reply.result:
            return self._finish("the terminal answered result:false")
        fields = reply.fields
        record = fields.get("record")
        if reply.ret in _SINGLE_RECORD_COMMANDS or (
            "index" in fields and not isinstance(record, list | tuple)
        ):
            return self._single(fields)
        if not isinstance(record, list | tuple):
            return self._finish("the reply has no record list")
        records = tuple(r if isinstance(r, Mapping) else {"value": r} for r in record)
        return self._page(fields, records)

    def _page(
        self, fields: Mapping[str, Any], records: tuple[Mapping[str, Any], ...]
    ) -> PageDecision:
        n = len(records)
        count = _intOrNone(fields.get("count"))
        first = _intOrNone(fields.get("from"))
        last = _intOrNone(fields.get("to"))
        signature: object = (first, last) if first is not None and last is not None else records
        if self.pages > 1 and n and signature == self._previous:
            return self._finish("the page repeats the previous one")
        if self.pages > 1 and n and signature == self._first:
            return self._finish("the terminal starts over")
        if self.pages == 1:
            self._first = signature
        self._previous = signature
        self.received += n
        if n == 0:
            return self._finish("empty page")
        if count == 0:
            return self._finish("count is 0", records)
        if count is not None and count > n and self._end(first, last, n) >= count:
            # count is clearly a total (larger than this page) and this page reaches it.
            return self._finish("the total count is reached", records)
        return self._next(records)

    def _end(self, first: int | None, last: int | None, n: int) -> int:
        """How many records precede the end of this page, from its C{from}/C{to}."""
        if first is not None and last is not None:
            if last - first + 1 == n:
                return last + 1  # inclusive "to", as in the doc's examples
            if last - first == n:
                return last  # exclusive "to", as TH900_click V5.0 sends it
        return self.received

    def _single(self, fields: Mapping[str, Any]) -> PageDecision:
        """C{getallusers}: one credential per reply, C{index} out of C{count}."""
        count = _intOrNone(fields.get("count"))
        index = _intOrNone(fields.get("index"))
        if count == 0 or fields.get("enrollid") is None:
            return self._finish("no credential in the reply")
        if self.pages > 1 and index == self._previous:
            return self._finish("the reply repeats the previous index")
        self._previous = index
        self.received += 1
        records = ({k: v for k, v in fields.items() if k not in ("count", "index")},)
        if index is None or count is None:
            return self._finish("the reply has no index/count", records)
        if index >= count - 1:
            return self._finish("the last credential is reached", records)
        return self._next(records)
