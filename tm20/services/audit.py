"""What a service is given to audit an operator's change (the doors pass their writer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["Audit"]

#: Writes one audit entry, C{(actor, action, target, detail)}, before the change it records is
#: made (L{tm20.services.terminals.TerminalService.audit}).
Audit = Callable[[str, str, "str | None", Mapping[str, Any]], Awaitable[None]]
