"""
The console door over real HTTP without a browser (an in-process server on loopback): its
headers, cookie, refusals, error pages when the database is out of reach, the event stream
behind the session, the static files.  The browser tests (test_console_browser.py) cover what
a person does with it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from tests.serverfixture import connectRaw
from tests.test_api_endpoints import BreakableStore
from tests.test_api_support import ApiTestCase, Response
from tm20.console._security import CSP, sameOrigin, setCookie
from tm20.errors import StoreUnavailable
from tm20.services.accounts import AccountService
from tm20.services.ratelimit import FailureRateLimiter
from tm20.simulator.device import SimulatedTerminal

PASSWORD = "http test password"


class _ConsoleHTTPCase(ApiTestCase):
    """A running server with console accounts, and plain HTTP helpers."""

    @inlineCallbacks
    def start(self, **config: Any) -> Any:
        running = yield super().start(**config)
        accounts = AccountService(running.context.store, running.context.clock)
        yield accounts.create("olga", "operator", PASSWORD)
        yield accounts.create("vic", "viewer", PASSWORD)
        yield accounts.create("ada", "admin", PASSWORD)
        return running

    @property
    def origin(self) -> str:
        return self.url("").rstrip("/")

    def form(
        self,
        path: str,
        fields: dict[str, str],
        cookie: str | None = None,
        origin: str | None = "self",
    ) -> Any:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if origin is not None:
            headers["Origin"] = self.origin if origin == "self" else origin
        if cookie is not None:
            headers["Cookie"] = f"tm20_console={cookie}"
        return self.request("POST", path, headers, urlencode(fields).encode())

    def page(self, path: str, cookie: str | None = None) -> Any:
        headers = {} if cookie is None else {"Cookie": f"tm20_console={cookie}"}
        return self.request("GET", path, headers)

    @inlineCallbacks
    def request(
        self, method: str, path: str, headers: dict[str, str], data: bytes | None = None
    ) -> Any:
        """One request, redirects not followed, no cookie jar (the cookie is sent by hand)."""
        response = yield treq.request(
            method,
            self.url(path),
            headers={k: [v] for k, v in headers.items()},
            data=data,
            allow_redirects=False,
            persistent=False,
        )
        content = yield treq.content(response)
        found = {
            k.decode("latin-1").lower(): v[-1].decode("latin-1")
            for k, v in response.headers.getAllRawHeaders()
        }
        return Response(response.code, found, content)

    @inlineCallbacks
    def login(self, name: str = "olga") -> Any:
        r: Response = yield self.form("/admin/login", {"username": name, "password": PASSWORD})
        self.assertEqual(r.status, 303, r.text)
        match = re.match(r"tm20_console=([^;]+);", r.headers["set-cookie"])
        assert match is not None
        return match.group(1)

    @staticmethod
    def csrf(r: Response) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', r.text)
        assert match is not None, "no CSRF token on the page"
        return match.group(1)


class ConsoleHTTPTests(_ConsoleHTTPCase):
    @inlineCallbacks
    def test_headersAndCookie(self) -> Any:
        yield self.start()
        r = yield self.page("/admin/login")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-security-policy"], CSP)
        self.assertIn("script-src 'self'", CSP)
        self.assertNotIn("unsafe-inline", CSP)
        self.assertEqual(r.headers["x-frame-options"], "DENY")
        self.assertEqual(r.headers["x-content-type-options"], "nosniff")
        self.assertIn('name="username"', r.text)
        self.assertIn('name="password"', r.text)
        self.assertNotIn("<script>", r.text)  # no inline script anywhere
        r = yield self.form("/admin/login", {"username": "olga", "password": PASSWORD})
        cookie = r.headers["set-cookie"]
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=lax", cookie)
        self.assertIn("Path=/admin/", cookie)
        self.assertNotIn("Secure", cookie)  # plain HTTP here (tests/test_tls.py style for TLS)
        self.assertEqual(r.headers["location"], "/admin/")
        # an unauthenticated page sends to the login, keeping where it was going
        r = yield self.page("/admin/logs?sn=A")
        self.assertEqual(r.status, 303)
        self.assertEqual(r.headers["location"], "/admin/login?next=%2Fadmin%2Flogs%3Fsn%3DA")
        r = yield self.page("/admin/logs?sn=%ff")
        self.assertEqual(r.status, 303)
        # and the login never sends anywhere else
        r = yield self.form(
            "/admin/login",
            {"username": "olga", "password": PASSWORD, "next": "//evil.example/"},
        )
        self.assertEqual(r.headers["location"], "/admin/")

    @inlineCallbacks
    def test_staticFiles(self) -> Any:
        yield self.start()
        r = yield self.page("/admin/static/console.css")
        self.assertEqual((r.status, r.headers["content-type"]), (200, "text/css; charset=utf-8"))
        r = yield self.page("/admin/static/board.js")
        self.assertEqual(r.headers["content-type"], "text/javascript; charset=utf-8")
        self.assertIn("textContent", r.text)
        for missing in ("nothing.js", "..%2F_app.py", "%2e%2e"):
            r = yield self.page(f"/admin/static/{missing}")
            self.assertEqual(r.status, 404, missing)
        r = yield self.page("/admin/no/such/page")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.headers["content-security-policy"], CSP)
        self.assertIn("No such page", r.text)
        r = yield self.request("DELETE", "/admin/", {})
        self.assertEqual(r.status, 405)

    @inlineCallbacks
    def test_badInputIsAClearError(self) -> Any:
        yield self.start()
        cookie = yield self.login()
        r = yield self.page("/admin/logs?enrollid=abc", cookie)
        self.assertEqual(r.status, 400)
        self.assertIn("must be a number", r.text)
        r = yield self.page("/admin/logs?inout=out", cookie)
        self.assertEqual(r.status, 400)
        self.assertIn("must be a number", r.text)
        r = yield self.page("/admin/logs?since=31/12/2026", cookie)
        self.assertEqual(r.status, 400)
        self.assertIn("YYYY-MM-DD", r.text)
        r = yield self.page("/admin/terminals/NOPE/", cookie)
        self.assertEqual(r.status, 404)
        self.assertIn("no terminal", r.text)
        yield self.call("POST", "/api/terminals/", {"sn": "ONE1"})
        board = yield self.page("/admin/terminals/ONE1/", cookie)
        token = self.csrf(board)
        # a door outside 1-4 is refused by the console's form, not sent
        r = yield self.form(
            "/admin/terminals/ONE1/command",
            {"command": "opendoor", "doornum": "9", "csrf": token},
            cookie,
        )
        self.assertEqual(r.status, 400)
        self.assertIn("choose a door", r.text)
        # an unknown time zone: the service's rule, the terminal page says it
        r = yield self.form(
            "/admin/terminals/ONE1/update", {"timezone": "Mars/Olympus", "csrf": token}, cookie
        )
        self.assertEqual(r.status, 400)
        self.assertIn("unknown time zone", r.text)
        # an offline terminal cannot be pulled: 409, said plainly
        r = yield self.form("/admin/terminals/ONE1/pull-users", {"csrf": token}, cookie)
        self.assertEqual(r.status, 409)
        self.assertIn("not connected", r.text)
        # a command for an offline terminal is queued (the queue's rule, as for the API)
        r = yield self.form(
            "/admin/terminals/ONE1/command", {"command": "settime", "csrf": token}, cookie
        )
        self.assertEqual(r.status, 303)
        self.assertRegex(r.headers["location"], r"^/admin/terminals/ONE1/\?command=\d+$")

    @inlineCallbacks
    def test_logSearchAndCSV(self) -> Any:
        yield self.start()
        connection = yield self.connect(SimulatedTerminal("LOGS1", seed=3))
        for enrollid, inout in ((5, 0), (5, 1), (6, 1)):
            connection.punch(enrollid, inout=inout, mode=1)
        yield connection.whenAllLogsAcknowledged()
        cookie = yield self.login("vic")
        r = yield self.page("/admin/logs?sn=LOGS1&inout=1", cookie)
        self.assertEqual(r.status, 200)
        rows = re.findall(r"<tr><td>[^<]+</td><td>LOGS1</td><td>(\d+)</td>", r.text)
        self.assertEqual(sorted(rows), ["5", "6"])
        self.assertIn('href="/admin/logs.csv?sn=LOGS1&amp;inout=1"', r.text)
        r = yield self.page("/admin/logs.csv?sn=LOGS1&inout=1&enrollid=5", cookie)
        self.assertEqual(r.status, 200)
        self.assertIn("text/csv", r.headers["content-type"])
        lines = r.text.strip().splitlines()
        self.assertEqual(len(lines), 2, r.text)  # the header and one row
        self.assertTrue(lines[0].startswith("id,sn,enrollid,time,mode,inout"))
        self.assertIn(",LOGS1,5,", lines[1])

    @inlineCallbacks
    def test_databaseOutOfReach(self) -> Any:
        wrapped: list[BreakableStore] = []
        original = self.makeStore

        def makeStore() -> Any:
            store = BreakableStore(original())
            wrapped.append(store)
            return store

        self.makeStore = makeStore  # type: ignore[method-assign]
        yield self.start()
        cookie = yield self.login()
        wrapped[0].error = StoreUnavailable("down")
        for path in ("/admin/", "/admin/logs", "/admin/terminals.json"):
            r = yield self.page(path, cookie)
            self.assertEqual(r.status, 503, path)
            self.assertIn("database is unavailable", r.text)
        r = yield self.form("/admin/login", {"username": "olga", "password": PASSWORD})
        self.assertEqual(r.status, 503)
        self.assertIn("database is unavailable", r.text)
        wrapped[0].error = RuntimeError("internals /etc/passwd")
        r = yield self.page("/admin/", cookie)
        self.assertEqual(r.status, 500)
        self.assertNotIn("passwd", r.text)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        wrapped[0].error = None
        r = yield self.page("/admin/", cookie)
        self.assertEqual(r.status, 200)

    @inlineCallbacks
    def test_eventStreamNeedsASession(self) -> Any:
        yield self.start()
        r = yield self.page("/admin/events/stream")
        self.assertEqual(r.status, 401)
        r = yield self.page("/admin/terminals.json")
        self.assertEqual(r.status, 401)

    @inlineCallbacks
    def test_actionsAuditedWithTheAccountName(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": "PEND1", "approved": False})
        cookie = yield self.login()
        page = yield self.page("/admin/terminals/PEND1/", cookie)
        r = yield self.form(
            "/admin/terminals/PEND1/reject",
            {"reason": "unknown device", "csrf": self.csrf(page)},
            cookie,
        )
        self.assertEqual(r.status, 303)
        r = yield self.call("GET", "/api/audit/?limit=3")
        latest = r.json["items"][0]
        self.assertEqual(
            (latest["actor"], latest["action"], latest["target"], latest["detail"]),
            (
                "console:olga",
                "terminal.update",
                "PEND1",
                {"approved": False, "reason": "unknown device"},
            ),
        )
        self.assertEqual(r.json["items"][1]["action"], "console.login")
        # the viewer's logout is a POST with its token too
        viewer = yield self.login("vic")
        board = yield self.page("/admin/", viewer)
        r = yield self.form("/admin/logout", {}, viewer)
        self.assertEqual(r.status, 403)
        r = yield self.form("/admin/logout", {"csrf": self.csrf(board)}, viewer)
        self.assertEqual((r.status, r.headers["location"]), (303, "/admin/login"))
        r = yield self.page("/admin/", viewer)
        self.assertEqual(r.status, 303)


class ConsoleLoginLimitTests(_ConsoleHTTPCase):
    @inlineCallbacks
    def test_behindATrustedProxyEachClientHasItsBudget(self) -> Any:
        yield self.start(trustedProxies=("127.0.0.1/32",))
        # a budget on a clock of the test's own: none earned back while hashing is slow
        self.running.context.console.limiter = FailureRateLimiter(Clock())

        def attempt(client: str, password: str = "wrong password") -> Any:
            return self.request(
                "POST",
                "/admin/login",
                {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Origin": self.origin,
                    "X-Forwarded-For": client,
                },
                urlencode({"username": "olga", "password": password}).encode(),
            )

        statuses = []
        for _ in range(11):
            r = yield attempt("192.0.2.10")
            statuses.append(r.status)
        self.assertEqual(statuses, [401] * 10 + [429])
        self.assertIn("retry-after", (yield attempt("192.0.2.10", PASSWORD)).headers)
        # another client behind the same proxy is not blocked
        r = yield attempt("192.0.2.11", PASSWORD)
        self.assertEqual(r.status, 303)


class ConsoleAccountPageTests(_ConsoleHTTPCase):
    @inlineCallbacks
    def test_adminManagesAccounts(self) -> Any:
        yield self.start()
        olga = yield self.login("olga")
        ada = yield self.login("ada")
        page = yield self.page("/admin/accounts", ada)
        token = self.csrf(page)
        # an operator is refused the page and its actions
        r = yield self.page("/admin/accounts", olga)
        self.assertEqual(r.status, 403)
        olgaPage = yield self.page("/admin/", olga)
        r = yield self.form(
            "/admin/accounts",
            {"action": "role", "name": "olga", "role": "admin", "csrf": self.csrf(olgaPage)},
            olga,
        )
        self.assertEqual(r.status, 403)
        # the admin's rules come from the account service
        r = yield self.form(
            "/admin/accounts",
            {"action": "create", "name": "x", "role": "viewer", "password": "short", "csrf": token},
            ada,
        )
        self.assertEqual(r.status, 400)
        self.assertIn("at least 10 characters", r.text)
        r = yield self.form(
            "/admin/accounts", {"action": "disable", "name": "ada", "csrf": token}, ada
        )
        self.assertEqual(r.status, 400)
        self.assertIn("cannot disable yourself", r.text)
        # disabling olga ends her session at once
        r = yield self.form(
            "/admin/accounts", {"action": "disable", "name": "olga", "csrf": token}, ada
        )
        self.assertEqual(r.status, 303)
        r = yield self.page("/admin/", olga)
        self.assertEqual(r.status, 303)
        r = yield self.form("/admin/login", {"username": "olga", "password": PASSWORD})
        self.assertEqual(r.status, 401)
        # a role change too
        vic = yield self.login("vic")
        r = yield self.form(
            "/admin/accounts",
            {"action": "role", "name": "vic", "role": "operator", "csrf": token},
            ada,
        )
        self.assertEqual(r.status, 303)
        r = yield self.page("/admin/", vic)
        self.assertEqual(r.status, 303)
        vic = yield self.login("vic")
        r = yield self.page("/admin/", vic)
        self.assertIn("vic (operator)", r.text)
        r = yield self.call("GET", "/api/audit/?limit=10")
        self.assertEqual(
            [(e["action"], e["target"]) for e in r.json["items"] if e["actor"] == "console:ada"],
            [("account.role", "vic"), ("account.disable", "olga"), ("console.login", None)],
        )


class CookieFlagTests(SynchronousTestCase):
    """The session cookie is C{Secure} exactly when the request came over TLS."""

    def cookieOf(self, secure: bool) -> bytes:
        channel = DummyChannel()
        if secure:
            channel.transport = DummyChannel.SSL()
        request = Request(channel)
        setCookie(request, "token")
        cookies: list[bytes] = request.cookies
        return cookies[0]

    def test_secureOverTLSOnly(self) -> None:
        self.assertIn(b"Secure", self.cookieOf(True))
        self.assertNotIn(b"Secure", self.cookieOf(False))
        for cookie in (self.cookieOf(True), self.cookieOf(False)):
            self.assertIn(b"HttpOnly", cookie)
            self.assertIn(b"SameSite=lax", cookie)


class OriginTests(SynchronousTestCase):
    """L{sameOrigin}: the Origin (else Referer) must name the request's own host."""

    def request(self, **headers: str) -> Request:
        request = Request(DummyChannel())
        for name, value in headers.items():
            request.requestHeaders.setRawHeaders(name.replace("_", "-"), [value])
        return request

    def test_cases(self) -> None:
        host = "tm20.site:7788"
        self.assertTrue(sameOrigin(self.request(host=host, origin=f"http://{host}")))
        self.assertTrue(sameOrigin(self.request(host=host, origin=f"https://{host}")))
        self.assertTrue(sameOrigin(self.request(host=host, referer=f"http://{host}/admin/x")))
        self.assertFalse(sameOrigin(self.request(host=host, origin="http://evil.example")))
        self.assertFalse(sameOrigin(self.request(host=host, origin=f"http://{host}.evil")))
        self.assertFalse(sameOrigin(self.request(host=host, origin="null")))
        self.assertFalse(sameOrigin(self.request(host=host)))
        self.assertFalse(sameOrigin(self.request(host=host, referer="javascript:alert(1)")))
        self.assertFalse(sameOrigin(self.request(origin=f"http://{host}")))


class ConsoleIdentityTests(_ConsoleHTTPCase):
    """A flagged terminal shown on its page and reset from the console."""

    @inlineCallbacks
    def test_flaggedThenReset(self) -> Any:
        yield self.start()
        first = yield connectRaw(self, self.running, "/pub/chat")
        reply = yield first.request(_reg("111111111"))
        self.assertIs(reply["result"], True)
        first.transport.loseConnection()
        yield first.closed
        impostor = yield connectRaw(self, self.running, "/pub/chat")
        reply = yield impostor.request(_reg("999999999"))
        self.assertIs(reply["result"], False)
        cookie = yield self.login()
        page = yield self.page("/admin/terminals/FLAG1/", cookie)
        self.assertIn("flagged", page.text)
        self.assertIn("Reset identity", page.text)
        board = yield self.page("/admin/terminals.json", cookie)
        self.assertEqual(json.loads(board.text)["counts"]["flagged"], 1)
        r = yield self.form(
            "/admin/terminals/FLAG1/reset-identity", {"csrf": self.csrf(page)}, cookie
        )
        self.assertEqual(r.status, 303)
        page = yield self.page("/admin/terminals/FLAG1/?note=identity-reset", cookie)
        self.assertNotIn("Reset identity", page.text)
        self.assertIn("Identity reset", page.text)
        # the new hardware may register now
        again = yield connectRaw(self, self.running, "/pub/chat")
        reply = yield again.request(_reg("999999999"))
        self.assertIs(reply["result"], True)
        again.transport.loseConnection()
        yield again.closed
        r = yield self.call("GET", "/api/audit/?limit=2")
        self.assertEqual(
            (r.json["items"][0]["actor"], r.json["items"][0]["action"]),
            ("console:olga", "terminal.identity.reset"),
        )


def _reg(cpusn: str) -> dict[str, Any]:
    return {"cmd": "reg", "sn": "FLAG1", "cpusn": cpusn, "devinfo": {"modelname": "tfs30"}}
