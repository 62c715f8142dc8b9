"""
API errors: every failure becomes C{{"error": CODE, "detail": "..."}} with its HTTP status, and
nothing else (no traceback) ever reaches a client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from tm20.services.errors import serviceErrorFrom

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


def errorFromFailure(failure: Failure, request: IRequest | None = None) -> ApiError:
    """
    The L{ApiError} for any failure: an L{ApiError} as it is, anything else as
    L{tm20.services.errors.serviceErrorFrom} says (the rule both doors share).
    """
    if isinstance(failure.value, ApiError):
        return failure.value
    error = serviceErrorFrom(failure, request)
    fields: dict[str, Any] = dict(error.extra)
    if error.field is not None:
        fields["field"] = error.field
    return ApiError(error.status, error.code, error.detail, **fields)


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
