"""
API tokens: how a secret is made and stored (only its sha256), and the rules of a token's name
and scopes, for every door that manages them (C{tm20-admin token}, the console).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

from tm20.model import ApiToken
from tm20.services.errors import ServiceError

__all__ = ["SCOPES", "TokenService", "hashToken", "newSecret"]

#: The scopes a token may have: C{read} (GET, HEAD) and C{write} (every change).
SCOPES = ("read", "write")


def hashToken(secret: str) -> str:
    """The stored form of a token: the hex sha256 of its UTF-8 secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def newSecret() -> str:
    """A new random token secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def checkScopes(scopes: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not chosen or any(s not in SCOPES for s in chosen):
        raise ServiceError(
            400,
            "invalid_scopes",
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}",
            field="scopes",
        )
    return chosen


class TokenService:
    """@param store: an L{tm20.interfaces.IStore}."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def create(self, name: str, scopes: Iterable[str]) -> str:
        """Store a new token; @return: its secret (shown once: only its hash is kept)."""
        name = name.strip()
        if not name or ":" in name or len(name) > 100:
            raise ServiceError(
                400, "invalid_name", "a token name is 1-100 characters, no ':'", field="name"
            )
        chosen = checkScopes(scopes)
        secret = newSecret()
        try:
            await self.store.addApiToken(name, hashToken(secret), chosen)
        except ValueError:
            raise ServiceError(409, "conflict", f"a token named {name!r} exists") from None
        return secret

    async def list(self) -> list[ApiToken]:
        tokens: list[ApiToken] = await self.store.listApiTokens()
        return tokens

    async def revoke(self, name: str) -> None:
        if not await self.store.deleteApiToken(name):
            raise ServiceError(404, "not_found", f"no token named {name!r}")
