"""
The one HTTP port: a request with C{Upgrade: websocket}, on any path, is a terminal; anything
else is the web side (C{/health}, C{/api/...}).
"""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from tm20.interfaces import IStore


def isWebSocketUpgrade(request: Request) -> bool:
    """C{True} when the request asks to become a WebSocket."""
    upgrade = request.getHeader(b"upgrade") or b""
    return b"websocket" in upgrade.lower()


class TM20Root(Resource):
    """Routes upgrades to the terminal endpoint, whatever the path."""

    def __init__(self, terminals: WebSocketResource) -> None:
        super().__init__()
        self._terminals = terminals

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        if isWebSocketUpgrade(request):
            return self._terminals
        return super().getChildWithDefault(path, request)

    def getChild(self, path: bytes, request: Request) -> IResource:
        return NotFound()

    def render_GET(self, request: Request) -> bytes:
        return jsonBody(request, 200, {"service": "tm20", "health": "/health", "api": "/api/"})


class NotFound(Resource):
    """A JSON 404 for any path the web side does not serve."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        return jsonBody(
            request,
            404,
            {"error": "not_found", "detail": "no such resource (terminals: use a WebSocket)"},
        )


class HealthResource(Resource):
    """C{GET /health}: C{{"status": "ok"}}, or 503 when the store does not answer."""

    isLeaf = True
    log = Logger()

    def __init__(self, store: IStore, extra: Any = None) -> None:
        super().__init__()
        self._store = store
        self._extra = extra

    def render_GET(self, request: Request) -> Any:
        d: Deferred[Any] = self._store.ping()

        def ok(_: Any) -> None:
            body: dict[str, Any] = {"status": "ok"}
            if self._extra is not None:
                body.update(self._extra())
            _finish(request, 200, body)

        def bad(f: Any) -> None:
            self.log.warn("health check: store unavailable: {error}", error=f.getErrorMessage())
            _finish(request, 503, {"status": "unavailable", "detail": "database unavailable"})

        d.addCallbacks(ok, bad)
        return NOT_DONE_YET


def jsonBody(request: Request, code: int, body: Any) -> bytes:
    """Set the status and content type, and encode C{body}."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode("utf-8")


def _finish(request: Request, code: int, body: Any) -> None:
    if request.finished or getattr(request, "_disconnected", False):
        return
    request.write(jsonBody(request, code, body))
    request.finish()


class QuietSite(Site):
    """A Site without per-request access logs (terminals and API clients are logged elsewhere)."""

    def log(self, request: Any) -> None:
        pass
