"""L{AppPart}: what a group of routes mixed into L{tm20.api._app.TM20Api} uses of the app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.web.iweb import IRequest

from tm20.api._auth import Principal
from tm20.services.terminals import TerminalService

__all__ = ["AppPart"]


class AppPart:
    """
    @ivar context: the L{tm20.context.ServerContext}.
    @ivar store: its store.
    @ivar terminals: the app's L{TerminalService} (it writes the audit entries).
    """

    context: Any
    store: Any
    terminals: TerminalService

    if TYPE_CHECKING:  # the app's

        async def _audit(
            self, principal: Principal, action: str, target: str | None, detail: Mapping[str, Any]
        ) -> None: ...

        @staticmethod
        def _body(request: IRequest, schema: str, required: bool = True) -> dict[str, Any]: ...
