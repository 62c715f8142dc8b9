"""Shared by the built-in handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def replyFields(reply: Mapping[str, Any]) -> dict[str, Any]:
    """A reply built by L{tm20.protocol.replies} without its C{ret}, which the dispatcher adds."""
    return {k: v for k, v in reply.items() if k != "ret"}
