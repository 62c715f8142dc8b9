"""
The WebSocket close codes the server sends to terminals, in one table.

Application codes (4000-4999) say why the server closed (autobahn sends the standard ones:
1002, 1007, 1009).  README ("Close codes and HTTP answers about security") documents each.
"""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """Why the server closed a terminal's WebSocket."""

    #: The terminal was silent for C{--connection-timeout} seconds.
    TIMEOUT = 4000
    #: The server is shutting down (C{SIGTERM}).
    SHUTDOWN = 4001
    #: A newer connection registered as the same C{sn}.
    REPLACED = 4002
    #: Its registration was refused (pending, inactive, identity) or an operator disabled it.
    REFUSED = 4003
    #: An operator disabled the terminal through the API (the same code as L{REFUSED}).
    DISABLED = 4003
    #: No C{reg} within C{--reg-timeout} seconds of the opening handshake.
    NO_REG = 4004
