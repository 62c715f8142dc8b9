"""Connected terminals by C{sn}: one socket is one terminal, the newest connection wins."""

from __future__ import annotations

from collections.abc import Callable

from zope.interface import implementer

from tm20.interfaces import ITerminalRegistry, ITerminalSession
from tm20.lanes import inBackground


@implementer(ITerminalRegistry)
class TerminalRegistry:
    """
    Sessions keyed by C{sn}, plus every open session (registered or not) for shutdown.

    A terminal may open a new socket before the old one's close is delivered; L{bind} replaces
    the old session and L{unbind} from the stale socket then leaves the new one in place.

    A session is bound to one C{sn} at most, for its whole life: L{bind} refuses another C{sn}
    for it, and L{untrack} (its socket closed) removes its binding, so a closed socket is never
    counted as a connected terminal, whatever C{sn} it claimed.
    """

    def __init__(self) -> None:
        self._bySn: dict[str, ITerminalSession] = {}
        self._snOf: dict[ITerminalSession, str] = {}
        self._all: set[ITerminalSession] = set()
        #: Sockets opened, and closed, since the start (L{tm20.collector} reads them).
        self.opened = 0
        self.closed = 0
        #: Called with C{(sn, session, connected)} when a session becomes the one of C{sn}
        #: (C{True}) and when the bound session of C{sn} goes away (C{False}).
        self.observers: list[Callable[[str, ITerminalSession, bool], object]] = []

    def _tell(self, sn: str, session: ITerminalSession, connected: bool) -> None:
        for observer in list(self.observers):
            try:
                # bookkeeping (the cluster's holder record, events): after what terminals wait for
                inBackground(observer, sn, session, connected)
            except Exception:  # an observer's bug must not break the connection's handling
                pass

    def track(self, session: ITerminalSession) -> None:
        """A socket opened (not yet registered)."""
        if session not in self._all:
            self._all.add(session)
            self.opened += 1

    def untrack(self, session: ITerminalSession) -> None:
        """A socket closed: forget it, and its C{sn} if it is still the one bound to it."""
        if session in self._all:
            self._all.remove(session)
            self.closed += 1
        sn = self._snOf.pop(session, None)
        if sn is not None and self._bySn.get(sn) is session:
            del self._bySn[sn]
            self._tell(sn, session, False)

    def get(self, sn: str) -> ITerminalSession | None:
        return self._bySn.get(sn)

    def connected(self) -> list[str]:
        return sorted(self._bySn)

    def bind(self, sn: str, session: ITerminalSession) -> ITerminalSession | None:
        """
        Make C{session} the one for C{sn}.

        @return: the session it replaced, or C{None}.
        @raise ValueError: if C{session} is bound to another C{sn}.
        """
        current = self._snOf.get(session)
        if current is not None and current != sn:
            raise ValueError(f"this connection is bound to {current!r}, not {sn!r}")
        old = self._bySn.get(sn)
        self._bySn[sn] = session
        self._snOf[session] = sn
        if old is session:
            return None
        self._tell(sn, session, True)
        if old is None:
            return None
        self._snOf.pop(old, None)
        return old

    def unbind(self, sn: str, session: ITerminalSession) -> None:
        if self._bySn.get(sn) is session:
            del self._bySn[sn]
            self._tell(sn, session, False)
        if self._snOf.get(session) == sn:
            del self._snOf[session]

    def sessions(self) -> list[ITerminalSession]:
        return list(self._all)

    def __len__(self) -> int:
        return len(self._bySn)
