"""
The one port's WebSocket upgrades (L{tm20.web.GuardedChannel._handOverUpgrade}): an opening
handshake that arrives whole in the connection's first read is handed to the terminals' factory
as it came, without a twisted.web request; a head in pieces, a head with a body, an oversized
head and the web side go through twisted.web as before.  Deterministic: in-memory transports, a
L{Clock}.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.memoryws import LenientTransport, handshake
from tm20.config import ServerConfig
from tm20.web import GuardedChannel, QuietSite, SiteRequest, TM20Root


class _Opened(WebSocketServerProtocol):
    def onConnect(self, request: Any) -> None:
        self.factory.paths.append(request.path)

    def onOpen(self) -> None:
        self.factory.opened.append(self)


class _Terminals(WebSocketServerFactory):
    protocol = _Opened

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.opened: list[_Opened] = []


class HandOverTests(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.terminals = _Terminals()
        self.requests: list[Any] = []
        built = self.requests

        class CountedRequest(SiteRequest):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                built.append(self)
                super().__init__(*args, **kwargs)

        self.config = ServerConfig(handshakeTimeout=5.0, httpIdleTimeout=60.0)
        self.site = QuietSite(
            TM20Root(WebSocketResource(self.terminals)),
            config=self.config,
            clock=self.clock,
            terminals=self.terminals,
        )
        self.site.requestFactory = CountedRequest

    def connect(self, *chunks: bytes) -> tuple[Any, LenientTransport]:
        transport = LenientTransport()
        connection: Any = self.site.buildProtocol(IPv4Address("TCP", "10.0.0.9", 40000))
        connection.makeConnection(transport)
        for chunk in chunks:
            connection.dataReceived(chunk)
        return connection, transport

    def answered(self, status: bytes, *chunks: bytes) -> bytes:
        """What a connection sent C{chunks} got back, checked to start with C{status}."""
        connection, transport = self.connect(*chunks)
        response: bytes = transport.value()
        self.assertTrue(response.startswith(b"HTTP/1.1 " + status + b" "), response)
        return response

    def test_wholeHeadHandedOverWithoutARequest(self) -> None:
        """
        A whole opening handshake in the first read opens the WebSocket at once, on any path,
        and no twisted.web request is built for it.
        """
        connection, transport = self.connect(handshake("/ws/tm20/"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "), transport.value())
        self.assertEqual(self.requests, [])
        self.assertEqual(self.terminals.paths, ["/ws/tm20/"])
        self.assertIs(connection.wrappedProtocol, self.terminals.opened[0])
        self.assertIsNone(transport.producer)  # the HTTP channel is not the socket's producer

    def test_whatFollowsTheHeadReachesTheWebSocket(self) -> None:
        """Bytes after the head in the same read are the WebSocket's first frames."""
        received: list[bytes] = []
        self.terminals.protocol = type(
            "Recording",
            (_Opened,),
            {"onMessage": lambda self, payload, isBinary: received.append(payload)},
        )
        frame = b"\x81\x82" + b"\x00\x00\x00\x00" + b"hi"  # masked text "hi", mask 0
        self.connect(handshake() + frame)
        self.assertEqual(received, [b"hi"])

    def test_channelTimersCancelled(self) -> None:
        """The HTTP channel's head deadline and idle timeout do not outlive the hand-over."""
        connection, transport = self.connect(handshake())
        channels = [c for c in self.clock.getDelayedCalls() if _ownedByAChannel(c)]
        self.assertEqual(channels, [])
        self.clock.advance(self.config.handshakeTimeout + self.config.httpIdleTimeout + 1)
        self.assertFalse(transport.disconnecting)

    def test_headInPiecesGoesThroughTwistedWeb(self) -> None:
        """A head split over reads is parsed by twisted.web, then upgraded as before."""
        data = handshake()
        self.answered(b"101", data[:20], data[20:])
        self.assertEqual(len(self.requests), 1)
        self.assertEqual(len(self.terminals.opened), 1)

    def test_upgradeWithABodyRefused(self) -> None:
        """An upgrade declaring a body is not handed over: the channel refuses it with a 400."""
        head = handshake().replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\n\r\nhi")
        self.assertIn(b"must not carry a body", self.answered(b"400", head))
        self.assertEqual(self.terminals.opened, [])

    def test_oversizeHeadRefused(self) -> None:
        """A whole head over the size cap is not handed over: a JSON 400 as before."""
        head = handshake().replace(
            b"\r\n\r\n", b"\r\nX-Pad: " + b"a" * self.config.maxHandshakeBytes + b"\r\n\r\n"
        )
        self.answered(b"400", head)
        self.assertEqual(self.terminals.opened, [])

    def test_malformedHeadAnsweredAsBefore(self) -> None:
        """
        A whole head with a line that is not a header is not handed over (autobahn would skip
        the line): twisted.web answers it with the JSON 400 it always gave.
        """
        head = handshake().replace(b"\r\n\r\n", b"\r\nno colon here\r\n\r\n")
        self.assertIn(b"malformed HTTP request", self.answered(b"400", head))
        self.assertEqual(self.terminals.paths, [])

    def test_otherSpellingsGoThroughTwistedWeb(self) -> None:
        """HTTP/1.0, or a folded header line: the resource tree's road, as before."""
        folded = handshake().replace(b"\r\n\r\n", b"\r\nX-Note: a\r\n b\r\n\r\n")
        for head in (handshake().replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1), folded):
            self.requests.clear()
            self.connect(head)
            self.assertEqual(len(self.requests), 1, head)

    def test_webRequestsNotHandedOver(self) -> None:
        """A request without an upgrade is the web side's."""
        self.answered(b"404", b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(len(self.requests), 1)
        self.assertEqual(self.terminals.paths, [])

    def test_upgradeOnALaterRequestNotHandedOver(self) -> None:
        """
        Only a connection's first read is looked at: an upgrade after a web request on a
        kept-alive connection goes through twisted.web.
        """
        connection, transport = self.connect(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        connection.dataReceived(handshake())
        self.assertEqual(len(self.requests), 2)
        self.assertIn(b"HTTP/1.1 101 ", transport.value())

    def test_slotReleasedWhenTheWebSocketCloses(self) -> None:
        """The connection's slot in the site's limiter is held until the WebSocket closes."""
        connection, transport = self.connect(handshake())
        self.assertEqual(self.site.limiter.total, 1)
        connection.connectionLost(Failure(ConnectionError("gone")))
        self.assertEqual(self.site.limiter.total, 0)

    def test_withoutTerminalsEveryUpgradeGoesThroughTwistedWeb(self) -> None:
        """A site built without the terminals' factory upgrades through the resource tree."""
        self.site.terminals = None
        self.answered(b"101", handshake())
        self.assertEqual(len(self.requests), 1)


def _ownedByAChannel(call: Any) -> bool:
    owner = getattr(call.func, "__self__", None)
    return isinstance(owner, GuardedChannel)
