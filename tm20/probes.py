"""
C{/ready} and C{/metrics} on the web root (C{/health}, the liveness probe, is in L{tm20.web}).

  - C{GET /ready}: C{200} when the server is listening, its store is reachable and writable
    (the store's known health, from its write probe) and every migration shipped with this
    release is applied; else C{503}, with each check in the body.  For load balancers and
    orchestrators: a process that is alive (C{/health}) may still not be ready.  No token.
  - C{GET /metrics}: the Prometheus text format, from L{tm20.metrics.Metrics}.  It needs an
    API token with the C{read} scope (C{Authorization: Bearer TOKEN}), like the REST API, on the
    same port: terminal counts and rates are operational data, and a second port would be one
    more thing to open and firewall.  Failed attempts count in the API's per-source limiter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET, Request

from tm20.metrics import CONTENT_TYPE_LATEST, Metrics
from tm20.web import JSONMethods, jsonBody

__all__ = ["MetricsResource", "ReadyResource"]


class ReadyResource(JSONMethods):
    """
    C{GET /ready}: C{{"ready": bool, "checks": {"listening", "store", "migrations"}}}.

    @ivar listening: returns whether every configured port is listening (set by the service).
    """

    isLeaf = True

    def __init__(self, store: Any, listening: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self._store = store
        self.listening: Callable[[], bool] = listening or (lambda: False)

    def render_GET(self, request: Request) -> bytes:
        health = self._store.health()
        checks = {
            "listening": bool(self.listening()),
            "store": health.ok,
            "migrations": bool(getattr(self._store, "migrationsApplied", False)),
        }
        ready = all(checks.values())
        body: dict[str, Any] = {"ready": ready, "checks": checks, "store": health.asJSON()}
        return jsonBody(request, 200 if ready else 503, body)


class MetricsResource(JSONMethods):
    """C{GET /metrics} for a token with the C{read} scope (see the module docstring)."""

    isLeaf = True
    log = Logger()

    def __init__(self, metrics: Metrics, auth: Any) -> None:
        """
        @param auth: the API's L{tm20.api._auth.Authenticator}.
        """
        super().__init__()
        self._metrics = metrics
        self._auth = auth

    def render_GET(self, request: Request) -> Any:
        d = ensureDeferred(self._render(request))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    async def _render(self, request: Request) -> None:
        from tm20.api._errors import ApiError

        try:
            principal = await self._auth.authenticate(request)
            self._auth.authorize(principal, "read")
        except ApiError as e:
            for name, value in getattr(e, "headers", {}).items():
                request.setHeader(name.encode("ascii"), str(value).encode("ascii"))
            body = {"error": e.code, "detail": e.detail}
            self._finish(request, jsonBody(request, e.status, body))
            return
        text = await self._metrics.scrape()
        request.setResponseCode(200)
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        self._finish(request, text)

    def _failed(self, failure: Any, request: Request) -> None:
        self.log.failure("/metrics failed", failure)
        self._finish(
            request,
            jsonBody(request, 503, {"error": "unavailable", "detail": failure.getErrorMessage()}),
        )

    @staticmethod
    def _finish(request: Request, body: bytes) -> None:
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.write(body)
        request.finish()
