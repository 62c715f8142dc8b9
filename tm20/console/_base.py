"""
The console's plumbing shared by its pages: rendering a template with the security headers,
redirects, and L{ConsoleBase._guard}, which every route goes through (session, role, same
origin and CSRF token on a POST, errors as pages).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from tm20.clientsource import clientSource
from tm20.console._security import csrfValid, sameOrigin, securityHeaders, sessionToken
from tm20.services.accounts import AccountService, LoggedIn, roleAllows
from tm20.services.errors import ServiceError, serviceErrorFrom
from tm20.services.ratelimit import FailureRateLimiter
from tm20.services.terminals import TerminalService
from tm20.terminal.limits import NetworkList

__all__ = ["ConsoleBase", "Page"]

#: A page: C{(request, who, **route arguments)} to the body.
Page = Callable[..., Awaitable[Any]]


class ConsoleBase:
    """What every part of the console has (set by L{tm20.console._app.Console})."""

    log = Logger()
    context: Any
    store: Any
    clock: Any
    terminals: TerminalService
    accounts: AccountService
    limiter: FailureRateLimiter
    templates: Environment
    trusted: NetworkList

    async def accessOfTerminal(self, sn: str) -> dict[str, Any] | None:
        """What a terminal's page shows of access control (L{tm20.console._accesspages})."""
        return None

    def render(
        self,
        request: IRequest,
        template: str,
        status: int = 200,
        who: LoggedIn | None = None,
        **values: Any,
    ) -> bytes:
        securityHeaders(request)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        page = self.templates.get_template(template).render(
            who=who,
            role=who.account.role if who is not None else None,
            can=(lambda needed: who is not None and roleAllows(who.account.role, needed)),
            csrf=who.session.csrf if who is not None else "",
            **values,
        )
        return page.encode("utf-8")

    def _json(self, request: IRequest, body: Any, status: int = 200) -> bytes:
        securityHeaders(request)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _redirect(self, request: IRequest, to: str) -> bytes:
        securityHeaders(request)
        request.setResponseCode(303)
        request.setHeader(b"location", to.encode("utf-8"))
        return b""

    def _forbidden(self, request: IRequest, who: LoggedIn | None, why: str) -> bytes:
        return self.render(request, "error.html", 403, who, title="Forbidden", message=why)

    def _source(self, request: IRequest) -> str:
        """Who a failed login is counted against: the peer, or the client a trusted proxy names."""
        return clientSource(request, self.trusted)

    def _guard(self, needed: str, page: Page, post: bool = False) -> Callable[..., Any]:
        """
        A route that needs a live session of at least role C{needed}; a POST also needs the
        same origin and the session's CSRF token (403 otherwise).
        """

        async def guarded(request: IRequest, **kwargs: Any) -> Any:
            try:
                if post and not sameOrigin(request):
                    self.log.info("console: refused a cross-origin POST")
                    return self._forbidden(request, None, "This request came from another site.")
                who = await self.accounts.session(sessionToken(request))
                if who is None:
                    if post or request.path.endswith((b".json", b"/stream")):
                        return self.render(
                            request,
                            "error.html",
                            401,
                            None,
                            title="Logged out",
                            message="Your session ended: log in again.",
                        )
                    return self._redirect(
                        request,
                        "/admin/login?"
                        + urlencode({"next": request.uri.decode("utf-8", "replace")}),
                    )
                if post and not csrfValid(request, who.session.csrf):
                    self.log.info(
                        "console: refused a POST without its CSRF token from {actor}",
                        actor=who.actor,
                    )
                    return self._forbidden(request, who, "The form's security token is missing.")
                if not roleAllows(who.account.role, needed):
                    return self._forbidden(
                        request, who, f"This needs the {needed} role; you are {who.account.role}."
                    )
                return await page(request, who, **kwargs)
            except CancelledError:
                raise
            except ServiceError as e:
                return self.render(
                    request, "error.html", e.status, None, title="Refused", message=e.detail
                )
            except Exception:
                # the API's mapping: a database out of reach is a 503 (logged once, no
                # traceback), anything else a 500 logged with its traceback, no detail shown
                error = serviceErrorFrom(Failure(), request)
                message = {
                    503: "The database is unavailable; try again in a moment.",
                }.get(error.status, "Something went wrong; the server log says what.")
                return self.render(
                    request, "error.html", error.status, None, title="Error", message=message
                )

        guarded.__name__ = page.__name__
        return guarded
