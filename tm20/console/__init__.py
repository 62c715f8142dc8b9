"""
The operator console under C{/admin/} (see L{tm20.console._app.Console}).
"""

from __future__ import annotations

from typing import Any

from tm20.console._app import Console

__all__ = ["Console", "buildConsole"]


def buildConsole(context: Any, idleTimeout: float) -> Console:
    """The console of a server's C{context}, its sessions idle out after C{idleTimeout} s."""
    from tm20.services.accounts import AccountService

    accounts = AccountService(context.store, context.clock, idleTimeout=idleTimeout)
    return Console(context, accounts)
