"""
API authentication: C{Authorization: Bearer TOKEN}.

Tokens come from the command line (C{--api-token NAME:SECRET}, or a bare C{SECRET} named
C{static-N}; both scopes) and from the database (created by C{tm20-admin token create}, stored as
the sha256 of the secret, with the scopes they were created with).  Scopes: C{read} for
C{GET}/C{HEAD}, C{write} for everything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.web.iweb import IRequest

from tm20.api._errors import ApiError
from tm20.interfaces import IStore

__all__ = [
    "SCOPES",
    "Authenticator",
    "Principal",
    "hashToken",
    "newSecret",
    "parseStaticTokens",
    "scopeFor",
]

#: Every scope a token may have.
SCOPES = ("read", "write")
_READ_METHODS = frozenset({b"GET", b"HEAD"})


def hashToken(secret: str) -> str:
    """The stored form of a token: the hex sha256 of its UTF-8 secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def newSecret() -> str:
    """A new random token secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


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
    """Checks bearer tokens against the static ones and the store."""

    def __init__(self, store: IStore, staticTokens: Sequence[str]) -> None:
        self._store = store
        self._static = [
            _StaticToken(name, hashlib.sha256(secret.encode("utf-8")).digest())
            for name, secret in parseStaticTokens(staticTokens)
        ]

    def authenticate(self, request: IRequest) -> Deferred[Principal]:
        """
        @return: a L{Deferred} of the L{Principal}; fails with a 401 L{ApiError} when the token
            is missing or unknown (or with the store's error).
        """
        secret = bearerToken(request)
        if secret is None:
            raise ApiError(
                401, "unauthorized", "missing bearer token (Authorization: Bearer TOKEN)"
            )
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
        found: Principal | None = None
        for token in self._static:
            if hmac.compare_digest(digest, token.digest) and found is None:
                found = Principal(token.name, frozenset(SCOPES))
        if found is not None:
            return succeed(found)
        d: Deferred[Any] = self._store.findApiToken(digest.hex())

        def check(token: Any) -> Principal:
            if token is None:
                raise ApiError(401, "unauthorized", "unknown or revoked token")
            return Principal(token.name, frozenset(token.scopes))

        return d.addCallback(check)

    @staticmethod
    def authorize(principal: Principal, scope: str) -> None:
        """@raise ApiError: 403 when C{principal} lacks C{scope}."""
        if scope not in principal.scopes:
            raise ApiError(
                403, "forbidden", f"the token {principal.name!r} lacks the {scope!r} scope"
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
