"""
L{ServiceError}: a rule of a service refused what a door asked for.  Each door translates it as
it is (the REST API: a JSON error with that status; the console: a page or message with it).

L{serviceErrorFrom} is the one rule by which both doors turn any failure into such an error:
known errors keep their meaning, a database out of reach is a 503, anything else a 500 with no
detail (logged with its traceback).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from tm20.errors import CommandTimeout, StoreUnavailable, TerminalGone
from tm20.protocol.messages import ProtocolError

if TYPE_CHECKING:
    from twisted.web.iweb import IRequest

__all__ = ["ServiceError", "serviceErrorFrom"]

log = Logger(namespace="tm20.api")


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


def _isDatabaseConnectionError(error: BaseException) -> bool:
    if isinstance(error, StoreUnavailable | sqlite3.OperationalError | sqlite3.InterfaceError):
        return True
    module = type(error).__module__ or ""
    if module.startswith(("psycopg2", "txpostgres")):
        name = type(error).__name__
        return name in {"OperationalError", "InterfaceError", "ConnectionDead", "AlreadyConnected"}
    return False


def serviceErrorFrom(failure: Failure, request: IRequest | None = None) -> ServiceError:
    """
    The L{ServiceError} for any failure of a door's request: known errors keep their meaning, a
    database that cannot be reached is a 503, anything else is a 500 with no detail (and is
    logged, with the request's method and path).
    """
    error = failure.value
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, ProtocolError):
        return ServiceError(400, "invalid_params", str(error), field=error.field)
    if isinstance(error, TerminalGone):
        return ServiceError(409, "terminal_offline", str(error) or "the terminal is not connected")
    if isinstance(error, CommandTimeout):
        return ServiceError(504, "timeout", str(error) or "the terminal did not answer in time")
    if error is not None and _isDatabaseConnectionError(error):
        log.warn(
            "API: database unavailable: {error}",
            error=str(error) or type(error).__name__,
        )
        return ServiceError(
            503, "store_unavailable", "the database is unavailable; try again later"
        )
    log.failure(
        "API: unexpected error on {method} {path}",
        failure,
        method=_method(request),
        path=_path(request),
    )
    return ServiceError(500, "internal_error", "internal server error")


def _method(request: IRequest | None) -> str:
    raw = getattr(request, "method", b"") or b""
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)


def _path(request: IRequest | None) -> str:
    raw = getattr(request, "path", b"") or b""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
