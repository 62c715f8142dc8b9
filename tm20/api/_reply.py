"""What a route handler answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class Reply:
    """A JSON answer: status, body (C{None}: empty) and extra headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = attrs.field(factory=dict)


__all__ = ["Reply"]
