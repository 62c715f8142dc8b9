"""
The terminal protocol (WebSocket+JSON), without any I/O.

  - L{tm20.protocol.parser}: frames from terminals into typed L{tm20.protocol.messages};
  - L{tm20.protocol.commands}: validated server-to-terminal commands (L{COMMANDS});
  - L{tm20.protocol.replies}: the server's replies to terminal commands, and frame encoding;
  - L{tm20.protocol.paging}: when to stop asking for the next page;
  - L{tm20.protocol.timefmt}: the protocol's date and time strings.
"""

from __future__ import annotations

from tm20.protocol.commands import COMMANDS, CommandSpec, buildCommand, pageRequest
from tm20.protocol.messages import ProtocolError
from tm20.protocol.paging import PageDecision, PageTracker
from tm20.protocol.parser import parseFrame
from tm20.protocol.replies import encodeFrame

__all__ = [
    "COMMANDS",
    "CommandSpec",
    "PageDecision",
    "PageTracker",
    "ProtocolError",
    "buildCommand",
    "encodeFrame",
    "pageRequest",
    "parseFrame",
]
