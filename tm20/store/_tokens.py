"""
L{tm20.interfaces.ITokenStore}, written once for both stores (see L{tm20.store._ops}).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred

from tm20.model import ApiToken
from tm20.store._dialect import Dialect
from tm20.store._ops import BrokenConstraint, Op, OpStore

__all__ = ["TokenStoreMixin", "addApiToken", "deleteApiToken", "findApiToken", "listApiTokens"]


def addApiToken(
    d: Dialect, name: str, tokenHash: str, scopes: Sequence[str], now: Any
) -> Op[ApiToken]:
    try:
        result = yield (
            "INSERT INTO api_tokens (name, token_hash, scopes, created_at)"
            " VALUES (%s, %s, %s, %s) RETURNING *",
            (name, tokenHash, json.dumps(list(scopes)), now),
        )
    except BrokenConstraint as e:
        raise ValueError(f"API token {name!r} already exists (or its hash does)") from e
    return d.read.apiToken(result.rows[0])


def findApiToken(d: Dialect, tokenHash: str) -> Op[ApiToken | None]:
    result = yield ("SELECT * FROM api_tokens WHERE token_hash = %s", (tokenHash,))
    return None if result.first is None else d.read.apiToken(result.first)


def listApiTokens(d: Dialect) -> Op[list[ApiToken]]:
    result = yield ("SELECT * FROM api_tokens ORDER BY name", ())
    return [d.read.apiToken(row) for row in result.rows]


def deleteApiToken(name: str) -> Op[bool]:
    result = yield ("DELETE FROM api_tokens WHERE name = %s", (name,))
    return result.rowcount > 0


class TokenStoreMixin(OpStore):
    """L{tm20.interfaces.ITokenStore} for a store providing L{OpStore}."""

    def addApiToken(self, name: str, tokenHash: str, scopes: Sequence[str]) -> Deferred[ApiToken]:
        """See L{tm20.interfaces.ITokenStore.addApiToken}; a taken name (or hash): C{ValueError}."""
        return self._runOp(True, addApiToken(self.dialect, name, tokenHash, scopes, self._now()))

    def findApiToken(self, tokenHash: str) -> Deferred[ApiToken | None]:
        """See L{tm20.interfaces.ITokenStore.findApiToken}."""
        return self._runOp(False, findApiToken(self.dialect, tokenHash))

    def listApiTokens(self) -> Deferred[list[ApiToken]]:
        """See L{tm20.interfaces.ITokenStore.listApiTokens}; sorted by name."""
        return self._runOp(False, listApiTokens(self.dialect))

    def deleteApiToken(self, name: str) -> Deferred[bool]:
        """See L{tm20.interfaces.ITokenStore.deleteApiToken}."""
        return self._runOp(True, deleteApiToken(name))
