"""
Failed authentications are rate-limited per source address, over real HTTP.

The limiter counts on a L{Clock} the test advances (L{ApiTestCase.limitFailures}); one test
keeps the limiter the API made, on the server's clock, to show that it is wired in.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from tests.test_api_support import ADMIN, READER, ApiTestCase, Response
from tm20.api._auth import tooManyFailures
from tm20.clientsource import clientSource
from tm20.interfaces import IStore
from tm20.services.ratelimit import FailureRateLimiter
from tm20.terminal.limits import NetworkList

#: Failures a source may make before it is blocked (the limiter's default burst).
BURST = 10
#: Seconds to earn one attempt back (the limiter's default rate, 1/6 per second).
REFILL = 6


class RateLimitTests(ApiTestCase):
    clock: Clock

    @inlineCallbacks
    def startLimited(self, **config: Any) -> Any:
        """Start the server; failures are counted on C{self.clock} with the default budget."""
        yield self.start(**config)
        self.clock = Clock()
        self.limitFailures(FailureRateLimiter(self.clock))

    @inlineCallbacks
    def failAuth(
        self, times: int, forwardedFor: str | None = None, token: str | None = "wrong"
    ) -> Any:
        """C{times} requests with a bad token, each answered 401."""
        headers = {} if forwardedFor is None else {"X-Forwarded-For": forwardedFor}
        for i in range(times):
            r = yield self.call("GET", "/api/terminals/", token=token, headers=headers)
            self.assertEqual(r.status, 401, f"attempt {i + 1}: {r.text}")
            self.assertEqual(r.json["error"], "unauthorized")

    def assertBlocked(self, r: Response, retryAfter: int) -> None:
        self.assertEqual(r.status, 429, r.text)
        self.assertEqual(r.json["error"], "too_many_requests")
        self.assertIn("detail", r.json)
        self.assertEqual(r.headers["retry-after"], str(retryAfter))
        self.assertEqual(r.headers["content-type"], "application/json")

    @inlineCallbacks
    def test_blockedAfterTenFailuresEvenWithAValidToken(self) -> Any:
        yield self.startLimited()
        yield self.failAuth(BURST - 1, token=None)  # a missing token counts as well
        yield self.failAuth(1)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertBlocked(r, REFILL)
        # not even a write goes through, and nothing is written
        r = yield self.call("POST", "/api/terminals/", {"sn": "NEW"}, token=ADMIN)
        self.assertBlocked(r, REFILL)
        self.assertIsNone((yield self.running.context.store.getTerminal("NEW")))
        # an unknown route would tell a valid token from a bad one (404 or 401): blocked too
        r = yield self.call("GET", "/api/nothing/", token=ADMIN)
        self.assertBlocked(r, REFILL)
        r = yield self.call("GET", "/api/nothing/", token="wrong")
        self.assertBlocked(r, REFILL)
        # a blocked attempt does not count: Retry-After counts down with the clock only
        self.clock.advance(REFILL - 0.5)
        r = yield self.call("GET", "/api/terminals/", token="wrong")
        self.assertBlocked(r, 1)

    @inlineCallbacks
    def test_recoversAsTheClockAdvances(self) -> Any:
        yield self.startLimited()
        yield self.failAuth(BURST)
        self.clock.advance(REFILL - 1)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertBlocked(r, 1)
        self.clock.advance(1)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertEqual(r.status, 200, r.text)
        # one attempt earned back: one more failure, then blocked again
        yield self.failAuth(1)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertBlocked(r, REFILL)
        # a full bucket after BURST * REFILL seconds
        self.clock.advance(BURST * REFILL)
        yield self.failAuth(BURST)
        r = yield self.call("GET", "/api/terminals/", token=READER)
        self.assertBlocked(r, REFILL)

    @inlineCallbacks
    def test_successDoesNotReset(self) -> Any:
        yield self.startLimited()
        yield self.failAuth(BURST - 1)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertEqual(r.status, 200)
        yield self.failAuth(1)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertBlocked(r, REFILL)

    @inlineCallbacks
    def test_missingScopeIsNoAuthenticationFailure(self) -> Any:
        yield self.startLimited()
        for _ in range(BURST * 2):
            r = yield self.call("POST", "/api/terminals/", {"sn": "X"}, token=READER)
            self.assertEqual(r.status, 403)
        r = yield self.call("GET", "/api/terminals/", token=READER)
        self.assertEqual(r.status, 200)

    @inlineCallbacks
    def test_sourcesBehindATrustedProxyAreCountedApart(self) -> Any:
        yield self.startLimited(trustedProxies=("127.0.0.1",))
        yield self.failAuth(BURST, forwardedFor="10.0.0.1")
        r = yield self.call(
            "GET", "/api/terminals/", token=ADMIN, headers={"X-Forwarded-For": "10.0.0.1"}
        )
        self.assertBlocked(r, REFILL)
        # prepending an address does not help: the rightmost untrusted hop is the source
        r = yield self.call(
            "GET",
            "/api/terminals/",
            token=ADMIN,
            headers={"X-Forwarded-For": "192.0.2.7, 10.0.0.1"},
        )
        self.assertBlocked(r, REFILL)
        # neither does a chain through trusted proxies
        r = yield self.call(
            "GET",
            "/api/terminals/",
            token=ADMIN,
            headers={"X-Forwarded-For": "10.0.0.1, 127.0.0.1"},
        )
        self.assertBlocked(r, REFILL)
        # another client behind the proxy, and the proxy itself, are not affected
        r = yield self.call(
            "GET", "/api/terminals/", token=ADMIN, headers={"X-Forwarded-For": "10.0.0.2"}
        )
        self.assertEqual(r.status, 200, r.text)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertEqual(r.status, 200, r.text)

    @inlineCallbacks
    def test_forwardedForFromAnUntrustedPeerIsIgnored(self) -> Any:
        yield self.startLimited(trustedProxies=("10.99.0.0/16",))
        for i in range(BURST):
            yield self.failAuth(1, forwardedFor=f"10.0.0.{i + 1}")
        # every failure was counted against the peer, 127.0.0.1, whatever the header said
        r = yield self.call(
            "GET", "/api/terminals/", token=ADMIN, headers={"X-Forwarded-For": "10.0.0.200"}
        )
        self.assertBlocked(r, REFILL)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertBlocked(r, REFILL)

    @inlineCallbacks
    def test_theDefaultLimiterIsWiredIn(self) -> Any:
        """The limiter the API makes (on the server's clock) blocks after 10 failures."""
        yield self.start()
        self.assertIs(self.api.auth.limiter._clock, self.running.context.clock)
        yield self.failAuth(BURST)
        r = yield self.call("GET", "/api/terminals/", token=ADMIN)
        self.assertEqual(r.status, 429, r.text)
        self.assertEqual(r.json["error"], "too_many_requests")
        self.assertIn(int(r.headers["retry-after"]), range(1, REFILL + 1))


class RateLimitPostgresTests(RateLimitTests):
    """The same tests on PostgreSQL (stored tokens are looked up there)."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_api_ratelimit")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store


class RateLimitUnitTests(SynchronousTestCase):
    def request(self, peer: str, *forwardedFor: bytes) -> IRequest:
        from twisted.internet.address import IPv4Address

        request = DummyRequest([b""])
        request.client = IPv4Address("TCP", peer, 12345)
        if forwardedFor:
            request.requestHeaders.setRawHeaders(b"x-forwarded-for", list(forwardedFor))
        return cast(IRequest, request)

    def test_clientSource(self) -> None:
        trusted = NetworkList(["127.0.0.1", "10.99.0.0/16"])
        for peer, headers, expected in (
            ("127.0.0.1", (), "127.0.0.1"),
            ("127.0.0.1", (b"10.0.0.1",), "10.0.0.1"),
            ("127.0.0.1", (b"10.0.0.1, 10.99.0.5",), "10.0.0.1"),
            ("127.0.0.1", (b"192.0.2.1, 10.0.0.1",), "10.0.0.1"),
            # several header lines are one list
            ("127.0.0.1", (b"10.0.0.1", b"10.99.0.5"), "10.0.0.1"),
            ("127.0.0.1", (b"not an address",), "127.0.0.1"),
            ("192.0.2.9", (b"10.0.0.1",), "192.0.2.9"),
        ):
            self.assertEqual(
                clientSource(self.request(peer, *headers), trusted), expected, (peer, headers)
            )
        self.assertEqual(
            clientSource(self.request("127.0.0.1", b"10.0.0.1"), NetworkList()), "127.0.0.1"
        )

    def test_retryAfterIsRoundedUp(self) -> None:
        for retry, header in (
            (0.01, "1"),
            (1.0, "1"),
            (1.0000000000000002, "1"),
            (1.2, "2"),
            (5.999, "6"),
        ):
            error = tooManyFailures(retry)
            self.assertEqual((error.status, error.code), (429, "too_many_requests"))
            self.assertEqual(error.headers, {"Retry-After": header})
