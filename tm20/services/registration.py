"""Who may register, and how a registered terminal is known."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from tm20.errors import TerminalRefused
from tm20.interfaces import IStore, ITerminalRegistry
from tm20.model import Terminal
from tm20.protocol.messages import Register
from tm20.protocol.timefmt import cloudTime
from tm20.services.identity import (
    REASON_IDENTITY,
    REASON_SECRET,
    IdentityClaim,
    identityMismatch,
    mismatchRecord,
    secretMatches,
)

#: Close code sent to the older of two connections with the same C{sn}.
CLOSE_REPLACED = 4002

#: Reasons shown on a refused terminal's screen.
REASON_PENDING = "not approved yet: ask the operator"
REASON_INACTIVE = "terminal disabled by the operator"


class RegistrationService:
    """
    Accepts C{reg}: checks the claimed identity, records the terminal, applies the whitelist,
    binds the session by C{sn} (newest connection wins).  A repeated C{reg} on the same
    connection (firmware heartbeat) is acknowledged without a database write unless
    C{touchInterval} has passed.

    Identity (L{tm20.services.identity}), checked once per connection and before anything the
    connection claims is written: a terminal with a secret requires it in the connection's path;
    a terminal bound to hardware requires the same C{cpusn} (or C{mac}).  A refused claim is
    logged and recorded on the terminal (C{identityMismatch}); the connected terminal, if any,
    is left alone.  An approved terminal that is not bound yet is bound at this registration.
    """

    log = Logger()

    def __init__(
        self,
        store: IStore,
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

    def cloudTimeFor(self, terminal: Terminal | None) -> str:
        """The terminal's local time now (its own time zone, else the default)."""
        tz = terminal.timezone if terminal is not None and terminal.timezone else None
        return cloudTime(self.clock.seconds(), tz or self.defaultTimezone)

    def register(self, session: Any, message: Register) -> Deferred[Terminal]:
        """
        @return: a L{Deferred} of the L{Terminal}, failing with L{TerminalRefused}.
        """
        now = self.clock.seconds()
        if (
            session.registered
            and session.sn == message.sn
            and now - session.lastRecorded < self.touchInterval
        ):
            return succeed(session.terminal)
        return self._register(session, message, now)

    @inlineCallbacks
    def _register(self, session: Any, message: Register, now: float) -> Any:
        claim = IdentityClaim.fromRegister(message)
        # This connection already proved it is this terminal: a heartbeat is not re-checked.
        verified = session.registered and session.sn == message.sn
        if not verified:
            known = yield self.store.getTerminal(message.sn)
            if known is not None:
                yield self._checkIdentity(session, known, claim, now)
        terminal = yield self.store.recordTerminalSeen(
            message.sn, message.cpusn, message.devinfo, not self.requireWhitelist
        )
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
            if not (terminal.boundCpusn or terminal.boundMac) and not claim.empty:
                terminal = yield self.store.bindTerminalIdentity(
                    terminal.sn, claim.cpusn, claim.mac
                )
                self.log.info(
                    "terminal {sn} bound to cpusn {cpusn}, mac {mac}",
                    sn=terminal.sn,
                    cpusn=terminal.boundCpusn,
                    mac=terminal.boundMac,
                )
            # Again: a secret may have been set, or a concurrent first registration may have
            # bound the terminal to other hardware, since the first check.
            yield self._checkIdentity(session, terminal, claim, now)
        firstTime = not session.registered
        session.markRegistered(terminal, now)
        old = self.registry.bind(terminal.sn, session)
        if old is not None:
            self.log.info(
                "terminal {sn} reconnected from {peer}; closing its older connection",
                sn=terminal.sn,
                peer=session.peer,
            )
            old.close(CLOSE_REPLACED, "replaced by a newer connection")
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
                    observer(terminal.sn)
                except Exception:
                    self.log.failure("registration observer failed")
        return terminal

    @inlineCallbacks
    def _checkIdentity(
        self, session: Any, terminal: Terminal, claim: IdentityClaim, now: float
    ) -> Any:
        """
        @raise TerminalRefused: the connection lacks the terminal's secret, or claims other
            hardware than the terminal is bound to; the terminal is flagged first.
        """
        secret = getattr(session, "pathSecret", None)
        if not secretMatches(terminal.secretHash, secret):
            problem = "secret wrong" if secret is not None else "secret missing"
            reason = REASON_SECRET
        else:
            mismatch = identityMismatch(terminal, claim)
            if mismatch is None:
                return None
            problem, reason = mismatch, REASON_IDENTITY
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
