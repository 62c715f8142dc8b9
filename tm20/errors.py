"""Exceptions shared across tm20's parts."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database cannot be reached now; nothing was written.  The API answers 503."""


class TerminalGone(Exception):
    """The terminal disconnected (or is not connected) before the command completed."""


class CommandTimeout(Exception):
    """The terminal did not answer a command within its timeout."""


class TerminalRefused(Exception):
    """
    A terminal was refused at registration (whitelist, identity); C{reason} is shown to it.
    C{close} says whether its connection is closed (it is not when the refused C{reg} came on a
    connection that is registered as another terminal: that one is left as it was).
    """

    def __init__(self, reason: str, close: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close = close
