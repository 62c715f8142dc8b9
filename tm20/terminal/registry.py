"""Connected terminals by C{sn}: the newest connection wins."""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from tm20.interfaces import ITerminalRegistry


@implementer(ITerminalRegistry)
class TerminalRegistry:
    """
    Sessions keyed by C{sn}, plus every open session (registered or not) for shutdown.

    A terminal may open a new socket before the old one's close is delivered; L{bind} replaces
    the old session and L{unbind} from the stale socket then leaves the new one in place.
    """

    def __init__(self) -> None:
        self._bySn: dict[str, Any] = {}
        self._all: set[Any] = set()

    def track(self, session: Any) -> None:
        """A socket opened (not yet registered)."""
        self._all.add(session)

    def untrack(self, session: Any) -> None:
        """A socket closed."""
        self._all.discard(session)

    def get(self, sn: str) -> Any | None:
        return self._bySn.get(sn)

    def connected(self) -> list[str]:
        return sorted(self._bySn)

    def bind(self, sn: str, session: Any) -> Any | None:
        old = self._bySn.get(sn)
        self._bySn[sn] = session
        return old if old is not session else None

    def unbind(self, sn: str, session: Any) -> None:
        if self._bySn.get(sn) is session:
            del self._bySn[sn]

    def sessions(self) -> list[Any]:
        return list(self._all)

    def __len__(self) -> int:
        return len(self._bySn)
