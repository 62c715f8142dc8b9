"""
API errors: every failure becomes C{{"error": CODE, "detail": "..."}} with its HTTP status, and
nothing else (no traceback) ever reaches a client.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from tm20.errors import CommandTimeout, StoreUnavailable, TerminalGone
from tm20.protocol.messages import ProtocolError
from tm20.services.errors import ServiceError

__all__ = ["ApiError", "errorBody", "errorFromFailure", "writeJSON"]

log = Logger(namespace="tm20.api")


class ApiError(Exception):
    """
    An error answered to the client as it is.

    @ivar status: the HTTP status.
    @ivar code: a short machine-readable code (C{not_found}, C{invalid_params}, ...).
    @ivar detail: a sentence for humans.
    @ivar extra: more fields of the body (C{field}, C{command}, ...).
    @ivar headers: extra response headers (C{Retry-After} of a C{429}).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        return {"error": self.code, "detail": self.detail, **self.extra}


def errorBody(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """C{{"error": code, "detail": detail, ...}}."""
    return {"error": code, "detail": detail, **extra}


def _isDatabaseConnectionError(error: BaseException) -> bool:
    if isinstance(error, StoreUnavailable | sqlite3.OperationalError | sqlite3.InterfaceError):
        return True
    module = type(error).__module__ or ""
    if module.startswith(("psycopg2", "txpostgres")):
        name = type(error).__name__
        return name in {"OperationalError", "InterfaceError", "ConnectionDead", "AlreadyConnected"}
    return False


def errorFromFailure(failure: Failure, request: IRequest | None = None) -> ApiError:
    """
    The L{ApiError} for any failure: known errors keep their meaning, a database that cannot
    be reached is a 503, anything else is a 500 with no detail (and is logged).
    """
    error = failure.value
    if isinstance(error, ApiError):
        return error
    if isinstance(error, ServiceError):
        fields: dict[str, Any] = dict(error.extra)
        if error.field is not None:
            fields["field"] = error.field
        return ApiError(error.status, error.code, error.detail, **fields)
    if isinstance(error, ProtocolError):
        extra: dict[str, Any] = {}
        if error.field is not None:
            extra["field"] = error.field
        return ApiError(400, "invalid_params", str(error), **extra)
    if isinstance(error, TerminalGone):
        return ApiError(409, "terminal_offline", str(error) or "the terminal is not connected")
    if isinstance(error, CommandTimeout):
        return ApiError(504, "timeout", str(error) or "the terminal did not answer in time")
    if error is not None and _isDatabaseConnectionError(error):
        log.warn(
            "API: database unavailable: {error}",
            error=str(error) or type(error).__name__,
        )
        return ApiError(503, "store_unavailable", "the database is unavailable; try again later")
    log.failure(
        "API: unexpected error on {method} {path}",
        failure,
        method=_method(request),
        path=_path(request),
    )
    return ApiError(500, "internal_error", "internal server error")


def _method(request: IRequest | None) -> str:
    raw = getattr(request, "method", b"") or b""
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)


def _path(request: IRequest | None) -> str:
    raw = getattr(request, "path", b"") or b""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def writeJSON(
    request: IRequest, status: int, body: Any, headers: dict[str, str] | None = None
) -> bytes:
    """Set the status and headers for a JSON body; return the encoded body."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode("ascii"), value.encode("utf-8"))
    if body is None:
        return b""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
