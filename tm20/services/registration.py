"""Who may register, and how a registered terminal is known."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from tm20.errors import TerminalRefused
from tm20.interfaces import IRegistration, ITerminalRegistry, ITerminalStore
from tm20.lanes import inBackground
from tm20.model import Terminal
from tm20.protocol.codes import CloseCode
from tm20.protocol.messages import Register
from tm20.protocol.timefmt import cloudTime
from tm20.services.identity import (
    IdentityClaim,
    claimRefusal,
    mismatchRecord,
)

#: Reasons shown on a refused terminal's screen.
REASON_PENDING = "not approved yet: ask the operator"
REASON_INACTIVE = "terminal disabled by the operator"
#: The connection closed before its registration reached the database (nothing was written).
REASON_GONE = "connection closed"
#: A connection registered as one terminal sent C{reg} with another C{sn}.
REASON_SN_CHANGED = "sn differs from this connection's: reconnect"

_GONE = ("connection closed before registration", REASON_GONE)


@implementer(IRegistration)
class RegistrationService:
    """
    Accepts C{reg}: checks the claimed identity, records the terminal, applies the whitelist,
    binds the session by C{sn} (newest connection wins).  A repeated C{reg} on the same
    connection (firmware heartbeat) is acknowledged without a database write unless
    C{touchInterval} has passed.

    One connection is one terminal: it is bound to the first C{sn} registered on it, and a
    C{reg} with another C{sn} on it is refused (L{REASON_SN_CHANGED}) without changing anything:
    nothing is written, the connection stays open and bound to its first C{sn}.  A connection
    that closed while its registration was in the database is not bound.

    Identity (L{tm20.services.identity}), checked once per connection and before anything the
    connection claims is written: a terminal with a secret requires it in the connection's path;
    a terminal bound to hardware requires the same C{cpusn} (or C{mac}).  A refused claim is
    logged and recorded on the terminal (C{identityMismatch}); the connected terminal, if any,
    is left alone.  An approved terminal that is not bound yet is bound at this registration.
    """

    log = Logger()

    def __init__(
        self,
        store: ITerminalStore,
        registry: ITerminalRegistry,
        clock: IReactorTime,
        requireWhitelist: bool = False,
        defaultTimezone: str | None = None,
        touchInterval: float = 60.0,
    ) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.requireWhitelist = requireWhitelist
        self.defaultTimezone = defaultTimezone
        self.touchInterval = touchInterval
        self.observers: list[Any] = []
        # Operator changes per sn (L{terminalChanged}): a registration that overlapped one
        # re-reads the terminal rather than keep what its transaction read.
        self._changes: dict[str, int] = {}
        # Connections already warned about for a changed sn (one warning each).
        self._snChangeWarned: weakref.WeakSet[Any] = weakref.WeakSet()

    def cloudTimeFor(self, terminal: Terminal | None) -> str:
        """The terminal's local time now (its own time zone, else the default)."""
        tz = terminal.timezone if terminal is not None and terminal.timezone else None
        return cloudTime(self.clock.seconds(), tz or self.defaultTimezone)

    def terminalChanged(self, terminal: Terminal) -> None:
        """
        An operator changed C{terminal} (the record as committed): its connection, if any, uses
        it from now on; the very next C{cloudtime} it gets is in its new time zone.
        """
        self._changes[terminal.sn] = self._changes.get(terminal.sn, 0) + 1
        session = self.registry.get(terminal.sn)
        if session is not None and session.registered and session.sn == terminal.sn:
            session.terminal = terminal

    def register(self, session: Any, message: Register) -> Deferred[Terminal]:
        """
        @return: a L{Deferred} of the L{Terminal}, failing with L{TerminalRefused}.
        """
        now = self.clock.seconds()
        if session.registered and session.sn != message.sn:
            return fail(self._snChanged(session, message))
        if (
            session.registered
            and session.sn == message.sn
            and now - session.lastRecorded < self.touchInterval
        ):
            return succeed(session.terminal)
        return self._register(session, message, now)

    def _snChanged(self, session: Any, message: Register) -> TerminalRefused:
        if session not in self._snChangeWarned:
            self._snChangeWarned.add(session)
            self.log.warn(
                "terminal {sn} ({peer}) sent reg as {claimed}: refused, the connection stays {sn}",
                sn=session.sn,
                claimed=message.sn,
                peer=session.peer,
            )
        return TerminalRefused(REASON_SN_CHANGED, close=False)

    @inlineCallbacks
    def _register(self, session: Any, message: Register, now: float) -> Any:
        changes = self._changes.get(message.sn, 0)
        claim = IdentityClaim.fromRegister(message)
        secret = getattr(session, "pathSecret", None)
        # This connection already proved it is this terminal: a heartbeat is not re-checked.
        verified = session.registered and session.sn == message.sn
        check: Callable[[Terminal | None], tuple[str, str] | None] | None = None
        bind: tuple[str | None, str | None] | None = None
        if not verified:

            def checkClaim(known: Terminal | None) -> tuple[str, str] | None:
                # Run when the database gets to it: a terminal that gave up waiting and closed
                # its connection meanwhile costs no write (its retry is another registration).
                if getattr(session, "gone", False):
                    return _GONE
                return None if known is None else claimRefusal(known, claim, secret)

            check = checkClaim
            bind = None if claim.empty else (claim.cpusn, claim.mac)
        # One transaction: the claim is checked against the stored terminal before anything is
        # written; then the sighting is recorded and an unbound approved terminal is bound.
        terminal, refusal, bound = yield self.store.registerTerminal(
            message.sn, message.cpusn, message.devinfo, not self.requireWhitelist, check, bind
        )
        if refusal is _GONE:
            raise TerminalRefused(REASON_GONE)
        if refusal is not None:
            yield self._refuse(session, terminal, claim, secret, now, refusal)
        if self._changes.get(terminal.sn, 0) != changes:
            # An operator changed the terminal meanwhile (its time zone, say): what the
            # registration's transaction read may predate the change.
            fresh = yield self.store.getTerminal(terminal.sn)
            if fresh is not None:
                terminal = fresh
        if not terminal.approved:
            self.log.warn(
                "terminal {sn} from {peer} refused: not approved (pending)",
                sn=message.sn,
                peer=session.peer,
            )
            raise TerminalRefused(REASON_PENDING)
        if not terminal.active:
            self.log.warn("terminal {sn} refused: inactive", sn=message.sn)
            raise TerminalRefused(REASON_INACTIVE)
        if not verified:
            if bound:
                self.log.info(
                    "terminal {sn} bound to cpusn {cpusn}, mac {mac}",
                    sn=terminal.sn,
                    cpusn=terminal.boundCpusn,
                    mac=terminal.boundMac,
                )
            # Again: a concurrent first registration may have bound a new terminal to other
            # hardware, or set a secret, before this one's row existed.
            refusal = claimRefusal(terminal, claim, secret)
            if refusal is not None:
                yield self._refuse(session, terminal, claim, secret, now, refusal)
        if getattr(session, "gone", False):
            # It closed while the database worked: binding it would leave a ghost.
            raise TerminalRefused(REASON_GONE)
        firstTime = not session.registered
        session.markRegistered(terminal, now)
        old = self.registry.bind(terminal.sn, session)
        if old is not None:
            self.log.info(
                "terminal {sn} reconnected from {peer}; closing its older connection",
                sn=terminal.sn,
                peer=session.peer,
            )
            old.close(CloseCode.REPLACED, "replaced by a newer connection")
        if firstTime:
            self.log.info(
                "terminal {sn} registered from {peer} ({model}, {firmware})",
                sn=terminal.sn,
                peer=session.peer,
                model=terminal.modelname,
                firmware=terminal.firmware,
            )
            for observer in list(self.observers):
                try:
                    # what follows a registration must not delay the next terminals' own
                    inBackground(observer, terminal.sn)
                except Exception:
                    self.log.failure("registration observer failed")
        return terminal

    @inlineCallbacks
    def _refuse(
        self,
        session: Any,
        terminal: Terminal,
        claim: IdentityClaim,
        secret: str | None,
        now: float,
        refusal: tuple[str, str],
    ) -> Any:
        """
        Log and flag a refused claim (L{claimRefusal}).

        @raise TerminalRefused: always.
        """
        problem, reason = refusal
        peer = getattr(session, "peerHost", None) or session.peer
        self.log.warn(
            "terminal {sn} refused: {problem} (claimed cpusn {cpusn!r}, mac {mac!r} from"
            " {peer}; bound to cpusn {boundCpusn!r}, mac {boundMac!r})",
            sn=terminal.sn,
            problem=problem,
            cpusn=claim.cpusn,
            mac=claim.mac,
            peer=peer,
            boundCpusn=terminal.boundCpusn,
            boundMac=terminal.boundMac,
            flagged=True,
        )
        record = mismatchRecord(
            problem, claim, peer, datetime.fromtimestamp(now, tz=UTC), secret is not None
        )
        previous = dict(terminal.identityMismatch or {})
        previous.pop("at", None)
        if previous != {k: v for k, v in record.items() if k != "at"}:
            # The same claim again from the same place is not written again (a retrying
            # impostor costs no database writes).
            yield self.store.flagTerminal(terminal.sn, record)
        raise TerminalRefused(reason)
