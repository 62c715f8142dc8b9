"""
The contracts between the parts of tm20, documented here and only here.

  - L{ICommandHandler}: answers one terminal command (C{reg}, C{sendlog}, ... or an operator's own);
    found with C{twisted.plugin.getPlugins(ICommandHandler, tm20.plugins)}.
  - L{IServerContext}: what a handler may use (the store, the services, the clock).
  - L{ITerminalSession}: one connected terminal, as handlers and services see it.
  - L{ITerminalRegistry}: the connected terminals, by C{sn}.
  - L{IRegistration}, L{ILogIngest}, L{ICommandService}, L{ICommandQueue}, L{IPullService},
    L{ITerminalWatch}, L{IReconciler}, L{IEventsService}: the services on the context.
  - L{IStore}: persistence (SQLite embedded, PostgreSQL for production): the union of the
    store roles L{IStoreLifecycle}, L{ITerminalStore}, L{IUserStore}, L{ILogStore},
    L{ICommandStore}, L{ITokenStore} and L{IAuditStore}, which one store object provides.
  - L{IWatchStore}: what the server watches on each terminal (silence, missing logs, clock).
  - L{IEventStore}: the event log (outbox), delivery streams and webhooks of the same store.
  - L{IEventSink}: a destination for events (webhooks, an operator's own); found with
    C{twisted.plugin.getPlugins(IEventSink, tm20.plugins)}.
  - L{IAccessStore}: access rules, codes and the decisions recorded at doors.
  - L{IAccessPolicy}: an operator's veto on top of the access rules; found with
    C{twisted.plugin.getPlugins(IAccessPolicy, tm20.plugins)}.

Every method documented as returning a L{Deferred} may also fail it; callers treat any failure of
the store as "not stored".
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import Attribute, Interface

from tm20.protocol.messages import (
    CommandReply,
    LogRecord,
    Register,
    RejectedRecord,
    SendLog,
    TerminalMessage,
)
from tm20.protocol.paging import DEFAULT_MAX_PAGES

if TYPE_CHECKING:
    from twisted.python.failure import Failure

    from tm20.access.model import (
        AccessRequest,
        AccessRule,
        Decision,
        GroupAccess,
        Holiday,
        QrCode,
    )
    from tm20.access.rules import Snapshot
    from tm20.config import ServerConfig
    from tm20.events.model import (
        Event,
        EventQuery,
        NewEvent,
        SinkAttempt,
        SinkStream,
        Webhook,
    )
    from tm20.events.sinks import StreamSpec
    from tm20.metrics import Metrics
    from tm20.model import (
        ApiToken,
        AuditEntry,
        Claim,
        ClusterCall,
        ConsoleAccount,
        ConsoleSession,
        LogFlushPolicy,
        LogInsertResult,
        LogPullResult,
        LogQuery,
        NodeRecord,
        Pagination,
        Person,
        PersonSync,
        QuarantinedRecord,
        StoredCommand,
        StoredLog,
        Terminal,
        TerminalGroup,
        TerminalWatch,
        User,
        UserPullResult,
        UserRefreshResult,
        WatchedTerminal,
    )
    from tm20.services.persons import PersonService
    from tm20.store._health import StoreHealth

#: What L{ICommandHandler.handle} returns: the reply's fields (without C{ret}), C{None} for no
#: reply, or a L{Deferred} of either.
HandlerResult = Union[Mapping[str, Any], None, "Deferred[Any]"]

#: What L{IAccessPolicy.check} returns: C{True} or C{None} (no objection), C{False} (deny), a
#: string (deny, with this message on the terminal's screen), or a L{Deferred} of one of them.
PolicyAnswer = Union[bool, str, None, "Deferred[bool | str | None]"]


class ICommandHandler(Interface):
    """
    Handles one terminal-initiated command.

    Built-in handlers live in C{tm20.handlers} and are published as plugins in C{tm20.plugins};
    an operator overrides one or adds a new command by dropping a module into any
    C{tm20/plugins/} folder on the Python path.  When several handlers claim the same command,
    one from outside the C{tm20} distribution wins over the built-in one.
    """

    command: str = Attribute(
        """The C{cmd} value handled, e.g. C{"sendlog"} (lower-case, trimmed)."""
    )

    def handle(
        context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> HandlerResult:
        """
        Answer C{message}.

        @param context: the server's parts a handler may use (L{IServerContext}).
        @param session: the connection the message came from (L{ITerminalSession}).
        @param message: a L{tm20.protocol.messages.TerminalMessage}: the typed message for the
            built-in commands (C{Register}, C{SendLog}, C{SendUser}, C{SendQRCode}), a
            C{TerminalCommand} with the raw fields for any other.
        @return: the reply fields (without C{ret}, which the dispatcher adds), e.g.
            C{{"result": True}}; C{None} to send no reply at all; or a L{Deferred} of either.
            A failure (raised or in the Deferred) is answered C{{"result": False, "reason": 1}}.
        """


class ITerminalSession(Interface):
    """One connected terminal (one WebSocket), as handlers and services see it."""

    sn: str | None = Attribute(
        """The serial number given in the accepted C{reg}; C{None} before it registered."""
    )
    peer: str = Attribute("""The remote address, as text (for logs).""")
    peerHost: str = Attribute(
        """The client's address (behind a trusted reverse proxy, from C{X-Forwarded-For})."""
    )
    registered: bool = Attribute("""C{True} once a C{reg} was accepted on this connection.""")
    terminal: Terminal | None = Attribute(
        """The L{tm20.model.Terminal} as of its accepted C{reg} (its time zone, its name);
        C{None} before it registered."""
    )
    lastRecorded: float = Attribute(
        """When (the clock's seconds) its C{reg} was last written to the store."""
    )
    pathSecret: str | None = Attribute(
        """The terminal secret from a C{/t/<secret>} request path, or C{None}; never logged."""
    )
    gone: bool = Attribute("""C{True} once the connection is closed.""")
    isOpen: bool = Attribute(
        """C{True} while the WebSocket is open: neither closing (L{close}) nor closed."""
    )
    is_closed: Deferred[None] = Attribute(
        """A L{Deferred} firing once the connection is closed (autobahn's name)."""
    )

    def sendCommand(payload: Mapping[str, Any]) -> None:
        """
        Send one server command (a dict with C{cmd}) to the terminal as a text frame, without
        waiting for its reply (see L{executeCommand}).  Does nothing if the connection is
        closing.
        """

    def sendReply(payload: Mapping[str, Any]) -> None:
        """Send one reply (a dict with C{ret}) to the terminal.  Does nothing once closing."""

    def close(code: int, reason: str) -> None:
        """
        Close the WebSocket with C{code} (one of L{tm20.protocol.codes.CloseCode}, or 1000) and
        a reason text.
        """

    def pauseReading(reason: str) -> None:
        """
        Stop reading the socket for C{reason} (a short text: C{"inbox full"}, C{"store queue
        full"}, ...).  The session is the only owner of its transport's pausing: it reads again
        once every reason given has been withdrawn.
        """

    def resumeReading(reason: str) -> None:
        """Withdraw C{reason} given to L{pauseReading}; other reasons still hold."""

    def executeCommand(
        payload: Mapping[str, Any], timeout: float | None = None
    ) -> Deferred[CommandReply | None]:
        """
        Send C{payload} and wait for the terminal's C{ret} of the same name (one command in flight
        per terminal; later ones wait their turn).

        @param timeout: seconds to wait for the reply (C{None}: C{--command-timeout}).
        @return: a L{Deferred} firing with a L{tm20.protocol.messages.CommandReply}, or failing with
            C{tm20.errors.CommandTimeout} / C{tm20.errors.TerminalGone}.  For commands without a
            reply (C{reboot}) it fires with C{None} once the frame is written.
        """

    def markRegistered(terminal: Terminal, now: float) -> None:
        """
        The registration service accepted C{reg} for C{terminal} at C{now}: the connection
        becomes that terminal's (its C{sn}, its message size limit, no more C{reg} deadline).
        """


class ITerminalRegistry(Interface):
    """
    The connected terminals, keyed by C{sn}: the newest connection for an C{sn} wins, and a
    connection is bound to one C{sn} at most.
    """

    observers: list[Callable[[str, ITerminalSession, bool], object]] = Attribute(
        """Called with C{(sn, session, connected)} when a session becomes the one of C{sn}
        (C{True}) and when the bound session of C{sn} goes away (C{False})."""
    )

    opened: int = Attribute("""Sockets opened since the start (read by L{tm20.collector}).""")
    closed: int = Attribute("""Sockets closed since the start (read by L{tm20.collector}).""")

    def track(session: ITerminalSession) -> None:
        """A socket opened (not yet registered)."""

    def untrack(session: ITerminalSession) -> None:
        """A socket closed: forget it, and its C{sn} if it is still the one bound to it."""

    def get(sn: str) -> ITerminalSession | None:
        """The L{ITerminalSession} for C{sn}, or C{None} when it is not connected."""

    def connected() -> list[str]:
        """The C{sn}s of connected, registered terminals, sorted."""

    def bind(sn: str, session: ITerminalSession) -> ITerminalSession | None:
        """
        Make C{session} the one for C{sn}.

        @return: the session it replaced, or C{None}.
        @raise ValueError: if C{session} is already bound to another C{sn}.
        """

    def unbind(sn: str, session: ITerminalSession) -> None:
        """Forget C{session} for C{sn}, unless a newer session has replaced it since."""

    def sessions() -> list[ITerminalSession]:
        """All sessions, registered or not (for shutdown)."""


class IServerContext(Interface):
    """
    Everything a command handler (and a sink plugin's C{start}) may use; it never reaches
    sockets or SQL directly.  Optional parts are C{None} on a server built without them.
    """

    store: IStore = Attribute(
        """The store: L{IStore}, and the same object also provides L{IWatchStore},
        L{IEventStore} and L{IPersonStore}."""
    )
    clock: IReactorTime = Attribute(
        """The C{IReactorTime} provider (the reactor, or a C{Clock} in tests): use it, never
        C{time.time()}, so that tests can drive time."""
    )
    registry: ITerminalRegistry = Attribute("""The connected terminals (L{ITerminalRegistry}).""")
    registration: IRegistration = Attribute(
        """Registration (L{IRegistration}): C{reg}, and each terminal's local time."""
    )
    ingest: ILogIngest = Attribute(
        """Log batches (L{ILogIngest}): stored, and acknowledged only after the commit."""
    )
    commands: ICommandService = Attribute(
        """Commands sent to connected terminals now, and paginations (L{ICommandService})."""
    )
    config: ServerConfig = Attribute("""The server's settings (L{tm20.config.ServerConfig}).""")
    metrics: Metrics | None = Attribute(
        """The Prometheus metrics (L{tm20.metrics.Metrics}), or C{None}: nothing is counted."""
    )
    watch: ITerminalWatch | None = Attribute(
        """Silence, missing logs, clock drift (L{ITerminalWatch}); or C{None}."""
    )
    events: IEventsService | None = Attribute(
        """The event feed and the sink runner (L{IEventsService}); or C{None}."""
    )
    queue: ICommandQueue | None = Attribute("""The durable command queue (L{ICommandQueue}).""")
    pulls: IPullService | None = Attribute(
        """Reads of users and logs from terminals (L{IPullService})."""
    )
    reconciler: IReconciler | None = Attribute(
        """Keeps terminals holding their fleet persons (L{IReconciler})."""
    )
    persons: PersonService | None = Attribute(
        """Fleet persons and groups (L{tm20.services.persons.PersonService})."""
    )
    access: IAccessService | None = Attribute(
        """Decisions at the doors (L{IAccessService}); or C{None}."""
    )


class IAccessService(Interface):
    """
    Decisions at the doors (L{tm20.services.access.AccessService}): what the C{sendlog},
    C{sendqrcode} and C{sendpin} handlers ask.
    """

    def controls(sn: str) -> bool:
        """Is door C{sn} under access control (C{--access-control})?"""

    def wantsDecision(sn: str, records: Sequence[LogRecord], rejected: int) -> bool:
        """Does this C{sendlog} batch of C{sn} ask a decision (one punch, door under control)?"""

    def answerPunch(
        sn: str, terminal: Terminal | None, batch: SendLog, ingest: ILogIngest
    ) -> Deferred[dict[str, Any]]:
        """Decide and store the batch's punch; the reply's fields (never fails, within budget)."""

    def decideCode(sn: str, terminal: Terminal | None, kind: str, text: str) -> Deferred[Any]:
        """Decide and record a code (C{qrcode}) or PIN (C{pin}): an C{AccessReply}."""

    def start() -> Deferred[None]:
        """Load the rules and start refreshing them."""

    def stop() -> None:
        """Stop refreshing."""

    def changed() -> Deferred[None]:
        """Rules, codes, persons or groups were changed here: reload now."""


class IRegistration(Interface):
    """Terminals registering (C{reg}): checked, recorded, bound to their connection."""

    observers: list[Callable[[Terminal], object]] = Attribute(
        """Called with the L{tm20.model.Terminal} after each accepted registration."""
    )

    def register(session: ITerminalSession, message: Register) -> Deferred[Terminal]:
        """
        Accept (or refuse) C{message} from C{session}: the terminal's claim is checked, its
        sighting recorded, the connection bound to its C{sn} (L{ITerminalSession.markRegistered}).

        @return: a L{Deferred} of the L{tm20.model.Terminal}; it fails with
            C{tm20.errors.RegistrationRefused} when it is refused.
        """

    def cloudTimeFor(terminal: Terminal | None) -> str:
        """The terminal's local time now (its own time zone, else the default), as replies give it."""

    def terminalChanged(terminal: Terminal) -> None:
        """An operator changed C{terminal} (its time zone, its approval): connections see it."""


class ILogIngest(Interface):
    """Log batches from terminals, stored and acknowledged only once committed."""

    batchObservers: list[Callable[[str, SendLog], object]] = Attribute(
        """
        Called with C{(sn, message)} after each committed C{sendlog} batch, before its
        acknowledgement (the server's own watch is told after the acknowledgement, by the
        terminal protocol: L{ITerminalWatch.answered}).
        """
    )

    def sendlog(sn: str, terminal: Terminal | None, message: SendLog) -> Deferred[Any]:
        """
        Store a C{sendlog} batch of terminal C{sn}, then tell the L{batchObservers}.

        @return: a L{Deferred} firing, once committed, with the acknowledgement's fields (without
            C{ret}); failing if the batch could not be committed (nothing is acknowledged then).
        """

    def acknowledge(
        sn: str,
        terminal: Terminal | None,
        message: SendLog,
        access: int | None = None,
        accessMessage: str | None = None,
    ) -> dict[str, Any]:
        """
        After a batch is committed by another road (a punch stored with its access decision):
        tell the L{batchObservers}; the acknowledgement's fields, with C{access} and its
        C{message} when given.
        """

    def full() -> bool:
        """C{True} while the log queue is full (terminals should stop sending)."""

    pendingRows: int = Attribute(
        """Log records accepted into the group commit and not yet committed."""
    )

    def addBackpressureObserver(observer: Callable[[bool], object]) -> Callable[[], None]:
        """Call C{observer(full)} each time the log queue fills up or drains; returns a function that stops it."""

    def stop() -> Deferred[None]:
        """
        Refuse new log batches, write those queued and wait for every flush (before the store
        stops).  @return: a L{Deferred} firing when nothing is left; it never fails.
        """

    def ingest(
        sn: str,
        records: Sequence[LogRecord],
        rejected: Sequence[RejectedRecord] = (),
        source: str = "sendlog",
    ) -> Deferred[LogInsertResult]:
        """
        Store C{records} of terminal C{sn} and hold C{rejected} (same batch) in its quarantine.

        @return: a L{Deferred} firing once both are committed, failing if either could not be
            (C{tm20.errors.StoreUnavailable} while the database is down or full).
        """

    def addLogs(sn: str, records: Sequence[LogRecord]) -> Deferred[LogInsertResult]:
        """
        Store C{records} of C{sn} through the group commit (its bound included), without the
        counters of the batches terminals push (a page of a log pull).

        @return: a L{Deferred} firing after the commit.
        """

    def quarantine(sn: str, source: str, rejected: Sequence[RejectedRecord]) -> Deferred[int]:
        """
        Hold C{rejected} records of C{sn} (from command C{source}) in the quarantine.

        @return: a L{Deferred} of the number newly held, fired after the commit.
        """


class ICommandService(Interface):
    """Server commands to connected terminals, now (see L{ICommandQueue} for durable ones)."""

    def isConnected(sn: str) -> bool:
        """C{True} when a registered connection for C{sn} is open."""

    def execute(
        sn: str, payload: Mapping[str, Any], timeout: float | None = None
    ) -> Deferred[CommandReply | None]:
        """
        Send C{payload} to C{sn} and wait for its reply (L{ITerminalSession.executeCommand}).

        @return: a L{Deferred} of the reply; it fails with C{tm20.errors.TerminalGone} when
            C{sn} is not connected, C{tm20.errors.CommandTimeout} when no reply comes in time.
        """

    def page(
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
        Page through a paged command (C{getuserlist}, C{getnewlog}, C{getalllog}) of C{sn}.

        @param onPage: called with each page's records as it arrives (it may return a
            L{Deferred}: at most C{window} of them are outstanding).
        @return: a L{Deferred} of every record received, in order.
        """

    def pageAll(
        sn: str,
        name: str,
        params: Mapping[str, Any] | None = None,
        maxPages: int = DEFAULT_MAX_PAGES,
        onPage: Any = None,
        timeout: float | None = None,
        window: int = 1,
        maxRecords: int | None = None,
    ) -> Deferred[Pagination]:
        """Like L{page}, with why it stopped (L{tm20.model.Pagination})."""


class ICommandQueue(Interface):
    """The durable command queue: commands kept in the store until their terminal answers."""

    activeWorkers: int = Attribute("""Terminals whose queue is being delivered now.""")

    def buildPayload(
        sn: str, name: str, params: Mapping[str, Any], terminal: Terminal | None = None
    ) -> Deferred[dict[str, Any]]:
        """
        The command C{name} with C{params} for C{sn}, validated (a C{ValueError} names the
        field); C{terminal}: C{sn} as just read, if the caller has it (not read again).
        """

    def submit(
        sn: str,
        name: str,
        params: Mapping[str, Any],
        actor: str | None,
        wait: bool = True,
        expiresIn: float | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        """
        Queue a command (committed before anything is sent) and deliver it when C{sn} is
        connected.  C{payload}: the frame L{buildPayload} made of it (not validated again).
        @return: a L{Deferred} of the L{tm20.model.StoredCommand} (when C{wait}, once the
        terminal answered or the command gave up).
        """

    def isExpired(command: StoredCommand) -> bool:
        """Whether C{command}'s expiry has passed (on the queue's clock)."""

    def refresh(command: StoredCommand) -> Deferred[Any]:
        """C{command} as stored now (an expired one is settled first)."""

    def cancel(commandId: int) -> Deferred[Any]:
        """Cancel a command still queued.  @return: a L{Deferred} of C{(command, cancelled)}."""

    def deliverPending(sn: str) -> None:
        """C{sn} registered: deliver its queued commands."""

    def kick(sn: str) -> None:
        """Start the worker of C{sn} if it is connected and none is running."""

    def idle(sn: str) -> Deferred[None]:
        """A L{Deferred} firing when the worker of C{sn} (if any) has stopped."""


class IPullService(Interface):
    """Reads what a terminal holds (users, logs) and stores it; one pull per terminal at a time."""

    def busy(sn: str) -> bool:
        """C{True} while a pull of C{sn} runs."""

    def pullUsers(sn: str) -> Deferred[UserPullResult]:
        """Every user and credential of C{sn} (C{getuserlist}, then C{getuserinfo} each)."""

    def refreshUsers(sn: str) -> Deferred[UserRefreshResult]:
        """C{sn}'s user list against what is stored: read the new slots, forget the gone ones."""

    def pullLogs(
        sn: str,
        allLogs: bool = False,
        since: str | None = None,
        until: str | None = None,
    ) -> Deferred[LogPullResult]:
        """C{sn}'s new logs (C{getnewlog}), or all of them between two dates (C{getalllog})."""


class ITerminalWatch(Interface):
    """What the server watches on each terminal: silence, missing logs, clock drift."""

    silence = Attribute(
        "The silence sweep (C{start()}/C{stop()}): in a cluster only the leader runs it."
    )

    def start() -> None:
        """Start the periodic sweeps."""

    def stop() -> None:
        """Stop the periodic work."""

    def heard(sn: str) -> None:
        """A registered terminal sent a command."""

    def answered(sn: str, message: TerminalMessage, reply: Mapping[str, Any] | None) -> None:
        """
        The command C{message} of registered terminal C{sn} was answered C{reply} (called by
        the terminal protocol after the answer): it was heard, and a C{sendlog} acknowledged
        C{result:true} is committed.
        """

    def registered(terminal: Terminal, message: Register) -> None:
        """C{reg} of C{terminal} accepted (first or heartbeat)."""

    def logsStored(sn: str, message: SendLog) -> None:
        """A C{sendlog} batch of C{sn} was committed."""

    def clockReply(sn: str, timezone: str | None, time: object) -> None:
        """A C{gettime} reply of C{sn} said C{time}."""

    def forget(sn: str) -> None:
        """Terminal C{sn} was deleted: forget what was kept in memory about it."""


class IReconciler(Interface):
    """Keeps each terminal holding the fleet persons assigned to it."""

    def hook() -> None:
        """Follow registrations and the queue's deliveries."""

    def start() -> None:
        """Start the periodic checks."""

    def stop() -> None:
        """Stop them."""

    def outstanding(sn: str) -> int:
        """Commands of the reconciler queued for C{sn} and not finished."""

    def backlog() -> int:
        """Persons waiting to be queued plus commands outstanding, over all terminals."""

    def terminalRegistered(sn: str) -> None:
        """A registration observer: reconcile the terminal."""

    def reconcileTerminal(sn: str) -> Deferred[None]:
        """A pass over every person of C{sn} (and every person it holds for the fleet)."""

    def reconcilePerson(enrollid: int, alsoOn: Iterable[str] = ()) -> Deferred[Any]:
        """Bring every terminal of person C{enrollid} (and C{alsoOn}) in line with it."""

    def claim(enrollid: int, sn: str) -> Deferred[Any]:
        """An operator says the user C{enrollid} on C{sn} is the fleet person's: overwrite it."""

    def checkConnected() -> Deferred[Any]:
        """Check every connected terminal holding fleet persons."""

    def checkTerminal(sn: str) -> Deferred[Any]:
        """Check what C{sn} holds (user list) and reconcile it, unless it is busy."""

    def commandFinished(command: StoredCommand) -> None:
        """A queue observer: one of the reconciler's commands was delivered (or given up)."""


class IEventsService(Interface):
    """The events side of a server: the feed readers wait on, the sink runner, retention."""

    feed = Attribute("""The L{tm20.events.feed.EventFeed} readers (SSE, sinks) wait on.""")
    runner = Attribute("""The L{tm20.events.runner.SinkRunner} feeding the sinks.""")

    def start() -> Deferred[None]:
        """Start the feed, the sinks and the hourly pruning."""

    def stop() -> Deferred[None]:
        """Stop them (the sinks finish their batch in flight)."""

    def prune() -> Deferred[None]:
        """Delete the events older than the retention."""


class IStoreLifecycle(Interface):
    """
    Starting, stopping and watching a store.  Implementations: C{tm20.store.sqlite.SQLiteStore},
    C{tm20.store.postgres.PostgresStore}; each also provides every other store role below.
    """

    def start() -> Deferred[None]:
        """Open connections and apply pending schema migrations."""

    def stop() -> Deferred[None]:
        """Flush pending writes and close."""

    def ping() -> Deferred[bool]:
        """Check the database answers: fires with C{True}."""

    def health() -> StoreHealth:
        """
        The store's health now, known without I/O (C{ok}, C{degraded} or C{unhealthy}, with a
        reason and since when).
        """


class ITerminalStore(Interface):
    """
    Terminals and their hardware identity.  Every method is one transaction; a failed
    L{Deferred} means nothing was changed.
    """

    def recordTerminalSeen(
        sn: str, cpusn: str | None, devinfo: Mapping[str, Any], approvedIfNew: bool
    ) -> Deferred[Terminal]:
        """
        A terminal sent C{reg}: create it if new (approved or pending as C{approvedIfNew} says),
        else update its C{cpusn} (only if it had none), C{devinfo}, C{mac}, C{modelname},
        C{firmware} and C{lastSeen}.  @return: L{Deferred} of the L{tm20.model.Terminal}.
        """

    def registerTerminal(
        sn: str,
        cpusn: str | None,
        devinfo: Mapping[str, Any],
        approvedIfNew: bool,
        check: Callable[[Terminal | None], Any] | None,
        bind: tuple[str | None, str | None] | None,
    ) -> Deferred[tuple[Terminal | None, Any, bool]]:
        """
        A terminal sent C{reg}: check its claim, record the sighting and bind its identity, in
        one transaction (one commit), as L{recordTerminalSeen} then L{bindTerminalIdentity}.
        The transaction may hold other registrations asked meanwhile; the answer is this one's
        alone, and comes after the commit.

        @param check: C{None}, or a callable given the terminal as stored (C{None} if there is
            none) before anything is written, under the row's lock; when it returns anything but
            C{None} (a refusal), nothing is written.  It may run in the database's thread: it
            must be pure.
        @param bind: C{None}, or C{(cpusn, mac)} to bind the terminal to when, after recording,
            it is approved, active and not bound yet (the first binding wins).
        @return: L{Deferred} of C{(terminal, refusal, bound)}: the L{tm20.model.Terminal} as
            stored afterwards (as before, or C{None}, when refused), what C{check} returned, and
            whether this call bound it.
        """

    def createTerminal(
        sn: str, name: str | None, approved: bool, timezone: str | None
    ) -> Deferred[Terminal]:
        """
        Add a terminal before it ever connects (an operator pre-registering it for the whitelist).
        @return: L{Deferred} of the L{tm20.model.Terminal}; fails with C{ValueError} if C{sn} exists.
        """

    def getTerminal(sn: str) -> Deferred[Terminal | None]:
        """@return: L{Deferred} of the L{tm20.model.Terminal} or C{None}."""

    def listTerminals(approved: bool | None) -> Deferred[list[Terminal]]:
        """
        @param approved: C{True}/C{False} to filter, C{None} for all.
        @return: L{Deferred} of a list of L{tm20.model.Terminal}, sorted by C{sn}.
        """

    def updateTerminal(sn: str, changes: Mapping[str, Any]) -> Deferred[Terminal | None]:
        """
        Change the fields in C{changes} (keys from L{tm20.model.TERMINAL_EDITABLE_FIELDS}; a
        C{ValueError} for others).  An unknown C{sn} gives C{None}.
        @return: L{Deferred} of the updated L{tm20.model.Terminal} or C{None}.
        """

    def deleteTerminal(sn: str) -> Deferred[bool]:
        """
        Delete a terminal and everything stored for it (its quarantine included).
        @return: L{Deferred} of C{bool}.
        """

    def bindTerminalIdentity(
        sn: str, cpusn: str | None, mac: str | None
    ) -> Deferred[Terminal | None]:
        """
        Bind terminal C{sn} to this hardware (C{boundCpusn}, C{boundMac}, C{boundAt} = now),
        unless it is already bound (then nothing changes: the first binding wins).

        @return: a L{Deferred} of the L{tm20.model.Terminal} as stored afterwards, or C{None}
            when there is no such terminal.
        """

    def flagTerminal(sn: str, mismatch: Mapping[str, Any]) -> Deferred[Terminal | None]:
        """
        Record a refused identity claim on terminal C{sn} (C{identityMismatch}, a JSON object
        from L{tm20.services.identity.mismatchRecord}), replacing the previous one.

        @return: a L{Deferred} of the L{tm20.model.Terminal}, or C{None} when there is none.
        """

    def resetTerminalIdentity(sn: str) -> Deferred[Terminal | None]:
        """
        Forget terminal C{sn}'s hardware binding and its flag (an operator replaced the
        hardware, or cleared a false alarm): its next accepted registration binds it again.
        The secret is kept (see L{setTerminalSecret}).

        @return: a L{Deferred} of the L{tm20.model.Terminal}, or C{None} when there is none.
        """

    def setTerminalSecret(sn: str, secretHash: str | None) -> Deferred[Terminal | None]:
        """
        Set (or, with C{None}, remove) terminal C{sn}'s path secret, given as its sha256 hex
        (L{tm20.services.identity.hashSecret}); the secret itself is never stored.

        @return: a L{Deferred} of the L{tm20.model.Terminal}, or C{None} when there is none.
        """


class IUserStore(Interface):
    """The users each terminal holds, and their credential slots, as terminals reported them."""

    def saveCredential(
        sn: str,
        enrollid: int,
        backupnum: int | None,
        record: str | int | None,
        name: str | None,
        admin: int | None,
        *,
        enrolled: bool = False,
    ) -> Deferred[None]:
        """
        Store one credential slot as a terminal reported it (C{senduser}, C{getuserinfo}): creates
        the user if needed; C{name}/C{admin} update the user unless C{None}; C{backupnum} C{None}
        stores only the user.  A value outside L{tm20.protocol.storable.checkUserFields} fails
        with C{ValueError} (in every store alike), so does an unknown terminal.  With
        C{enrolled=True} (a terminal's C{senduser}) a C{user.enrolled} event is written in the
        same transaction.
        @return: L{Deferred} of C{None}.
        """

    def saveUser(
        sn: str, enrollid: int, name: str | None, admin: int, enabled: bool
    ) -> Deferred[User]:
        """
        Create or update a user (not its credentials); an unknown terminal fails it with
        C{ValueError}.  @return: L{Deferred} of the L{tm20.model.User}.
        """

    def getUser(sn: str, enrollid: int) -> Deferred[User | None]:
        """@return: L{Deferred} of the L{tm20.model.User} with its credentials, or C{None}."""

    def listUsers(sn: str, limit: int, afterEnrollid: int | None) -> Deferred[list[User]]:
        """
        A page of users of one terminal, by ascending C{enrollid}, strictly after C{afterEnrollid}
        (C{None} for the first page), with their credentials.
        @return: L{Deferred} of a list of L{tm20.model.User}.
        """

    def deleteUser(sn: str, enrollid: int) -> Deferred[bool]:
        """Delete a user and its credentials.  @return: L{Deferred} of C{bool} (existed)."""

    def deleteCredential(sn: str, enrollid: int, backupnum: int) -> Deferred[int]:
        """
        Delete one slot; C{12} deletes all fingerprints (0-9), C{13} the whole user.
        @return: L{Deferred} of the number of slots deleted.
        """


class LogBatch(Protocol):
    """One caller's log records waiting for a flush (what L{ILogBatchWriter} is given)."""

    @property
    def sn(self) -> str:
        """The terminal that sent the records."""

    @property
    def items(self) -> Sequence[LogRecord]:
        """The records, in the order the terminal sent them."""


class ILogBatchWriter(Interface):
    """
    The one log operation of a store under the ingest service's group commit
    (L{tm20.services.ingest.LogIngest} owns the queue: grouping, the bound, backpressure, the
    retry of a refused flush batch by batch): write several callers' batches in one transaction
    and give each its own result.  A role of the same store object as L{IStore}.
    """

    logFlushPolicy: LogFlushPolicy = Attribute(
        """
        How this store likes its flushes (L{tm20.model.LogFlushPolicy}): their size, how many
        may run at once (PostgreSQL: its C{COPY} threads; SQLite: one, its writer), the bound
        of the queue, and which failures are worth one more try.
        """
    )

    def writeLogBatches(
        batches: Sequence[LogBatch],
    ) -> Deferred[Sequence[LogInsertResult | Failure]]:
        """
        Write C{batches} in one transaction; a record already stored, or held by an earlier
        batch of the same call, counts as a duplicate of the batch holding it again.  The
        Deferred fires after the commit with one result per batch, in order: its
        L{tm20.model.LogInsertResult}, or a L{Failure} when that batch alone could not be
        stored (a record outside L{tm20.protocol.storable.checkLogRecord}: C{ValueError} or
        C{TypeError}; nothing of it was written, the others were).  It fails whole (nothing
        written) when the transaction fails: C{tm20.errors.StoreUnavailable} while the database
        is down or full; another error when the database refused a row of some batch (the
        caller then writes each batch alone to find it).  Events of the rows inserted are
        appended in the same transaction, and the store's event observers told after it.
        """


class ILogStore(Interface):
    """Punches and door events, their queries, and the quarantine of records never storable."""

    def addLogs(sn: str, records: Sequence[LogRecord]) -> Deferred[LogInsertResult]:
        """
        Store a batch of L{tm20.protocol.messages.LogRecord}s atomically, punches and door events
        (C{enrollid} 0) in their own tables; a record already stored (same C{sn}, C{enrollid},
        C{time}, C{mode}, C{inout}, C{event}) is ignored.  The Deferred fires only once the rows
        are committed.  A record outside L{tm20.protocol.storable.checkLogRecord} fails the call
        with C{ValueError} before anything is written (in every store alike).
        @return: L{Deferred} of a L{tm20.model.LogInsertResult}.
        """

    def quarantineRecords(
        sn: str, source: str, rejected: Sequence[RejectedRecord]
    ) -> Deferred[int]:
        """
        Hold records that can never be stored, verbatim, in the quarantine of terminal C{sn}.

        @param source: the command that carried them (C{"sendlog"}, C{"senduser"}).
        @param rejected: L{tm20.protocol.messages.RejectedRecord}s; one already held for C{sn}
            and C{source} with the same C{raw} text (a resent batch) is not held twice.
        @return: L{Deferred} of the number newly held; it fires only once they are committed.
        """

    def listQuarantine(
        sn: str | None, limit: int, beforeId: int | None
    ) -> Deferred[list[QuarantinedRecord]]:
        """
        A page of held records, newest (highest C{id}) first, with C{id < beforeId} (C{None}
        for the first page); C{sn} C{None} for every terminal's.
        @return: L{Deferred} of a list of L{tm20.model.QuarantinedRecord}.
        """

    def queryLogs(query: LogQuery) -> Deferred[list[StoredLog]]:
        """@return: L{Deferred} of a list of L{tm20.model.StoredLog} for a L{tm20.model.LogQuery}."""

    def queryDoorEvents(query: LogQuery) -> Deferred[list[StoredLog]]:
        """Like L{queryLogs}, over door events."""

    def countLogs(sn: str | None) -> Deferred[int]:
        """@return: L{Deferred} of the number of punches stored for C{sn} (all terminals if C{None})."""


class ICommandStore(Interface):
    """The durable queue of commands to terminals."""

    def enqueueCommand(
        sn: str,
        name: str,
        payload: Mapping[str, Any],
        actor: str | None,
        maxAttempts: int,
        expiresAt: datetime | None = None,
        warnings: Sequence[Mapping[str, str]] = (),
    ) -> Deferred[StoredCommand]:
        """
        Add a command with status C{queued}, deliverable until C{expiresAt} (an aware
        C{datetime}, or C{None}), with the C{warnings} (C{{"field", "detail"}} dicts) of the
        parameters that could not be honoured.
        @return: L{Deferred} of the L{tm20.model.StoredCommand}.
        """

    def submitCommand(
        sn: str,
        name: str,
        payload: Mapping[str, Any],
        actor: str | None,
        maxAttempts: int,
        expiresAt: datetime | None = None,
        warnings: Sequence[Mapping[str, str]] = (),
        audit: tuple[str, str, str | None, Mapping[str, Any]] | None = None,
        claim: bool = False,
    ) -> Deferred[StoredCommand]:
        """
        L{enqueueCommand} in one transaction with the audit entry C{audit} (C{(actor, action,
        target, detail)}, as L{IAuditStore.addAuditEntry} writes it, written first), so that
        an operator's command costs one commit.  C{claim}: when no older command of C{sn} is
        still to deliver, the new one is stored C{sent} at once, with one attempt (as
        L{claimCommand} would mark it: the caller delivers it now); otherwise it is C{queued}.
        @return: L{Deferred} of the L{tm20.model.StoredCommand} (its status says which).
        """

    def getCommand(commandId: int) -> Deferred[StoredCommand | None]:
        """@return: L{Deferred} of the L{tm20.model.StoredCommand} or C{None}."""

    def pendingCommands(sn: str) -> Deferred[list[StoredCommand]]:
        """
        Commands of C{sn} still to deliver (status C{queued} or C{sent}), oldest first.
        @return: L{Deferred} of a list of L{tm20.model.StoredCommand}.
        """

    def terminalsWithPendingCommands(sns: Sequence[str]) -> Deferred[set[str]]:
        """
        @return: L{Deferred} of those of C{sns} with a command still to deliver (C{queued} or
            C{sent}), in one query.
        """

    def claimCommand(
        sn: str, expired: Callable[[StoredCommand], bool]
    ) -> Deferred[tuple[StoredCommand, bool] | None]:
        """
        In one transaction: C{sn}'s oldest command still to deliver (as L{pendingCommands}'
        first) and, unless C{expired(command)}, mark it C{sent} as C{updateCommand(id, "sent",
        None, True)} does.
        @return: L{Deferred} of C{None} (nothing to deliver), C{(command, True)} (marked
            C{sent}: deliver it now) or C{(command, False)} (expired, left as it was; or
            settled meanwhile by another process).
        """

    def updateCommand(
        commandId: int, status: str, reply: Mapping[str, Any] | None, attempted: bool
    ) -> Deferred[StoredCommand | None]:
        """
        Set a command's status (and reply, when not C{None}); C{attempted} adds one to C{attempts}
        and sets C{sentAt}; a final status sets C{finishedAt}, another clears it.  A command
        already in a final status (e.g. C{cancelled}) is left as it is; an unknown status is a
        C{ValueError}.
        @return: L{Deferred} of the L{tm20.model.StoredCommand} as stored after (C{None} for an
            unknown id).
        """

    def finishAndClaimCommand(
        commandId: int,
        status: str,
        reply: Mapping[str, Any] | None,
        attempted: bool,
        sn: str,
        expired: Callable[[StoredCommand], bool],
    ) -> Deferred[tuple[StoredCommand | None, tuple[StoredCommand, bool] | None]]:
        """
        L{updateCommand}, then L{claimCommand} of C{sn}, in one transaction: the end of one
        delivery and the claim of the next command to deliver cost one commit.
        @return: L{Deferred} of C{(updated, claimed)}: what L{updateCommand} and
            L{claimCommand} would answer.
        """

    def settleCommand(
        commandId: int, status: str, only: Collection[str], at: datetime | None = None
    ) -> Deferred[tuple[StoredCommand, bool] | None]:
        """
        Give a command the final C{status} (C{cancelled}, C{expired}) if, and only if, its
        status is one of C{only} (checked and changed atomically); C{finishedAt} becomes C{at}
        (an aware C{datetime}; now when C{None}).
        @return: L{Deferred} of C{(command, changed)}: the L{tm20.model.StoredCommand} as stored
            after, and whether this call settled it (C{False}: its status was not in C{only},
            e.g. another caller settled it first); C{None} for an unknown id.
        """


class ITokenStore(Interface):
    """API tokens, kept as the sha256 of the secret."""

    def addApiToken(name: str, tokenHash: str, scopes: Sequence[str]) -> Deferred[ApiToken]:
        """@return: L{Deferred} of the L{tm20.model.ApiToken}; a C{ValueError} if the name is taken."""

    def findApiToken(tokenHash: str) -> Deferred[ApiToken | None]:
        """@return: L{Deferred} of the L{tm20.model.ApiToken} or C{None}."""

    def listApiTokens() -> Deferred[list[ApiToken]]:
        """@return: L{Deferred} of a list of L{tm20.model.ApiToken}, by name."""

    def deleteApiToken(name: str) -> Deferred[bool]:
        """@return: L{Deferred} of C{bool}."""


class IAuditStore(Interface):
    """The audit trail of what operators did."""

    def addAuditEntry(
        actor: str, action: str, target: str | None, detail: Mapping[str, Any]
    ) -> Deferred[AuditEntry]:
        """@return: L{Deferred} of the L{tm20.model.AuditEntry}."""

    def listAuditEntries(limit: int, beforeId: int | None) -> Deferred[list[AuditEntry]]:
        """Newest (highest C{id}) first, C{id < beforeId}.  @return: L{Deferred} of a list."""


class IStore(
    IStoreLifecycle,
    ITerminalStore,
    IUserStore,
    ILogStore,
    ICommandStore,
    ITokenStore,
    IAuditStore,
):
    """
    Persistence: the union of the store roles (L{IStoreLifecycle}, L{ITerminalStore},
    L{IUserStore}, L{ILogStore}, L{ICommandStore}, L{ITokenStore}, L{IAuditStore}) that one
    store object provides, for callers that use several.  Every method returning a L{Deferred}
    is one transaction: a failed one means nothing was changed.  The same object also provides
    L{IWatchStore}, L{IEventStore} and L{IPersonStore}.
    """


class IWatchStore(Interface):
    """
    What the server watches on each terminal by itself (L{tm20.model.TerminalWatch}): a role
    of the same store object as L{IStore}.  A terminal without a watch row has the defaults of
    L{tm20.model.TerminalWatch}; deleting a terminal deletes its row.
    """

    def getWatch(sn: str) -> Deferred[TerminalWatch | None]:
        """@return: L{Deferred} of the L{tm20.model.TerminalWatch}, or C{None} when it has none."""

    def listWatches() -> Deferred[list[TerminalWatch]]:
        """@return: L{Deferred} of every stored L{tm20.model.TerminalWatch}, by C{sn}."""

    def updateWatch(
        sn: str, changes: Mapping[str, Any], events: Sequence[NewEvent] = ()
    ) -> Deferred[TerminalWatch | None]:
        """
        Set the fields in C{changes} (names of L{tm20.model.TerminalWatch} fields but C{sn}; a
        C{ValueError} for others), creating the row if needed, and append C{events} (the
        L{tm20.events.model.NewEvent}s of the change), in one transaction.
        @return: L{Deferred} of the L{tm20.model.TerminalWatch} afterwards, or C{None} when there
            is no terminal C{sn} (nothing is written).
        """

    def updateWatches(
        changes: Sequence[tuple[str, Mapping[str, Any], Sequence[NewEvent]]],
    ) -> Deferred[list[bool]]:
        """
        L{updateWatch} of several terminals in one transaction: each change is C{(sn, changes,
        events)}; changes of the same C{sn} apply in order (the last value of a field wins).
        @return: L{Deferred} of, for each change in order, whether C{sn} is a terminal (nothing
            is written for one that is not).
        """

    def countTerminalLogs(sn: str) -> Deferred[int]:
        """@return: L{Deferred} of the logs stored for C{sn}: punches and door events together."""

    def countLogsOfTerminals(sns: Sequence[str]) -> Deferred[dict[str, int]]:
        """
        @return: L{Deferred} of C{sn} -> the logs stored for it (as L{countTerminalLogs}), for
            each of C{sns}, in one query.
        """

    def watchPage(afterSn: str | None, limit: int) -> Deferred[list[WatchedTerminal]]:
        """
        A page of every terminal (approved or not), by C{sn}, strictly after C{afterSn}
        (C{None}: from the first), at most C{limit}, each with its watch fields.
        @return: L{Deferred} of a list of L{tm20.model.WatchedTerminal}.
        """

    def countPendingCommands() -> Deferred[int]:
        """
        @return: L{Deferred} of the commands still to deliver (C{queued} or C{sent}), all
            terminals together (for the metrics).
        """


class IEventStore(Interface):
    """
    The event log of a store: every fact written through L{IStore} that changes data appends
    its event(s) I{in the same transaction} (an outbox), with a store-wide, strictly increasing
    C{id}, visible in id order (a reader past id N never later finds a smaller one).  Values
    are in L{tm20.events.model}.  Delivery streams (a cursor, a state and a retry schedule per
    webhook subscription or sink) and their attempts live here too, so a restart resumes.
    """

    def addEventObserver(observer: Callable[[], object]) -> Callable[[], None]:
        """
        Call C{observer()} after each commit of this process that may have appended events (a
        wake-up for readers; they read the log to see what is new).
        @return: a function that unregisters it.
        """

    def appendEvent(type: str, sn: str | None, payload: Mapping[str, Any]) -> Deferred[Event]:
        """
        Append one event that is a fact of its own (C{terminal.connected} ...).
        @return: L{Deferred} of the L{tm20.events.model.Event}.
        """

    def appendEvents(events: Sequence[NewEvent]) -> Deferred[int]:
        """
        Append several L{tm20.events.model.NewEvent}s, in order, in one transaction.
        @return: L{Deferred} of how many.
        """

    def listEvents(query: EventQuery) -> Deferred[list[Event]]:
        """@return: L{Deferred} of the events of an L{tm20.events.model.EventQuery}, by id."""

    def lastEventId() -> Deferred[int]:
        """@return: L{Deferred} of the highest event id (0 when the log is empty)."""

    def pruneEvents(before: datetime) -> Deferred[int]:
        """
        Delete events (and delivery attempts) created before the aware C{datetime} C{before}:
        the events before the first one created at or after C{before} (an event that is older
        than one before it, after a clock stepped back, stays until that one is old too; a
        young event is never deleted).
        @return: L{Deferred} of the number of events deleted.
        """

    def getSinkStream(key: str) -> Deferred[SinkStream | None]:
        """@return: L{Deferred} of the L{tm20.events.model.SinkStream} or C{None}."""

    def openSinkStream(key: str, startAfter: int | None) -> Deferred[SinkStream]:
        """
        The stream C{key}, created if missing with its cursor at C{startAfter} (C{None}: the
        last event id now: a new stream sees only new events).
        @return: L{Deferred} of the L{tm20.events.model.SinkStream}.
        """

    def updateSinkStream(key: str, changes: Mapping[str, Any]) -> Deferred[SinkStream | None]:
        """
        Change fields of a stream (C{cursor}, C{state}, C{failures}, C{retryAt},
        C{failingSince}, C{lastError}); a C{ValueError} for others.
        @return: L{Deferred} of the stream after, or C{None} when there is none.
        """

    def recordSinkAttempt(
        attempt: SinkAttempt, changes: Mapping[str, Any]
    ) -> Deferred[SinkStream | None]:
        """
        Keep a L{tm20.events.model.SinkAttempt} (error and response cut to a short excerpt)
        and apply C{changes} to its stream, in one transaction.
        @return: L{Deferred} of the stream after, or C{None}.
        """

    def listSinkAttempts(key: str, limit: int, beforeId: int | None) -> Deferred[list[SinkAttempt]]:
        """Attempts of stream C{key}, newest first, C{id < beforeId}.  @return: L{Deferred}."""

    def createWebhook(
        url: str, types: Sequence[str], sn: str | None, secret: str, description: str | None
    ) -> Deferred[Webhook]:
        """
        Add a subscription and its stream (starting after the last event now).
        @return: L{Deferred} of the L{tm20.events.model.Webhook}.
        """

    def getWebhook(webhookId: int) -> Deferred[Webhook | None]:
        """@return: L{Deferred} of the L{tm20.events.model.Webhook} or C{None}."""

    def listWebhooks() -> Deferred[list[Webhook]]:
        """@return: L{Deferred} of every webhook, by id."""

    def updateWebhook(webhookId: int, changes: Mapping[str, Any]) -> Deferred[Webhook | None]:
        """
        Change C{url}, C{types}, C{sn}, C{description}; a C{ValueError} for others.
        @return: L{Deferred} of the webhook after, or C{None}.
        """

    def deleteWebhook(webhookId: int) -> Deferred[bool]:
        """Delete a webhook with its stream and attempts.  @return: L{Deferred} of C{bool}."""


class IEventSink(Interface):
    """
    A destination for events, fed by the sink runner (L{tm20.events.runner.SinkRunner}).

    A sink declares one or more delivery I{streams} (L{tm20.events.sinks.StreamSpec}: a key,
    the event types and terminal it wants, a batch size).  Each stream has its own durable
    cursor in the store: the runner reads the event log after it and calls L{deliver} with the
    next batch, in id order, one batch at a time.  When L{deliver} succeeds the cursor moves
    past the batch; when it fails the same batch is tried again on the retry schedule (nothing
    is skipped or reordered); a L{tm20.events.sinks.SinkGone} failure disables the stream.
    Delivery is therefore at least once: a sink may see a batch again after a crash.

    Sinks are found as plugins: an object providing C{IPlugin} and C{IEventSink} in a module of
    any C{tm20/plugins/} folder on the Python path (the webhook sink is one).
    """

    name = Attribute("""A unique, stable name (the prefix of its streams' keys).""")

    def start(context: IServerContext) -> Deferred[None] | None:
        """
        Called once when the server starts, with the L{IServerContext}.
        @return: C{None} or a L{Deferred}.
        """

    def streams() -> (
        Sequence[StreamSpec]
        | Deferred[Sequence[StreamSpec]]
        | Deferred[list[StreamSpec]]
        | Coroutine[Any, Any, list[StreamSpec]]
    ):
        """
        The streams this sink wants now: a list of L{tm20.events.sinks.StreamSpec} (or a
        L{Deferred} of one).  Asked at start and again when the runner is told to refresh
        (a webhook was added, changed or deleted); a stream no longer listed is stopped.
        """

    def deliver(stream: StreamSpec, events: list[Event]) -> Deferred[Any]:
        """
        Deliver C{events} (a non-empty list of L{tm20.events.model.Event}, in id order) of
        C{stream} (its L{tm20.events.sinks.StreamSpec}).

        @return: a L{Deferred} firing (with a L{tm20.events.sinks.DeliveryReport} or C{None})
            once delivered, or failing: L{tm20.events.sinks.SinkGone} to disable the stream,
            L{tm20.events.sinks.DeliveryFailed} (with a status and a response excerpt) or any
            other error to be retried.
        """

    def stop() -> Deferred[None] | None:
        """Called when the server stops.  @return: C{None} or a L{Deferred}."""


class IPersonStore(Interface):
    """
    Fleet persons, terminal groups and the reconciler's sync state (both stores provide it).
    Every method returns a L{Deferred} and is one transaction; a broken constraint (an unknown
    group or terminal, a taken C{enrollid} or group name) fails it with C{ValueError}.
    """

    def putPerson(person: Person, create: bool) -> Deferred[Person | None]:
        """
        Store a L{tm20.model.Person} whole (fields, credentials verbatim, groups, terminals).

        @param create: C{True} to create it (C{ValueError} when the C{enrollid} is taken),
            C{False} to replace it (C{None} when there is none).
        @return: L{Deferred} of the L{tm20.model.Person} as stored.
        """

    def getPerson(enrollid: int) -> Deferred[Person | None]:
        """@return: L{Deferred} of the L{tm20.model.Person} or C{None}."""

    def listPersons(limit: int, afterEnrollid: int | None) -> Deferred[list[Person]]:
        """A page of persons by ascending C{enrollid}, strictly after C{afterEnrollid}."""

    def personsForTerminal(sn: str) -> Deferred[list[Person]]:
        """The persons assigned to C{sn} directly or through a group, by C{enrollid}."""

    def terminalsWithPersons(sns: Sequence[str]) -> Deferred[set[str]]:
        """
        Of C{sns}, those with a person assigned (directly or through a group) or a person sync
        state (one query for many terminals).
        """

    def deletePerson(enrollid: int) -> Deferred[bool]:
        """Delete a person (not its sync state).  @return: L{Deferred} of C{bool}."""

    def putGroup(group: TerminalGroup, create: bool) -> Deferred[TerminalGroup | None]:
        """Like L{putPerson}, for a L{tm20.model.TerminalGroup} (keyed by name)."""

    def getGroup(name: str) -> Deferred[TerminalGroup | None]:
        """@return: L{Deferred} of the L{tm20.model.TerminalGroup} or C{None}."""

    def listGroups() -> Deferred[list[TerminalGroup]]:
        """@return: L{Deferred} of every group, by name."""

    def groupsOfTerminal(sn: str) -> Deferred[list[TerminalGroup]]:
        """@return: L{Deferred} of the groups C{sn} belongs to, by name."""

    def deleteGroup(name: str) -> Deferred[bool]:
        """Delete a group (its persons lose it).  @return: L{Deferred} of C{bool}."""

    def savePersonSync(sync: PersonSync) -> Deferred[PersonSync]:
        """
        Create or replace a L{tm20.model.PersonSync}; when its state becomes C{synced} or
        C{failed}, append C{person.synced} / C{person.sync_failed} in the same transaction.
        @return: L{Deferred} of it.
        """

    def deletePersonSync(sn: str, enrollid: int) -> Deferred[bool]:
        """Forget a person's sync state on C{sn}.  @return: L{Deferred} of C{bool}."""

    def listPersonSync(
        sn: str | None = None, enrollid: int | None = None
    ) -> Deferred[list[PersonSync]]:
        """The sync states filtered by C{sn} and/or C{enrollid} (C{None}: any), by C{(sn, enrollid)}."""


__all__ = [
    "HandlerResult",
    "ICommandHandler",
    "ICommandQueue",
    "ICommandService",
    "IEventsService",
    "ILogIngest",
    "IPullService",
    "IReconciler",
    "IRegistration",
    "ITerminalWatch",
    "IEventSink",
    "IEventStore",
    "IWatchStore",
    "IServerContext",
    "ITerminalSession",
    "ITerminalRegistry",
    "IStore",
    "IStoreLifecycle",
    "ITerminalStore",
    "IUserStore",
    "ILogBatchWriter",
    "ILogStore",
    "LogBatch",
    "ICommandStore",
    "ITokenStore",
    "IAuditStore",
    "IPersonStore",
    "IAccessStore",
    "IAccessPolicy",
    "IAccessService",
]


class IAccountStore(Interface):
    """
    Operator accounts of the console and their login sessions (both stores provide it).  Times
    are seconds since the epoch given by the caller; each method is one transaction.
    """

    def createAccount(
        name: str, role: str, passwordHash: str, now: float
    ) -> Deferred[ConsoleAccount]:
        """A new L{tm20.model.ConsoleAccount}; C{ValueError} when the name is taken."""

    def getAccount(name: str) -> Deferred[ConsoleAccount | None]:
        """The account C{name}, or C{None}."""

    def listAccounts() -> Deferred[list[ConsoleAccount]]:
        """Every account, by name."""

    def updateAccount(
        name: str,
        now: float,
        role: str | None = None,
        passwordHash: str | None = None,
        disabled: bool | None = None,
    ) -> Deferred[ConsoleAccount | None]:
        """Change what is not C{None} and end the account's sessions; C{None}: no such account."""

    def createSession(session: ConsoleSession) -> Deferred[ConsoleSession]:
        """Store a L{tm20.model.ConsoleSession}."""

    def touchSession(
        tokenHash: str, now: float, idle: float
    ) -> Deferred[tuple[ConsoleSession, ConsoleAccount] | None]:
        """
        C{(session, account)} when the session was used within C{idle} seconds and its account
        is enabled (its last use becomes C{now}); else C{None}.  Idle sessions are deleted.
        """

    def deleteSession(tokenHash: str) -> Deferred[bool]:
        """End a session; C{True} when there was one."""


class IClusterStore(Interface):
    """
    Several processes (nodes) on one database (L{tm20.cluster}): a role of the PostgreSQL store
    only.  A node's lease is renewed by the node; a node whose lease has lapsed holds nothing for
    every reader, and L{reapNodes} deletes it.  Implemented by
    L{tm20.store._postgres_cluster.PostgresClusterMixin}, where each method is documented.
    """

    def registerNode(
        nodeId: str, incarnation: str, host: str, pid: int, lease: float, sinks: bool = True
    ) -> Deferred[None]:
        """
        Record a node holding nothing (C{sinks}: whether it runs the event sinks); fails with
        C{NodeIdInUse} for a live duplicate id.
        """

    def renewNode(nodeId: str, incarnation: str, lease: float) -> Deferred[bool]:
        """Extend its lease.  @return: L{Deferred} of C{False} when its row is gone."""

    def leaveNode(nodeId: str, incarnation: str) -> Deferred[None]:
        """Delete the node and what it holds."""

    def reapNodes() -> Deferred[list[str]]:
        """Delete lapsed nodes.  @return: L{Deferred} of their ids."""

    def liveNodes() -> Deferred[list[NodeRecord]]:
        """@return: L{Deferred} of the live nodes (dicts), each with its terminal count."""

    def claimTerminal(
        nodeId: str, sn: str, force: bool = True, registration: int = 0
    ) -> Deferred[Claim]:
        """
        Hold C{sn} for its registration counted C{registration}
        (L{tm20.model.Terminal.registrations}).  @return: L{Deferred} of the L{Claim} (the live
        node that held it before; whether it is taken).
        """

    def claimTerminals(
        nodeId: str,
        sns: list[str],
        force: bool = True,
        registrations: Mapping[str, int] | None = None,
    ) -> Deferred[dict[str, Claim]]:
        """
        Hold every C{sn} of C{sns} (as L{claimTerminal}, C{force} likewise), in one
        transaction.  The newest connection wins: a live node holding a terminal for a later
        registration keeps it.  @return: L{Deferred} of C{{sn: its L{Claim}}}.
        """

    def releaseTerminal(nodeId: str, sn: str) -> Deferred[bool]:
        """Stop holding C{sn} (unless another node took it)."""

    def releaseTerminals(nodeId: str, sns: list[str]) -> Deferred[list[bool]]:
        """
        L{releaseTerminal} of several terminals at once (a storm's disconnections).
        @return: L{Deferred} of, for each C{sn} in order, whether C{nodeId} held it.
        """

    def terminalHolder(sn: str) -> Deferred[str | None]:
        """@return: L{Deferred} of the live node holding C{sn}, or C{None}."""

    def terminalHolders() -> Deferred[dict[str, str]]:
        """@return: L{Deferred} of C{{sn: node}} over the live nodes."""

    def queuedCommandTerminals(nodeId: str) -> Deferred[list[str]]:
        """@return: L{Deferred} of the terminals C{nodeId} holds with queued commands."""

    def askCall(sn: str, kind: str, params: Mapping[str, Any], askedBy: str) -> Deferred[int]:
        """Record a call for the holder of C{sn}.  @return: L{Deferred} of its id."""

    def takeCalls(nodeId: str) -> Deferred[list[ClusterCall]]:
        """Take (once, cluster-wide) the asked calls for terminals C{nodeId} holds."""

    def finishCall(
        callId: int, result: Mapping[str, Any] | None, error: Mapping[str, Any] | None
    ) -> Deferred[None]:
        """Record a call's outcome."""

    def getCall(callId: int) -> Deferred[ClusterCall | None]:
        """@return: L{Deferred} of the call, or C{None}."""

    def deleteCall(callId: int) -> Deferred[None]:
        """Forget a call."""


class IAccessStore(Interface):
    """
    Access rules, holidays, codes, group settings and recorded decisions (both stores provide
    it; L{tm20.store._accesssql}).  Every method returns a L{Deferred} and is one transaction.
    """

    def listAccessRules() -> Deferred[list[AccessRule]]:
        """Every L{tm20.access.model.AccessRule}, by id."""

    def getAccessRule(ruleId: int) -> Deferred[AccessRule | None]:
        """One rule, or C{None}."""

    def putAccessRule(rule: AccessRule, create: bool) -> Deferred[AccessRule | None]:
        """Create (a new id) or replace a rule whole; C{None}: no rule to replace."""

    def deleteAccessRule(ruleId: int) -> Deferred[bool]:
        """C{True} if a rule was deleted."""

    def listHolidays() -> Deferred[list[Holiday]]:
        """Every L{tm20.access.model.Holiday}, by first day."""

    def addHoliday(holiday: Holiday) -> Deferred[Holiday]:
        """Store a holiday (a new id)."""

    def deleteHoliday(holidayId: int) -> Deferred[bool]:
        """C{True} if one was deleted."""

    def addQrCode(code: QrCode) -> Deferred[QrCode]:
        """Store a L{tm20.access.model.QrCode} (a new id); a code already stored: ValueError."""

    def getQrCode(codeId: int) -> Deferred[QrCode | None]:
        """One code, or C{None}."""

    def listQrCodes(limit: int, afterId: int | None) -> Deferred[list[QrCode]]:
        """A page of codes by id."""

    def revokeQrCode(codeId: int) -> Deferred[QrCode | None]:
        """Revoke a code (kept); the code after, or C{None}."""

    def listGroupAccess() -> Deferred[list[GroupAccess]]:
        """Every group's L{tm20.access.model.GroupAccess} that was set."""

    def putGroupAccess(settings: GroupAccess) -> Deferred[GroupAccess]:
        """Set a group's settings; an unknown group: ValueError."""

    def loadAccessSnapshot() -> Deferred[Snapshot]:
        """A L{tm20.access.rules.Snapshot} of everything a decision reads."""

    def listAccessDecisions(
        sn: str | None, limit: int, beforeId: int | None, granted: bool | None = None
    ) -> Deferred[list[dict[str, Any]]]:
        """Code decisions (sendqrcode, sendpin), newest first; only granted or denied ones."""

    def recordAccessPunch(
        sn: str, record: LogRecord, decision: Decision, timezone: str | None
    ) -> Deferred[int | None]:
        """
        Store a real-time punch with its decision and its C{log.created} and C{access.*}
        events in one transaction.  @return: the log id, C{None} if it was stored already.
        """

    def recordAccessCode(sn: str, kind: str, decision: Decision) -> Deferred[tuple[Decision, int]]:
        """
        Record a code decision with its event, consuming a single-use code it grants in the
        same transaction.  @return: C{(decision as recorded, its id)}.
        """

    def recordAccessFallback(
        sn: str, kind: str, recordId: int, decision: Decision
    ) -> Deferred[None]:
        """Replace a recorded decision by the fallback the door was answered with."""


class IAccessPolicy(Interface):
    """
    An operator's decision on top of the access rules (a booking system, a blacklist), found
    as a plugin like L{ICommandHandler}: an object providing C{IPlugin} and C{IAccessPolicy} in
    a module of any C{tm20/plugins/} folder.

    A policy is asked only about what the rules granted, and may only deny: it can never open
    a door the rules keep shut.  It must answer within the reply budget; a policy that fails
    or is too slow makes the door fall back (C{--access-fallback}).
    """

    name = Attribute("""A unique, stable name (logged, and named in the reason's message).""")

    def check(request: AccessRequest) -> PolicyAnswer:
        """
        May this pass?  C{request} is a L{tm20.access.model.AccessRequest} (sn, kind,
        enrollid, qrcodeId, the rules' decision, the terminal-local time).

        @return: C{True} / C{None} (no objection), C{False} (deny), or a string (deny, with
            this message on the terminal's screen); or a L{Deferred} of one of them.
        """
