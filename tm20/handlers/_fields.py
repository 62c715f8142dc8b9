"""Shared by the built-in handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from tm20.protocol.messages import TerminalMessage

M = TypeVar("M")


def replyFields(reply: Mapping[str, Any]) -> dict[str, Any]:
    """A reply built by L{tm20.protocol.replies} without its C{ret}, which the dispatcher adds."""
    return {k: v for k, v in reply.items() if k != "ret"}


def expect(message: TerminalMessage, kind: type[M]) -> M:
    """
    C{message} as the type the parser gives its command (a built-in handler's own command).

    @raise TypeError: it is not (a bug): the dispatcher answers C{result:false}.
    """
    if not isinstance(message, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(message).__name__}")
    return message
