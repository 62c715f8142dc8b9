"""
The one HTTP port: a request with C{Upgrade: websocket}, on any path, is a terminal; anything
else is the web side (C{/health}, C{/api/...}).

Before a connection is a WebSocket it is an HTTP connection, so the guards against hostile
clients start here (L{QuietSite}): connection caps (global and per source address, C{503} when
full), a deadline for the request head (slowloris) and one for the body, a cap on the head's size
(a JSON C{400}), no body on an upgrade.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from zope.interface import providedBy
from zope.interface.declarations import Provides

from tm20.config import ServerConfig
from tm20.interfaces import IStoreLifecycle
from tm20.terminal.limits import ConnectionLimiter, NetworkList, hostOf

if TYPE_CHECKING:
    pass


def isWebSocketUpgrade(request: Request) -> bool:
    """C{True} when the request asks to become a WebSocket."""
    upgrade = request.getHeader(b"upgrade") or b""
    return b"websocket" in upgrade.lower()


class JSONMethods(Resource):
    """
    A resource whose unsupported methods get a JSON C{405} with an C{Allow} header (Twisted's
    own is an HTML page).  C{HEAD} is allowed wherever C{GET} is.
    """

    def render(self, request: Request) -> Any:
        method = request.method.decode("latin-1") if request.method else ""
        allowed = self.methodsAllowed()
        if method not in allowed:
            request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
            return jsonBody(
                request,
                405,
                {
                    "error": "method_not_allowed",
                    "detail": f"{method or '?'} is not allowed here; allowed: "
                    + ", ".join(allowed),
                },
            )
        return super().render(request)

    def methodsAllowed(self) -> list[str]:
        """The methods this resource renders (C{render_X} methods, and C{HEAD} with C{GET})."""
        methods = {name[len("render_") :] for name in dir(self) if name.startswith("render_")}
        if "GET" in methods:
            methods.add("HEAD")
        return sorted(methods)


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


class HealthResource(JSONMethods):
    """
    C{GET /health}: C{{"status", "store": {"state", "reason", "since"}, ...}}, C{200} when the
    store is C{ok}, C{503} when it is C{degraded} or C{unhealthy}.  Answered from the store's
    known health (L{IStoreLifecycle.health}), never by waiting for the database.
    """

    isLeaf = True

    def __init__(self, store: IStoreLifecycle, extra: Any = None) -> None:
        super().__init__()
        self._store = store
        self._extra = extra

    def render_GET(self, request: Request) -> bytes:
        health = self._store.health()
        body: dict[str, Any] = {"status": health.state, "store": health.asJSON()}
        if self._extra is not None:
            body.update(self._extra())
        return jsonBody(request, 200 if health.ok else 503, body)


def jsonBody(request: Request, code: int, body: Any) -> bytes:
    """Set the status and content type, and encode C{body}."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode("utf-8")


#: The answer to a connection over the caps (sent before reading anything).
_SERVICE_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 61\r\n"
    b"Retry-After: 30\r\n"
    b"Connection: close\r\n\r\n"
    b'{"error": "unavailable", "detail": "too many connections now"}\n'
)


class _Refusal(Protocol):
    """Answers C{503} at once and closes: the connection caps are reached."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(_SERVICE_UNAVAILABLE)
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        pass


class _Provides:
    """What a L{_CountedConnection} provides over a transport with a given specification."""

    __slots__ = ("_declarations", "interfaces", "secure")

    def __init__(self, spec: Any) -> None:
        provided = list(spec)
        self.interfaces = tuple(i for i in provided if not i.isOrExtends(ISSLTransport))
        self.secure = any(i.isOrExtends(ISSLTransport) for i in provided)
        self._declarations: dict[type, Any] = {}

    def declarationFor(self, cls: type) -> Any:
        """
        What C{directlyProvides(instance, *interfaces)} sets as an instance's C{__provides__}
        (zope keeps one per class and interfaces), without normalising the interfaces again.
        """
        declaration = self._declarations.get(cls)
        if declaration is None:
            declaration = self._declarations[cls] = Provides(cls, *self.interfaces)
        return declaration


#: Per transport specification (one per transport class, in practice): walking a transport's
#: interfaces took a tenth of the server's time when thousands of terminals connected at once.
_provides: dict[Any, _Provides] = {}


def _providesFor(spec: Any) -> _Provides:
    provides = _provides.get(spec)
    if provides is None:
        if len(_provides) > 64:  # never expected; bounds the cache whatever happens
            _provides.clear()
        provides = _provides[spec] = _Provides(spec)
    return provides


class _CountedConnection(ProtocolWrapper):
    """
    Holds one slot of the site's L{ConnectionLimiter} for as long as the connection is open,
    whatever protocol ends up running on it (HTTP, or the WebSocket that takes it over: the
    WebSocket resource swaps C{wrappedProtocol}).
    """

    def __init__(self, site: QuietSite, host: str, wrapped: Any) -> None:
        self.wrappedProtocol = wrapped
        self.site = site
        self.host = host
        self.secure = False
        self._released = False

    def makeConnection(self, transport: Any) -> None:
        # Provide what the transport provides, except ISSLTransport (and INegotiated, its child): autobahn reads TLS details
        # (channel id) only from a TLSMemoryBIOProtocol itself and fails the connection for
        # anything else that claims TLS.  `secure` keeps the fact for HTTP (Request.isSecure).
        provides = _providesFor(providedBy(transport))
        self.secure = provides.secure
        self.__provides__ = provides.declarationFor(type(self))  # directlyProvides, cached
        Protocol.makeConnection(self, transport)
        wrapped: Any = self.wrappedProtocol
        wrapped.makeConnection(self)

    @property
    def tcpHost(self) -> str:
        """The peer's address as text (L{hostOf}), worked out once for the connection."""
        return self.host

    def releaseUpgrade(self) -> None:
        """
        The WebSocket that took the connection over is open: let go of the HTTP channel of the
        upgrade.  It is still registered as the socket's producer, which would keep it, its
        request and the request's headers alive (and paused) as long as the connection.
        """
        transport: Any = self.transport
        if transport is None:
            return
        producer = getattr(transport, "producer", None) or getattr(transport, "_producer", None)
        producer = getattr(producer, "_producer", producer)  # TLS wraps it in a membrane
        if isinstance(producer, HTTPChannel):
            transport.unregisterProducer()

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        if not self._released:
            self._released = True
            self.site.limiter.release(self.host)
        wrapped: Any = self.wrappedProtocol
        self.wrappedProtocol = None  # type: ignore[assignment]  # break the cycle
        if wrapped is not None:
            wrapped.connectionLost(reason)


class GuardedChannel(HTTPChannel):
    """
    An HTTP channel with a deadline for each request head (request line and headers): a client
    that dribbles it (slowloris) is dropped when the deadline passes, however steadily it
    sends.  The idle timeout of L{HTTPChannel} alone restarts on every byte.

    The deadline of the first request runs from the connection (so it also covers a TLS
    handshake); that of a later request on a kept-alive connection from its first byte.
    A request body has its own deadline (L{bodyTimeout}), for all of it, from the end of the
    head: C{408} when it passes.  A head over L{totalHeadersSize} bytes, or any request
    Twisted finds malformed, gets a JSON C{400}.  A WebSocket upgrade must not carry a body.
    """

    log = Logger()
    headTimeout: float = 10.0
    bodyTimeout: float = 30.0
    site: QuietSite
    _headCall: IDelayedCall | None = None
    _bodyCall: IDelayedCall | None = None
    _awaitingHead = True
    _refused = False
    _firstData = True

    def connectionMade(self) -> None:
        super().connectionMade()
        self._startHeadTimer()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return  # answered and closing: what the client still sends is read and dropped
        if self._firstData:
            self._firstData = False
            if self._handOverUpgrade(data):
                return
        if self._awaitingHead and self._headCall is None:
            self._startHeadTimer()
        super().dataReceived(data)

    def _handOverUpgrade(self, data: bytes) -> bool:
        """
        A terminal's opening handshake that arrives whole in the connection's first read (a
        well-formed C{GET} head within L{totalHeadersSize} bytes, with C{Upgrade: websocket}
        and no body header) goes straight to the site's terminal factory, as the bytes it
        came in: autobahn parses and checks the head itself, so Twisted's request parsing, the
        resource traversal and the head's re-serialisation (what C{WebSocketResource} does) are
        skipped (about a quarter of a handshake's CPU, see bench/NOTES.md).  Anything else (a
        head in pieces or malformed, a body, the web side) goes through twisted.web as before.
        C{True} when handed over.
        """
        factory = self.site.terminals
        transport = self.transport
        if factory is None or not isinstance(transport, _CountedConnection):
            return False
        # the match ends at the head's blank line (no value holds a CR or LF), within the cap
        head = _WELL_FORMED_HEAD.match(data, 0, self.totalHeadersSize)
        if head is None:
            return False
        headers = head.end() - 2  # the header lines, each with its CRLF
        if (
            _UPGRADE_HEADER.search(data, 0, headers) is None
            or _BODY_HEADER.search(data, 0, headers) is not None
        ):
            return False
        protocol = factory.buildProtocol(transport.getPeer())
        if protocol is None:
            return False  # twisted.web's road answers it (a 500)
        self._awaitingHead = False
        self._cancelHeadTimer()
        self.setTimeout(None)
        self._networkProducer.unregisterProducer()  # registered by HTTPChannel.connectionMade
        self.transport = None  # the channel is done with it
        transport.wrappedProtocol = protocol
        protocol.makeConnection(transport)
        protocol.dataReceived(data)
        return True

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return  # the rest of a chunk already read when the request was refused
        if self._awaitingHead and self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._headTooLarge()
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self._refused:
            self._headTooLarge()

    def rawDataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().rawDataReceived(data)

    def allHeadersReceived(self) -> None:
        self._awaitingHead = False
        self._cancelHeadTimer()
        request = self.requests[-1]
        if isWebSocketUpgrade(request) and (
            self.length or request.requestHeaders.hasHeader(b"transfer-encoding")
        ):
            self.log.info(
                "refused a WebSocket upgrade with a body from {peer}", peer=self._peerHost()
            )
            self._refuse(400, "bad_request", "a WebSocket upgrade must not carry a body")
            return
        super().allHeadersReceived()
        if self.length != 0 and self.bodyTimeout > 0:  # a length, or chunked (None)
            self._bodyCall = self.callLater(self.bodyTimeout, self._bodyTimedOut)

    def allContentReceived(self) -> None:
        self._cancelBodyTimer()
        if not self._refused:
            super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        self._awaitingHead = True
        super().requestDone(request)

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self._awaitingHead = False
        self._cancelHeadTimer()
        self._cancelBodyTimer()
        super().connectionLost(reason)

    def isSecure(self) -> bool:
        """TLS, seen through the L{_CountedConnection} wrapper."""
        return bool(getattr(self.transport, "secure", False)) or super().isSecure()

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's answer to a malformed request line, header or chunk: a JSON 400.
        self._refuse(400, "bad_request", "malformed HTTP request")

    def _headTooLarge(self) -> None:
        self.log.info(
            "refused a request head over {limit} bytes from {peer}",
            limit=self.totalHeadersSize,
            peer=self._peerHost(),
        )
        self._refuse(
            400,
            "bad_request",
            f"request line and headers exceed {self.totalHeadersSize} bytes",
        )

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """
        Answer C{status} with a JSON body and close, without reading the rest of the request.

        The write side is closed first and what the client still sends is drained for up to
        L{headTimeout}: closing a socket with unread data would send a TCP reset, which can
        destroy the answer before the client reads it.
        """
        if self._refused or self.transport is None:
            return
        self._refused = True
        self._awaitingHead = False
        self._cancelHeadTimer()
        self._cancelBodyTimer()
        self.setTimeout(None)
        body = json.dumps({"error": code, "detail": detail}).encode("utf-8")
        reason = _REASONS.get(status, b"Error")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        # Half-close plain TCP only: through TLS it would skip the TLS layer.
        halfClose = getattr(self.transport, "loseWriteConnection", None)
        if halfClose is None or getattr(self.transport, "secure", False):
            self.loseConnection()  # unregisters the channel as producer first (TLS waits on it)
            return
        producer: Any = self._networkProducer  # the transport, as in HTTPChannel.loseConnection
        producer.unregisterProducer()
        halfClose()
        self._headCall = self.callLater(max(self.headTimeout, 1.0), self._abort)

    def _abort(self) -> None:
        self._headCall = None
        if self.transport is not None:
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                self.transport.loseConnection()

    def _startHeadTimer(self) -> None:
        if self.headTimeout > 0:
            self._headCall = self.callLater(self.headTimeout, self._headTimedOut)

    def _cancelHeadTimer(self) -> None:
        if self._headCall is not None and self._headCall.active():
            self._headCall.cancel()
        self._headCall = None

    def _cancelBodyTimer(self) -> None:
        if self._bodyCall is not None and self._bodyCall.active():
            self._bodyCall.cancel()
        self._bodyCall = None

    def _headTimedOut(self) -> None:
        self._headCall = None
        if not self._awaitingHead or self.transport is None:
            return
        self.log.info(
            "dropping {peer}: no complete request head within {timeout}s",
            peer=self._peerHost(),
            timeout=self.headTimeout,
        )
        self._abort()

    def _bodyTimedOut(self) -> None:
        self._bodyCall = None
        if self.transport is None:
            return
        self.log.info(
            "dropping {peer}: request body not received within {timeout}s",
            peer=self._peerHost(),
            timeout=self.bodyTimeout,
        )
        self._refuse(
            408, "timeout", f"the request body did not arrive within {self.bodyTimeout:g}s"
        )

    def _peerHost(self) -> str:
        return hostOf(self.transport.getPeer()) if self.transport is not None else "?"


_REASONS = {400: b"Bad Request", 408: b"Request Timeout"}
# A request head as a terminal's opening handshake spells it: a GET request line, then header
# lines each a token, a colon and a value.  A head not so spelled (a folded or nameless line,
# another method or version) goes through twisted.web, whose answer it gets as before.
_WELL_FORMED_HEAD = re.compile(
    rb"GET [!-~]+ HTTP/1\.1\r\n(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*\r\n)*\r\n"
)
# Header lines of a request head (from the line after the request line on): an upgrade to a
# WebSocket, as L{isWebSocketUpgrade} reads it, and a body declared.
_UPGRADE_HEADER = re.compile(rb"\r\nupgrade:[^\r\n]*websocket", re.IGNORECASE)
_BODY_HEADER = re.compile(rb"\r\n(?:content-length|transfer-encoding):", re.IGNORECASE)


class SiteRequest(Request):
    """
    twisted.web's request, except that a body declared C{application/json} (the API's) is not
    examined as a possible form: Twisted parses every POST's C{Content-Type} through
    C{email.message} (a few percent of a REST command's CPU) only to find form data, which a
    JSON body is not.  Any other type (the console's forms) is handled as Twisted does.
    """

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        ctype = self.requestHeaders.getRawHeaders(b"content-type")
        if ctype and ctype[0].split(b";", 1)[0].strip().lower() == b"application/json":
            self._parsePOSTFormSubmission = False
        super().requestReceived(command, path, version)


class QuietSite(Site):
    """
    The site of the one port: no per-request access logs (terminals and API clients are logged
    elsewhere), and the HTTP-level guards (see the module docstring).

    @param resource: the root.
    @param config: the limits (defaults when C{None}).
    @param clock: the reactor or a C{Clock} (the global reactor when C{None}).
    @param terminals: the terminals' WebSocket factory (see L{GuardedChannel._handOverUpgrade}).
    @ivar limiter: the L{ConnectionLimiter} shared by every port of the site.
    """

    log_ = Logger()
    # Twisted types C{HTTPFactory.protocol} as making the wrapper it builds around a channel
    # (C{_GenericHTTPChannelProtocol}), not a channel itself; this site makes the channel.
    protocol = GuardedChannel  # type: ignore[assignment]
    requestFactory = SiteRequest

    def __init__(
        self,
        resource: IResource,
        config: ServerConfig | None = None,
        clock: IReactorTime | None = None,
        terminals: WebSocketServerFactory | None = None,
    ) -> None:
        config = ServerConfig() if config is None else config
        super().__init__(resource, timeout=config.httpIdleTimeout, reactor=clock)
        self.config = config
        self.limiter = ConnectionLimiter(
            config.maxConnections,
            config.maxConnectionsPerIP,
            exempt=NetworkList(config.trustedProxies),
        )
        self._refusals: dict[str, int] = {}
        #: The terminals' WebSocket factory, to which a whole opening handshake is handed at
        #: once (L{GuardedChannel._handOverUpgrade}); C{None}: every upgrade goes through the
        #: resource tree.
        self.terminals: WebSocketServerFactory | None = terminals
        #: The L{tm20.metrics.Metrics} counting refusals (C{None}: not counted).
        self.metrics: Any = None
        self._refusalLoggedAt: dict[str, float] = {}

    def log(self, request: Any) -> None:
        pass

    def startFactory(self) -> None:
        pass  # no access log to open

    def stopFactory(self) -> None:
        pass

    def buildProtocol(self, addr: IAddress | None) -> Any:
        host = hostOf(addr)
        refused = self.limiter.acquire(host)
        if refused is not None:
            self._logRefusal(refused, host)
            return _Refusal()
        channel = super().buildProtocol(addr)
        channel.headTimeout = self.config.handshakeTimeout
        channel.bodyTimeout = self.config.httpBodyTimeout
        channel.totalHeadersSize = self.config.maxHandshakeBytes
        channel.MAX_LENGTH = self.config.maxHandshakeBytes
        return _CountedConnection(self, host, channel)

    def _logRefusal(self, reason: str, host: str) -> None:
        if self.metrics is not None:
            self.metrics.refused(reason)
        # Under a flood, one line per reason every 10 s, with the count since the last line.
        self._refusals[reason] = self._refusals.get(reason, 0) + 1
        now = self.reactor.seconds()
        if now - self._refusalLoggedAt.get(reason, float("-inf")) < 10:
            return
        self._refusalLoggedAt[reason] = now
        count, self._refusals[reason] = self._refusals[reason], 0
        self.log_.warn(
            "connection limit reached ({limit}): refused {count} connection(s) with 503,"
            " latest from {peer} ({open} open, {fromPeer} from that address)",
            limit=reason,
            count=count,
            peer=host,
            open=self.limiter.total,
            fromPeer=self.limiter.count(host),
        )
