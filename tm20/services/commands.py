"""
Server-to-terminal commands: send one and wait for the reply, page through lists.

The REST layer uses this service, never a socket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import (
    Deferred,
    DeferredList,
    DeferredLock,
    fail,
    inlineCallbacks,
    maybeDeferred,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tm20.errors import TerminalGone
from tm20.interfaces import ICommandService, ITerminalRegistry
from tm20.model import Pagination
from tm20.protocol.commands import pageRequest
from tm20.protocol.messages import CommandReply
from tm20.protocol.paging import DEFAULT_MAX_PAGES, PageTracker

__all__ = ["DEFAULT_MAX_PAGES", "CommandService", "Pagination"]


@implementer(ICommandService)
class CommandService:
    """Sends commands to connected terminals through their one-in-flight channel."""

    log = Logger()

    def __init__(
        self, registry: ITerminalRegistry, clock: IReactorTime, timeout: float = 30.0
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.timeout = timeout
        self._pagingLocks: dict[str, DeferredLock] = {}

    def isConnected(self, sn: str) -> bool:
        """C{True} when a registered connection for C{sn} is open."""
        return self.registry.get(sn) is not None

    def execute(
        self, sn: str, payload: Mapping[str, Any], timeout: float | None = None
    ) -> Deferred[CommandReply | None]:
        """
        Send C{payload} (built by L{tm20.protocol.commands.buildCommand}) to C{sn}.

        @return: a L{Deferred} of the reply (C{None} for C{reboot}); fails with
            L{TerminalGone} when C{sn} is not connected, L{tm20.errors.CommandTimeout}.
        """
        session = self.registry.get(sn)
        if session is None:
            return fail(TerminalGone(f"terminal {sn} is not connected"))
        d: Deferred[CommandReply | None] = session.executeCommand(
            payload, self.timeout if timeout is None else timeout
        )
        return d

    def page(
        self,
        sn: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        maxPages: int = DEFAULT_MAX_PAGES,
        onPage: Any = None,
        timeout: float | None = None,
        window: int = 1,
        maxRecords: int | None = None,
    ) -> Deferred[list[Any]]:
        """
        Page through C{name} to the end: L{pageAll}, and only its records.

        @return: a L{Deferred} of the list of every record received, in order.
        """
        d = self.pageAll(sn, name, params, maxPages, onPage, timeout, window, maxRecords)
        return d.addCallback(lambda result: list(result.records))

    def pageAll(
        self,
        sn: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        maxPages: int = DEFAULT_MAX_PAGES,
        onPage: Any = None,
        timeout: float | None = None,
        window: int = 1,
        maxRecords: int | None = None,
    ) -> Deferred[Pagination]:
        """
        Page through C{getuserlist}, C{getnewlog}, C{getalllog} or C{getallusers} with the
        defensive stop rule of L{tm20.protocol.paging}.

        Pages are asked one after the other (one command in flight on the wire), and one
        pagination per terminal runs at a time (a second one waits for the first to end): the
        terminal keeps one cursor per command and C{stn:false} carries no id, so two paginations
        of one terminal must never interleave.

        @param maxRecords: stop once this many records were received (the terminal's capacity).

        @param onPage: called with each page's records (may return a L{Deferred}: persistence
            paces the paging, and a failure there stops it).
        @param window: the most pages whose C{onPage} Deferred is unfinished at once.  1: each
            is waited for before the next page is asked.  More: the next page is asked while
            up to C{window - 1} earlier ones are still being stored (the oldest is waited for
            first when there are more); once one fails, no further page is asked, the others
            are waited for, and the paging fails with the first failure.
        @return: a L{Deferred} of a L{Pagination}.
        """
        lock = self._pagingLocks.get(sn)
        if lock is None:
            lock = self._pagingLocks[sn] = DeferredLock()

        def release(result: object) -> object:
            if not lock.locked and not lock.waiting:
                self._pagingLocks.pop(sn, None)
            return result

        d: Deferred[Pagination] = lock.run(
            self._page, sn, name, params, maxPages, onPage, timeout, window, maxRecords
        )
        return d.addBoth(release)

    @inlineCallbacks
    def _page(
        self,
        sn: str,
        name: str,
        params: Mapping[str, Any] | None,
        maxPages: int,
        onPage: Any,
        timeout: float | None,
        window: int,
        maxRecords: int | None,
    ) -> Any:
        tracker = PageTracker(maxPages=maxPages, maxRecords=maxRecords)
        collected: list[Any] = []
        first = True
        firstReply: CommandReply | None = None
        storing: deque[Deferred[None]] = deque()
        failures: list[Failure] = []

        def settled(result: object) -> None:
            if isinstance(result, Failure):
                failures.append(result)

        try:
            while True:
                reply = yield self.execute(sn, pageRequest(name, first, params or {}), timeout)
                first = False
                if firstReply is None:
                    firstReply = reply
                decision = tracker.accept(reply)
                records = list(decision.records)
                if onPage is not None and records:
                    if window <= 1:
                        yield onPage(records)
                    else:
                        stored: Deferred[None] = maybeDeferred(onPage, records)
                        storing.append(stored.addBoth(settled))
                collected.extend(records)
                while storing and (storing[0].called or len(storing) >= window):
                    yield storing.popleft()
                if failures:
                    failures[0].raiseException()
                if decision.done:
                    while storing:
                        yield storing.popleft()
                    if failures:
                        failures[0].raiseException()
                    self.log.info(
                        "{name} of {sn}: {n} records ({why})",
                        name=name,
                        sn=sn,
                        n=len(collected),
                        why=decision.why,
                    )
                    assert firstReply is not None
                    return Pagination(tuple(collected), tracker.pages, decision.why, firstReply)
        except Exception:
            # nothing is left running behind the caller's back; a store failure is the cause
            if storing:
                yield DeferredList(list(storing), consumeErrors=True)
            if failures:
                failures[0].raiseException()
            raise
