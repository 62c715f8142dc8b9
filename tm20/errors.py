"""Exceptions shared across tm20's parts."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database cannot be reached now; nothing was written.  The API answers 503."""


class TerminalGone(Exception):
    """The terminal disconnected (or is not connected) before the command completed."""


class CommandTimeout(Exception):
    """The terminal did not answer a command within its timeout."""


class TerminalRefused(Exception):
    """A terminal was refused at registration (whitelist, identity); C{reason} is shown to it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
