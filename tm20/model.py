"""
What the server stores: terminals, users and their credentials, attendance logs, door events,
commands and API tokens.  Plain immutable values shared by the store, the services and the API.

Timestamps of the server's own (C{firstSeen}, C{receivedAt}, ...) are timezone-aware UTC
C{datetime}s.  Times reported by terminals (log C{time}) stay terminal-local strings
C{YYYY-MM-DD HH:MM:SS}, as the protocol has no time zone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from tm20.protocol.messages import CommandReply


@attrs.frozen
class Terminal:
    """
    A terminal the server has seen (approved) or that asked to register (pending).

    Identity (see L{tm20.services.identity}): C{boundCpusn}/C{boundMac} are the hardware the
    C{sn} was bound to at its first accepted registration (C{boundAt}); C{identityMismatch} is
    the latest refused claim (what was claimed, from where, when), C{None} when none;
    C{secretHash} is the sha256 (hex) of the terminal's path secret, C{None} when it has none.
    The secret hash is never shown by the API.  C{registrations} counts its accepted
    registrations, in the order they were written: which of its connections is the newest (the
    cluster's holder claims compare it).
    """

    sn: str
    cpusn: str | None = None
    mac: str | None = None
    modelname: str | None = None
    firmware: str | None = None
    devinfo: Mapping[str, Any] = attrs.field(factory=dict)
    name: str | None = None
    approved: bool = True
    active: bool = True
    timezone: str | None = None
    firstSeen: datetime | None = None
    lastSeen: datetime | None = None
    boundCpusn: str | None = None
    boundMac: str | None = None
    boundAt: datetime | None = None
    identityMismatch: Mapping[str, Any] | None = None
    secretHash: str | None = None
    registrations: int = 0

    @property
    def flagged(self) -> bool:
        """A connection claiming this C{sn} was refused for its identity (or secret)."""
        return self.identityMismatch is not None


#: Fields of a terminal an operator may change (REST PATCH).
TERMINAL_EDITABLE_FIELDS = frozenset({"name", "approved", "active", "timezone"})


@attrs.frozen
class Credential:
    """
    One credential slot of a user (C{backupnum} 0-9 fingerprints, 10 password, 11 card,
    20-27 face, 50 photo).  C{record} is kept verbatim, with its JSON type (str or int).
    """

    backupnum: int
    record: str | int | None
    updatedAt: datetime | None = None


@attrs.frozen
class User:
    """A user enrolled on one terminal."""

    sn: str
    enrollid: int
    name: str | None = None
    admin: int = 0
    enabled: bool = True
    credentials: tuple[Credential, ...] = ()
    updatedAt: datetime | None = None


@attrs.frozen
class StoredLog:
    """An attendance punch (or, from the door-event table, a door event) as stored."""

    id: int
    sn: str
    enrollid: int
    time: str
    mode: int
    inout: int
    event: int
    temp: float | None = None
    verifymode: int | None = None
    image: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    receivedAt: datetime | None = None
    #: the access decision taken in real time (C{None}: none was asked, e.g. a backlog batch)
    accessGranted: bool | None = None
    #: why (L{tm20.access.model.REASONS}), C{None} with no decision
    accessReason: str | None = None


@attrs.frozen
class QuarantinedRecord:
    """
    A record a terminal sent that can never be stored as a log or a user (a bad time, a value
    out of range, not an object ...), held verbatim instead of blocking the terminal's backlog.

    C{raw} is its JSON text exactly as the terminal sent it (for C{senduser}, the whole frame);
    C{source} the command that carried it (C{sendlog}, C{senduser}); C{problem} and C{field}
    say what is wrong.  The same record resent is held once.
    """

    id: int
    sn: str
    source: str
    raw: str
    problem: str
    field: str | None = None
    receivedAt: datetime | None = None

    @property
    def reason(self) -> str:
        """C{field: problem}."""
        return f"{self.field}: {self.problem}" if self.field else self.problem


@attrs.frozen
class LogQuery:
    """
    A page of logs, newest first (by C{time}, then C{id}).

    C{before} is the cursor: the C{(time, id)} of the last row of the previous page; rows strictly
    older than it are returned.  C{since}/C{until} are inclusive terminal-local time strings.
    """

    sn: str | None = None
    since: str | None = None
    until: str | None = None
    enrollid: int | None = None
    limit: int = 50
    before: tuple[str, int] | None = None
    #: only this verification C{mode} / this C{inout} direction (C{None}: any)
    mode: int | None = None
    inout: int | None = None
    #: C{granted}, C{denied} (a decision), C{decided} (either) or C{none} (no decision asked);
    #: C{None}: all
    access: str | None = None
    accessReason: str | None = None


@attrs.frozen
class LogInsertResult:
    """What one C{addLogs} did: rows newly stored and rows that were already there."""

    inserted: int
    duplicates: int


def _neverRetryable(error: BaseException) -> bool:
    return False


@attrs.frozen
class LogFlushPolicy:
    """
    How a store likes the log group commit the ingest service runs for it
    (L{tm20.interfaces.ILogBatchWriter}; L{tm20.services.groupcommit.GroupCommitQueue} reads
    each field).
    """

    #: The rows that trigger a flush at once; a batch this large or larger is written alone.
    flushRows: int = 500
    #: The longest a batch waits for others while a flush slot is free, in seconds (0: the next
    #: turn of the reactor).
    flushInterval: float = 0.0
    #: The bound of the queue: rows accepted and not yet committed.
    maxQueuedRows: int = 50_000
    #: Merged flushes that may run at once (PostgreSQL: its C{COPY} threads; SQLite: 1).
    maxConcurrentFlushes: int = 1
    #: Tells a transient failure of a whole flush (a deadlock) worth one more try.
    isRetryable: Callable[[BaseException], bool] = _neverRetryable


#: Command statuses, in the order a command goes through them.
COMMAND_QUEUED = "queued"
COMMAND_SENT = "sent"
COMMAND_SUCCEEDED = "succeeded"
COMMAND_FAILED = "failed"
COMMAND_TIMED_OUT = "timed_out"
#: Never delivered: its expiry passed while it waited.
COMMAND_EXPIRED = "expired"
#: Never delivered: an operator cancelled it while it was queued.
COMMAND_CANCELLED = "cancelled"
COMMAND_STATUSES = (
    COMMAND_QUEUED,
    COMMAND_SENT,
    COMMAND_SUCCEEDED,
    COMMAND_FAILED,
    COMMAND_TIMED_OUT,
    COMMAND_EXPIRED,
    COMMAND_CANCELLED,
)
#: Still to deliver: queued, or sent and not answered yet.
COMMAND_WAITING = (COMMAND_QUEUED, COMMAND_SENT)
#: Final: a command in one of these never changes again.
COMMAND_FINAL = frozenset(
    {COMMAND_SUCCEEDED, COMMAND_FAILED, COMMAND_TIMED_OUT, COMMAND_EXPIRED, COMMAND_CANCELLED}
)


@attrs.frozen
class StoredCommand:
    """A server-to-terminal command in the durable queue."""

    id: int
    sn: str
    name: str
    payload: Mapping[str, Any]
    status: str
    reply: Mapping[str, Any] | None = None
    attempts: int = 0
    maxAttempts: int = 3
    actor: str | None = None
    createdAt: datetime | None = None
    sentAt: datetime | None = None
    finishedAt: datetime | None = None
    #: When it stops being deliverable (C{None}: stored before expiries existed, see
    #: L{tm20.services.queue.expiryOf}).
    expiresAt: datetime | None = None
    #: Parameters that could not be honoured: C{({"field": ..., "detail": ...}, ...)}.
    warnings: tuple[Mapping[str, str], ...] = ()


@attrs.frozen
class ApiToken:
    """An API token stored hashed (sha256 hex of the secret)."""

    name: str
    tokenHash: str
    scopes: tuple[str, ...] = ("read", "write")
    createdAt: datetime | None = None


@attrs.frozen
class AuditEntry:
    """One operator action, with the token name that did it."""

    id: int
    actor: str
    action: str
    target: str | None
    detail: Mapping[str, Any]
    at: datetime | None = None


@attrs.frozen
class TerminalWatch:
    """
    What the server watches on one terminal by itself (see L{tm20.services.silence},
    L{tm20.services.loggaps}, L{tm20.services.clockdrift}).

    @ivar silentAfter: the terminal's own silence threshold in seconds (C{None}: the server's
        C{--silent-after}).
    @ivar silentSince: when it was marked silent (C{None}: not silent).
    @ivar logGap: logs known to be missing from the server and not recovered yet.
    @ivar logGapSource: what showed the gap: C{usedlog} (the C{reg} counters) or C{logindex}
        (a jump in the C{sendlog} sequence).
    @ivar logGapSince: when the gap was found.
    @ivar logGapFrom: the first day (terminal-local C{YYYY-MM-DD}) of the gap's window, or
        C{None} when the window is unknown (the whole log memory is read).
    @ivar logGapTo: the last day of that window, or C{None}.
    @ivar logsRecovered: logs the server fetched by itself and stored (a running total).
    @ivar lastRecoveryAt: when the last fetch finished.
    @ivar clockDrift: terminal clock minus server clock, in seconds, at the last check
        (C{None}: never checked).
    @ivar clockCheckedAt: when the drift was last recorded.
    @ivar clockCorrectedAt: when the server last set the terminal's clock because of drift.
    """

    sn: str
    silentAfter: float | None = None
    silentSince: datetime | None = None
    logGap: int = 0
    logGapSource: str | None = None
    logGapSince: datetime | None = None
    logGapFrom: str | None = None
    logGapTo: str | None = None
    logsRecovered: int = 0
    lastRecoveryAt: datetime | None = None
    clockDrift: float | None = None
    clockCheckedAt: datetime | None = None
    clockCorrectedAt: datetime | None = None


@attrs.frozen
class WatchedTerminal:
    """
    A terminal as the periodic sweep reads it (L{tm20.interfaces.IWatchStore.watchPage}): only
    what the silence check and the metrics' census need, so a large fleet is cheap to read.
    """

    sn: str
    approved: bool
    active: bool
    lastSeen: datetime | None = None
    silentAfter: float | None = None
    silentSince: datetime | None = None
    logGap: int = 0
    clockDrift: float | None = None


#: Field name -> column of L{TerminalWatch} (every field but C{sn} may be changed).
WATCH_COLUMNS: Mapping[str, str] = {
    "silentAfter": "silent_after",
    "silentSince": "silent_since",
    "logGap": "log_gap",
    "logGapSource": "log_gap_source",
    "logGapSince": "log_gap_since",
    "logGapFrom": "log_gap_from",
    "logGapTo": "log_gap_to",
    "logsRecovered": "logs_recovered",
    "lastRecoveryAt": "last_recovery_at",
    "clockDrift": "clock_drift",
    "clockCheckedAt": "clock_checked_at",
    "clockCorrectedAt": "clock_corrected_at",
}

#: The L{TerminalWatch} fields holding server timestamps (aware UTC C{datetime}s).
WATCH_TIMESTAMPS = frozenset(
    {"silentSince", "logGapSince", "lastRecoveryAt", "clockCheckedAt", "clockCorrectedAt"}
)


@attrs.frozen
class Person:
    """
    A fleet-wide person (desired state): the same C{enrollid} on every terminal it is assigned
    to, directly (C{terminals}) or through its C{groups}.

    C{validFrom}/C{validUntil} are terminal-local C{YYYY-MM-DD HH:MM:SS} (C{None}: open); outside
    that window the person is kept on its terminals, disabled.  C{credentials} are stored
    verbatim, like a terminal user's.
    """

    enrollid: int
    name: str | None = None
    admin: int = 0
    enabled: bool = True
    validFrom: str | None = None
    validUntil: str | None = None
    credentials: tuple[Credential, ...] = ()
    groups: tuple[str, ...] = ()
    terminals: tuple[str, ...] = ()
    createdAt: datetime | None = None
    updatedAt: datetime | None = None


@attrs.frozen
class TerminalGroup:
    """
    A named set of terminals (a site, a building, a door set).

    C{adoptKeypad}: a user enrolled at the keypad of one of its terminals (C{senduser}) with an
    C{enrollid} no person has becomes a fleet person of this group.
    """

    name: str
    description: str | None = None
    adoptKeypad: bool = False
    terminals: tuple[str, ...] = ()
    createdAt: datetime | None = None
    updatedAt: datetime | None = None


#: What the reconciler knows of a person on one terminal.
SYNC_PENDING = "pending"
SYNC_SYNCED = "synced"
SYNC_FAILED = "failed"
SYNC_CONFLICT = "conflict"
SYNC_STATES = (SYNC_PENDING, SYNC_SYNCED, SYNC_FAILED, SYNC_CONFLICT)


@attrs.frozen
class PersonSync:
    """
    A person on one terminal, as the reconciler left it.

    @ivar state: one of L{SYNC_STATES}.
    @ivar owned: the terminal's user with this C{enrollid} is the fleet person's (pushed by the
        reconciler, found identical, or claimed by an operator); a user not owned is never
        overwritten nor deleted.
    @ivar detail: why (a failed command's reply, the conflicting user, a capacity limit).
    @ivar commands: ids of the queued commands while C{pending}.
    """

    sn: str
    enrollid: int
    state: str
    owned: bool = False
    detail: Mapping[str, Any] = attrs.field(factory=dict)
    commands: tuple[int, ...] = ()
    updatedAt: datetime | None = None


#: The console's roles, least to most: a viewer reads; an operator also acts on terminals and
#: users; an admin also manages accounts, API tokens and webhooks.
CONSOLE_ROLES = ("viewer", "operator", "admin")


@attrs.frozen
class ConsoleAccount:
    """An operator account of the console (its password only as an argon2 hash)."""

    name: str
    role: str
    passwordHash: str
    disabled: bool = False
    createdAt: float = 0.0
    updatedAt: float = 0.0


@attrs.frozen
class ConsoleSession:
    """A console login: the sha256 of its cookie, its account and its CSRF token."""

    tokenHash: str
    account: str
    csrf: str
    createdAt: float
    lastSeen: float


@attrs.frozen
class UserPullResult:
    """
    What a user pull did.

    @ivar listed: credential slots the terminal listed.
    @ivar stored: credentials read and stored.
    @ivar missing: slots listed but not readable (C{getuserinfo} answered C{result:false}).
    @ivar users: distinct users seen.
    """

    listed: int
    stored: int
    missing: int
    users: int


@attrs.frozen
class UserRefreshResult:
    """
    What a user list check did.

    @ivar listed: credential slots the terminal listed.
    @ivar added: slots read because the server did not know them.
    @ivar removed: known slots the terminal no longer holds (forgotten).
    """

    listed: int
    added: int
    removed: int


@attrs.frozen
class LogPullResult:
    """
    What a log pull did.

    @ivar received: records the terminal sent.
    @ivar inserted: records newly stored.
    @ivar duplicates: records already stored (ignored).
    @ivar invalid: records that could not be understood (skipped, logged).
    """

    received: int
    inserted: int
    duplicates: int
    invalid: int


@attrs.frozen
class Pagination:
    """
    What one pagination returned.

    @ivar records: every record received, in order.
    @ivar pages: the replies received.
    @ivar why: why it stopped (L{tm20.protocol.paging.PageDecision.why}).
    @ivar first: the terminal's reply to the first page (its C{result}, C{reason}).
    """

    records: tuple[Any, ...]
    pages: int
    why: str | None
    first: CommandReply


class NodeRecord(dict[str, Any]):
    """
    A live node as the API shows it: node, host, pid, startedAt, leaseUntil, terminals, sinks
    (whether it runs the event sinks: not started with C{--no-sinks}).
    """


@attrs.frozen
class Claim:
    """
    What a node's claim of a terminal found and did (L{tm20.interfaces.IClusterStore}).

    @ivar previous: the other live node that held the terminal (C{None}: none).
    @ivar taken: whether the claiming node holds it now (C{False}: C{previous} keeps it, for a
        newer registration, or because the claim was not to take it from a live node).
    """

    previous: str | None
    taken: bool


class ClusterCall(dict[str, Any]):
    """A call row: id, sn, kind, params, askedBy, node, status, result, error."""
