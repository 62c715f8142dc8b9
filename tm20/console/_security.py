"""
The console's HTTP guards: response headers (a Content-Security-Policy that forbids inline
scripts, no framing, no sniffing, no caching), the session cookie, and the checks of a
state-changing request (same origin, CSRF token).
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "COOKIE",
    "CSP",
    "clearCookie",
    "csrfValid",
    "sameOrigin",
    "securityHeaders",
    "sessionToken",
    "setCookie",
]

#: The session cookie's name.
COOKIE = b"tm20_console"
#: Scripts, styles, fetches and forms from this server only; no inline script, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none';"
    " object-src 'none'"
)


def securityHeaders(request: Any) -> None:
    """The headers of every console response."""
    request.setHeader(b"content-security-policy", CSP.encode("ascii"))
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"referrer-policy", b"same-origin")
    request.setHeader(b"cache-control", b"no-store")


def sessionToken(request: Any) -> str:
    raw = request.getCookie(COOKIE) or b""
    try:
        return str(raw.decode("ascii"))
    except UnicodeDecodeError:
        return ""


def setCookie(request: Any, token: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over TLS, for /admin/ only."""
    request.addCookie(
        COOKIE,
        token.encode("ascii"),
        path=b"/admin/",
        httpOnly=True,
        secure=bool(request.isSecure()),
        sameSite="lax",
    )


def clearCookie(request: Any) -> None:
    request.addCookie(
        COOKIE,
        b"",
        path=b"/admin/",
        httpOnly=True,
        secure=bool(request.isSecure()),
        sameSite="lax",
        max_age=b"0",
    )


def _header(request: Any, name: bytes) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def sameOrigin(request: Any) -> bool:
    """
    C{True} when the request's C{Origin} (else its C{Referer}) names this server's host as the
    client reached it (its C{Host} header).  A request with neither is refused: every browser
    sends C{Origin} with a POST.
    """
    host = _header(request, b"host")
    if not host:
        return False
    claimed = _header(request, b"origin")
    if claimed is None or claimed == "null":
        claimed = _header(request, b"referer")
    if not claimed:
        return False
    try:
        parts = urlsplit(claimed)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https"):
        return False
    return parts.netloc.lower() == host.lower()


def csrfValid(request: Any, expected: str) -> bool:
    """The request carries the session's CSRF token (form field C{csrf} or C{X-CSRF-Token})."""
    given = _header(request, b"x-csrf-token")
    if given is None:
        values = (getattr(request, "args", None) or {}).get(b"csrf") or []
        given = values[-1].decode("latin-1") if values else None
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("latin-1"), expected.encode("latin-1"))
