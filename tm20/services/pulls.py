"""
Pulls: read what a terminal holds (its users and credentials, its logs) and store it.

  - L{PullService.pullUsers}: pages through C{getuserlist} (one record per credential slot), then
    asks C{getuserinfo} for each C{(enrollid, backupnum)} and stores the credential.
  - L{PullService.pullLogs}: pages through C{getnewlog} or C{getalllog} (optionally between two
    dates); each page is stored (duplicates ignored) while the next ones are asked, with at most
    C{logStoreWindow} pages being stored at once, so the database still paces the paging, and a
    store failure stops it (no page is asked after the failure is known).

One pull per terminal at a time: two paginations on one terminal would mix their C{stn:false}
continuations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, inlineCallbacks
from twisted.logger import Logger
from zope.interface import implementer

from tm20.interfaces import IPullService, IStore
from tm20.model import LogInsertResult, LogPullResult, UserPullResult, UserRefreshResult
from tm20.protocol.commands import buildCommand
from tm20.protocol.messages import LogRecord
from tm20.protocol.paging import pageCapFor
from tm20.protocol.parser import parseLogRecord, parseUserRecord, userRecordsOf

__all__ = [
    "LOG_STORE_WINDOW",
    "LogPageStorer",
    "LogPullResult",
    "PullBusyError",
    "PullService",
    "UserPullResult",
    "UserRefreshResult",
    "pagingLimits",
]

#: Credential writes allowed in flight while the next C{getuserinfo} is asked.
_SAVE_WINDOW = 16
#: Log pages being stored at once during a log pull (1: each page is stored before the next is
#: asked).  More hides the commit wait behind the next page's round trip.
LOG_STORE_WINDOW = 4
#: Credential slots a user may hold, for the record cap of C{getuserlist} (fingerprints,
#: password, card, faces, palms, photo: at most 4 per user in practice).
_SLOTS_PER_USER = 4


class PullBusyError(Exception):
    """A pull is already running for this terminal."""


def _capacity(terminal: Any, key: str) -> int | None:
    devinfo = getattr(terminal, "devinfo", None) or {}
    value = devinfo.get(key) if isinstance(devinfo, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: Stores a batch of logs of a terminal; fires after the commit.
AddLogs = Callable[[str, Sequence[LogRecord]], Deferred[LogInsertResult]]


@implementer(IPullService)
class PullService:
    """Reads users and logs from connected terminals into the store."""

    log = Logger()

    def __init__(
        self,
        store: IStore,
        commands: Any,
        logStoreWindow: int = LOG_STORE_WINDOW,
        addLogs: AddLogs | None = None,
    ) -> None:
        """
        @param store: the L{IStore}.
        @param commands: the L{tm20.services.commands.CommandService}.
        @param logStoreWindow: log pages being stored at once during a log pull (at least 1).
        @param addLogs: stores a page of logs: the server passes its ingest service's
            (L{tm20.interfaces.ILogIngest.addLogs}: the group commit, its bound); C{None}: the
            store's own C{addLogs} (one transaction per page).
        """
        self.store = store
        self._addLogs = addLogs
        self.commands = commands
        self.logStoreWindow = max(1, logStoreWindow)
        self._busy: set[str] = set()

    def busy(self, sn: str) -> bool:
        """C{True} while a pull of C{sn} runs."""
        return sn in self._busy

    def _guarded(self, sn: str, run: Any) -> Deferred[Any]:
        if sn in self._busy:
            return fail(PullBusyError(f"a pull of {sn} is already running"))
        self._busy.add(sn)
        d: Deferred[Any] = run()

        def done(result: object) -> object:
            self._busy.discard(sn)
            return result

        return d.addBoth(done)

    # -- users ---------------------------------------------------------------------------------

    def pullUsers(self, sn: str) -> Deferred[UserPullResult]:
        """
        Read every user and credential of C{sn} and store them.

        @return: a L{Deferred} of a L{UserPullResult}; fails with L{PullBusyError},
            L{tm20.errors.TerminalGone}, L{tm20.errors.CommandTimeout}, or the store's error.
        """
        return self._guarded(sn, lambda: self._pullUsers(sn))

    @inlineCallbacks
    def _pullUsers(self, sn: str) -> Any:
        terminal = yield self.store.getTerminal(sn)
        maxPages, maxRecords = pagingLimits(terminal, "getuserlist")
        listing = yield self.commands.page(
            sn, "getuserlist", maxPages=maxPages, maxRecords=maxRecords
        )
        slots: list[tuple[int, int | None]] = []
        seen: set[tuple[int, int | None]] = set()
        for i, raw in enumerate(listing):
            try:
                entry = parseUserRecord(raw, f"record[{i}]")
            except ValueError as e:
                self.log.warn("{sn}: skipping user list entry: {error}", sn=sn, error=str(e))
                continue
            key = (entry.enrollid, entry.backupnum)
            if entry.enrollid > 0 and key not in seen:
                seen.add(key)
                slots.append(key)
        stored = 0
        missing = 0
        saving: list[Deferred[Any]] = []
        for enrollid, backupnum in slots:
            params: dict[str, Any] = {"enrollid": enrollid}
            if backupnum is not None:
                params["backupnum"] = backupnum
            try:
                request = buildCommand("getuserinfo", params)
            except ValueError as e:
                self.log.warn(
                    "{sn}: cannot ask for {params}: {error}", sn=sn, params=params, error=str(e)
                )
                missing += 1
                continue
            reply = yield self.commands.execute(sn, request)
            records = userRecordsOf(reply) if reply is not None and reply.result else ()
            if not records:
                missing += 1
                continue
            user = records[0]
            saving.append(
                self.store.saveCredential(
                    sn,
                    enrollid,
                    user.backupnum if user.backupnum is not None else backupnum,
                    user.record,
                    user.name,
                    user.admin,
                )
            )
            stored += 1
            if len(saving) >= _SAVE_WINDOW:
                yield _allOrFirstError(saving)
                saving = []
        yield _allOrFirstError(saving)
        result = UserPullResult(
            listed=len(slots),
            stored=stored,
            missing=missing,
            users=len({enrollid for enrollid, _ in slots}),
        )
        self.log.info(
            "{sn}: pulled {stored} credentials of {users} users ({missing} unreadable)",
            sn=sn,
            stored=stored,
            users=result.users,
            missing=missing,
        )
        return result

    def refreshUsers(self, sn: str) -> Deferred[UserRefreshResult]:
        """
        Bring what the server knows C{sn} holds up to date cheaply (the reconciler's periodic
        check): page through C{getuserlist}; forget the credential slots (and users) no longer
        listed; read with C{getuserinfo} only the slots the server did not know.  A name or a
        record changed in place is not seen this way (a full L{pullUsers} sees it); a user
        without any credential slot is never listed, so it is kept.

        @return: a L{Deferred} of a L{UserRefreshResult}; fails like L{pullUsers}.
        """
        return self._guarded(sn, lambda: self._refreshUsers(sn))

    @inlineCallbacks
    def _refreshUsers(self, sn: str) -> Any:
        terminal = yield self.store.getTerminal(sn)
        maxPages, maxRecords = pagingLimits(terminal, "getuserlist")
        listing = yield self.commands.page(
            sn, "getuserlist", maxPages=maxPages, maxRecords=maxRecords
        )
        listed: set[tuple[int, int]] = set()
        for i, raw in enumerate(listing):
            try:
                entry = parseUserRecord(raw, f"record[{i}]")
            except ValueError as e:
                self.log.warn("{sn}: skipping user list entry: {error}", sn=sn, error=str(e))
                continue
            if entry.enrollid > 0:
                listed.add((entry.enrollid, 0 if entry.backupnum is None else entry.backupnum))
        known: set[tuple[int, int]] = set()
        removed = 0
        after: int | None = None
        while True:
            users = yield self.store.listUsers(sn, 500, after)
            if not users:
                break
            after = users[-1].enrollid
            for user in users:
                slots = {(user.enrollid, c.backupnum) for c in user.credentials}
                known |= slots
                gone = slots - listed
                if slots and gone == slots:
                    yield self.store.deleteUser(sn, user.enrollid)
                    removed += len(gone)
                    continue
                for enrollid, backupnum in sorted(gone):
                    removed += yield self.store.deleteCredential(sn, enrollid, backupnum)
        added = 0
        for enrollid, backupnum in sorted(listed - known):
            reply = yield self.commands.execute(
                sn, buildCommand("getuserinfo", {"enrollid": enrollid, "backupnum": backupnum})
            )
            records = userRecordsOf(reply) if reply is not None and reply.result else ()
            if not records:
                continue
            user = records[0]
            yield self.store.saveCredential(
                sn, enrollid, backupnum, user.record, user.name, user.admin
            )
            added += 1
        result = UserRefreshResult(listed=len(listed), added=added, removed=removed)
        self.log.info(
            "{sn}: user list checked: {listed} slots, {added} new, {removed} gone",
            sn=sn,
            listed=result.listed,
            added=added,
            removed=removed,
        )
        return result

    # -- logs ----------------------------------------------------------------------------------

    def pullLogs(
        self,
        sn: str,
        allLogs: bool = False,
        since: str | None = None,
        until: str | None = None,
    ) -> Deferred[LogPullResult]:
        """
        Read C{sn}'s new logs (C{getnewlog}), or all of them (C{getalllog}, optionally between
        the dates C{since} and C{until}, C{YYYY-MM-DD}), and store them.

        @return: a L{Deferred} of a L{LogPullResult}; fails like L{pullUsers}, and with
            L{tm20.protocol.messages.ProtocolError} for invalid dates.
        """
        params: dict[str, Any] = {}
        if allLogs:
            if since is not None:
                params["from"] = since
            if until is not None:
                params["to"] = until
            try:
                buildCommand("getalllog", params)  # validates the dates
            except ValueError as e:
                return fail(e)
        return self._guarded(sn, lambda: self._pullLogs(sn, allLogs, params))

    @inlineCallbacks
    def _pullLogs(self, sn: str, allLogs: bool, params: Mapping[str, Any]) -> Any:
        terminal = yield self.store.getTerminal(sn)
        maxPages, maxRecords = pagingLimits(terminal, "getnewlog")
        storer = LogPageStorer(self._addLogs or self.store.addLogs, sn)
        name = "getalllog" if allLogs else "getnewlog"
        yield self.commands.page(
            sn,
            name,
            params,
            maxPages=maxPages,
            onPage=storer,
            window=self.logStoreWindow,
            maxRecords=maxRecords,
        )
        result = storer.result()
        self.log.info(
            "{sn}: {name} pulled {received} logs ({inserted} new, {duplicates} known)",
            sn=sn,
            name=name,
            received=result.received,
            inserted=result.inserted,
            duplicates=result.duplicates,
        )
        return result


class LogPageStorer:
    """
    Stores each page of a log pagination as it arrives (the C{onPage} of
    L{tm20.services.commands.CommandService.page}), skipping records it cannot understand, and
    counts what it did.
    """

    log = Logger()

    def __init__(self, addLogs: AddLogs, sn: str) -> None:
        self.addLogs = addLogs
        self.sn = sn
        self.counts = {"received": 0, "inserted": 0, "duplicates": 0, "invalid": 0}

    def __call__(self, raws: Sequence[Mapping[str, Any]]) -> Deferred[None]:
        records: list[LogRecord] = []
        for i, raw in enumerate(raws):
            try:
                records.append(parseLogRecord(raw, f"record[{i}]"))
            except ValueError as e:
                self.counts["invalid"] += 1
                self.log.warn("{sn}: skipping log record: {error}", sn=self.sn, error=str(e))
        self.counts["received"] += len(raws)
        d: Deferred[Any] = self.addLogs(self.sn, records)

        def added(result: Any) -> None:
            self.counts["inserted"] += result.inserted
            self.counts["duplicates"] += result.duplicates

        return d.addCallback(added)

    def result(self) -> LogPullResult:
        """What was stored so far."""
        return LogPullResult(**self.counts)


def pagingLimits(terminal: Any, name: str) -> tuple[int, int | None]:
    """
    The page cap and record cap of a pagination of C{name} on C{terminal}, from the capacity it
    reported in its C{reg} (C{logsize} for logs, C{usersize} for credentials).

    @return: C{(maxPages, maxRecords)}.
    """
    if name in ("getnewlog", "getalllog"):
        capacity = _capacity(terminal, "logsize")
    else:
        users = _capacity(terminal, "usersize")
        capacity = None if users is None else users * _SLOTS_PER_USER
    return pageCapFor(capacity), _recordCap(capacity)


def _recordCap(capacity: int | None) -> int | None:
    """The records a terminal of this capacity may return in one pagination (plus a page)."""
    return None if capacity is None or capacity < 0 else capacity + 50


def _allOrFirstError(ds: list[Deferred[Any]]) -> Deferred[Any]:
    """Wait for every Deferred; fail with the first failure (after all have finished)."""
    d: Deferred[Any] = DeferredList(ds, fireOnOneErrback=False, consumeErrors=True)

    def check(results: list[tuple[bool, Any]]) -> None:
        for ok, value in results:
            if not ok:
                value.raiseException()

    return d.addCallback(check)
