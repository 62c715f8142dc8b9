"""
L{ServiceError}: a rule of a service refused what a door asked for.  Each door translates it as
it is (the REST API: a JSON error with that status; the console: a page or message with it).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceError"]


class ServiceError(Exception):
    """
    @ivar status: the HTTP status that says it best (400, 403, 404, 409, ...).
    @ivar code: a short machine-readable code (C{not_found}, C{confirmation_required}, ...).
    @ivar detail: a sentence for humans.
    @ivar field: the input field at fault, if one is.
    @ivar extra: more facts for the answer (C{commandId}, ...).
    """

    def __init__(
        self, status: int, code: str, detail: str, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.extra = extra
