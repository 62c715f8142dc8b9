"""
CSV export of logs and door events, streamed page by page (the REST API and the console both
serve it).

The first page is read before anything is written, so an error there is still answered as JSON;
after that the rows are written as they are read, pausing while the client's connection is
backed up (the export is a push producer).  A failure mid-way drops the connection, so a client
never takes a truncated file for a complete one.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from tm20.model import StoredLog

__all__ = ["CSV_COLUMNS", "CSVExport", "csvRows"]

#: The columns of an export, in order.
CSV_COLUMNS = (
    "id",
    "sn",
    "enrollid",
    "time",
    "mode",
    "inout",
    "event",
    "temp",
    "verifymode",
    "receivedAt",
    "accessGranted",
    "accessReason",
)

_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")

#: Rows read per page while exporting.
PAGE_SIZE = 1000

#: C{(before, limit) -> Deferred[list[StoredLog]]}, newest first, strictly older than C{before}.
Fetch = Callable[[tuple[str, int] | None, int], Deferred[list[StoredLog]]]


def _cell(value: Any) -> Any:
    """A cell that a spreadsheet will not run as a formula."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csvRows(logs: Sequence[StoredLog], header: bool = False) -> bytes:
    """C{logs} as CSV lines (UTF-8, CRLF), with the header line first if asked."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for log in logs:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    log.id,
                    log.sn,
                    log.enrollid,
                    log.time,
                    log.mode,
                    log.inout,
                    log.event,
                    log.temp,
                    log.verifymode,
                    None if log.receivedAt is None else log.receivedAt.isoformat(),
                    None if log.accessGranted is None else int(log.accessGranted),
                    log.accessReason,
                )
            ]
        )
    return out.getvalue().encode("utf-8")


class _Streaming(Resource):
    """What Klein renders: starts the stream on the request."""

    isLeaf = True

    def __init__(self, export: CSVExport, first: list[StoredLog], size: int) -> None:
        super().__init__()
        self._export = export
        self._first = first
        self._size = size

    def render(self, request: Request) -> Any:
        try:
            self._export.begin(request, self._first, self._size)
        except Exception:
            self._export.log.failure("CSV export could not start")
            if request.startedWriting:
                self._export.abort(request)
                return NOT_DONE_YET
            request.setResponseCode(500)
            request.setHeader(b"content-type", b"application/json")
            return b'{"error":"internal_error","detail":"internal server error"}'
        return NOT_DONE_YET


@implementer(IPushProducer)
class CSVExport:
    """
    Writes every row C{fetch} gives, newest first, to C{request} as CSV.

    @ivar written: rows written so far.
    """

    log = Logger()

    def __init__(self, fetch: Fetch, limit: int | None = None, filename: str = "logs.csv") -> None:
        """
        @param fetch: reads one page.
        @param limit: the most rows to export (C{None}: all).
        @param filename: suggested to the client (C{Content-Disposition}).
        """
        self._request: Any = None
        self._fetch = fetch
        self._limit = limit
        self._filename = _SAFE_FILENAME.sub("_", filename)[:100] or "export.csv"
        self._paused: Deferred[None] | None = None
        self._stopped = False
        self.written = 0

    # IPushProducer
    def pauseProducing(self) -> None:
        if self._paused is None:
            self._paused = Deferred()

    def resumeProducing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:
        self._stopped = True
        self.resumeProducing()

    def _pageSize(self) -> int:
        if self._limit is None:
            return PAGE_SIZE
        return max(0, min(PAGE_SIZE, self._limit - self.written))

    @inlineCallbacks
    def prepare(self) -> Any:
        """
        Read the first page (its failure is the caller's to answer as JSON).

        @return: a L{Deferred} of the L{IResource} that, rendered, streams the export.
        """
        size = self._pageSize()
        first: list[StoredLog] = (yield self._fetch(None, size)) if size else []
        return _Streaming(self, first, size)

    def begin(self, request: Request, first: list[StoredLog], size: int) -> None:
        """Write the headers and the first page, then stream the rest."""
        self._request = request
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/csv; charset=utf-8")
        request.setHeader(
            b"content-disposition",
            f'attachment; filename="{self._filename}"'.encode("ascii"),
        )
        request.setHeader(b"cache-control", b"no-store")
        request.registerProducer(self, True)
        request.notifyFinish().addErrback(lambda _: self.stopProducing())
        request.write(csvRows(first, header=True))
        self.written += len(first)
        self._continue(first, size).addErrback(self._failed)

    @inlineCallbacks
    def _continue(self, page: list[StoredLog], size: int) -> Any:
        while page and len(page) == size and not self._stopped:
            if self._paused is not None:
                yield self._paused
                if self._stopped:
                    break
            size = self._pageSize()
            if size == 0:
                break
            last = page[-1]
            page = yield self._fetch((last.time, last.id), size)
            if self._stopped:
                break
            self._request.write(csvRows(page))
            self.written += len(page)
        self._request.unregisterProducer()
        if not self._stopped:
            self._request.finish()

    def _failed(self, failure: Any) -> None:
        self.log.failure("CSV export failed after {rows} rows", failure, rows=self.written)
        self.abort(self._request)

    def abort(self, request: Any) -> None:
        """Drop the connection: a truncated export must not look complete."""
        try:
            request.unregisterProducer()
        except Exception:
            pass
        transport = getattr(request, "transport", None) or getattr(
            getattr(request, "channel", None), "transport", None
        )
        if transport is not None and hasattr(transport, "abortConnection"):
            transport.abortConnection()
        elif transport is not None:
            transport.loseConnection()
