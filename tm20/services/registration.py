"""Who may register, and how a registered terminal is known."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from tm20.errors import TerminalRefused
from tm20.interfaces import IStore, ITerminalRegistry
from tm20.model import Terminal
from tm20.protocol.messages import Register
from tm20.protocol.timefmt import cloudTime

#: Close code sent to the older of two connections with the same C{sn}.
CLOSE_REPLACED = 4002

#: Reasons shown on a refused terminal's screen.
REASON_PENDING = "not approved yet: ask the operator"
REASON_INACTIVE = "terminal disabled by the operator"


class RegistrationService:
    """
    Accepts C{reg}: records the terminal, applies the whitelist, binds the session by C{sn}
    (newest connection wins).  A repeated C{reg} on the same connection (firmware heartbeat) is
    acknowledged without a database write unless C{touchInterval} has passed.
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
