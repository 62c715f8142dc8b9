"""
API authentication: C{Authorization: Bearer TOKEN}.

Tokens come from the command line (C{--api-token NAME:SECRET}, or a bare C{SECRET} named
C{static-N}; both scopes) and from the database (created by C{tm20-admin token create}, stored as
the sha256 of the secret, with the scopes they were created with).  Scopes: C{read} for
C{GET}/C{HEAD}, C{write} for everything else.

Failed authentications (no token, an unknown or revoked one) are counted per source address by
a L{FailureRateLimiter}; a source over its budget is answered C{429} with C{Retry-After}, and
its token is not even looked at.  The source is the TCP peer, or, when the peer is one of the
C{trustedProxies}, the client its C{X-Forwarded-For} names (L{forwardedClient}).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.web.iweb import IRequest

from tm20.api._errors import ApiError
from tm20.clientsource import clientSource
from tm20.interfaces import ITokenStore
from tm20.services.ratelimit import FailureRateLimiter
from tm20.services.tokens import SCOPES, hashToken, newSecret
from tm20.terminal.limits import NetworkList

__all__ = [
    "SCOPES",
    "Authenticator",
    "Principal",
    "hashToken",
    "newSecret",
    "parseStaticTokens",
    "scopeFor",
    "tooManyFailures",
]

#: Every scope a token may have.
_READ_METHODS = frozenset({b"GET", b"HEAD"})


def scopeFor(method: bytes) -> str:
    """The scope a request method needs: C{read} for C{GET}/C{HEAD}, else C{write}."""
    return "read" if method.upper() in _READ_METHODS else "write"


@attrs.frozen
class Principal:
    """
    Who is calling: a token's name (recorded in the audit log) and its scopes.
    """

    name: str
    scopes: frozenset[str]


@attrs.frozen
class _StaticToken:
    name: str
    digest: bytes


def parseStaticTokens(tokens: Iterable[str]) -> list[tuple[str, str]]:
    """
    C{NAME:SECRET} or bare C{SECRET} (named C{static-N}, N counting from 1 in the given order)
    into C{(name, secret)} pairs; empty entries are skipped.
    """
    parsed: list[tuple[str, str]] = []
    for i, token in enumerate(tokens, 1):
        token = token.strip()
        if not token:
            continue
        name, sep, secret = token.partition(":")
        if not sep:
            name, secret = f"static-{i}", token
        if secret:
            parsed.append((name.strip() or f"static-{i}", secret))
    return parsed


class Authenticator:
    """
    Checks bearer tokens against the static ones and the store, and rate-limits failures per
    source.

    @ivar limiter: the L{FailureRateLimiter} counting failed authentications per source.
    @ivar trustedProxies: the peers whose C{X-Forwarded-For} is believed.
    """

    def __init__(
        self,
        store: ITokenStore,
        staticTokens: Sequence[str],
        limiter: FailureRateLimiter,
        trustedProxies: NetworkList | None = None,
    ) -> None:
        """
        @param store: where stored tokens are looked up (by the sha256 of their secret).
        @param staticTokens: the C{--api-token} values (see L{parseStaticTokens}).
        @param limiter: counts failures per source; a source it blocks gets C{429}.
        @param trustedProxies: reverse proxies whose C{X-Forwarded-For} names the source
            (none when C{None}).
        """
        self._store = store
        self._static = [
            _StaticToken(name, hashlib.sha256(secret.encode("utf-8")).digest())
            for name, secret in parseStaticTokens(staticTokens)
        ]
        self.limiter = limiter
        self.trustedProxies = trustedProxies if trustedProxies is not None else NetworkList()
        #: The L{tm20.metrics.Metrics} counting failures (C{None}: not counted).
        self.metrics: Any = None

    def _failed(self, source: str) -> None:
        self.limiter.failed(source)
        if self.metrics is not None:
            self.metrics.authFailures.inc()

    async def authenticate(self, request: IRequest) -> Principal:
        """
        Who is calling.

        @return: the L{Principal} of the request's bearer token.
        @raise ApiError: C{429} (with a C{Retry-After} header) when the request's source has
            failed too often lately, whatever its token; C{401} when the token is missing,
            unknown or revoked (counted as a failure of the source).  The store's errors pass
            through (and count as nothing).
        """
        source = clientSource(request, self.trustedProxies)
        retry = self.limiter.retryAfter(source)
        if retry > 0:
            raise tooManyFailures(retry)
        secret = bearerToken(request)
        if secret is None:
            self._failed(source)
            raise ApiError(
                401,
                "unauthorized",
                f"missing bearer token (Authorization: Bearer TOKEN); {TOKEN_HINT}",
            )
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
        found: Principal | None = None
        for token in self._static:
            if hmac.compare_digest(digest, token.digest) and found is None:
                found = Principal(token.name, frozenset(SCOPES))
        if found is not None:
            return found
        stored: Any = await self._store.findApiToken(digest.hex())
        if stored is None:
            self._failed(source)
            raise ApiError(401, "unauthorized", f"unknown or revoked token; {TOKEN_HINT}")
        return Principal(stored.name, frozenset(stored.scopes))

    @staticmethod
    def authorize(principal: Principal, scope: str) -> None:
        """@raise ApiError: 403 when C{principal} lacks C{scope}."""
        if scope not in principal.scopes:
            raise ApiError(
                403, "forbidden", f"the token {principal.name!r} lacks the {scope!r} scope"
            )


#: How to get a token, in every 401 body.
TOKEN_HINT = (
    "get a token with `tm20-admin token create NAME --database URL` on the server (from a"
    " source checkout: `make token NAME=...`, or `.venv/bin/tm20-admin ...`), or start the"
    " server with --api-token NAME:SECRET"
)


def tooManyFailures(retry: float) -> ApiError:
    """The C{429} for a source blocked for C{retry} more seconds (C{Retry-After} rounded up)."""
    # Rounded to microseconds first: 1.0000000000000002 s of float noise is not 2 s.
    seconds = max(1, math.ceil(round(retry, 6)))
    return ApiError(
        429,
        "too_many_requests",
        f"too many failed authentications from this address; retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


def bearerToken(request: IRequest) -> str | None:
    """The token of an C{Authorization: Bearer} header, or C{None}."""
    raw = request.getHeader(b"authorization")
    if not raw:
        return None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    except UnicodeDecodeError:
        return None
    scheme, _, value = text.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None
