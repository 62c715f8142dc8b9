"""
Abuse before a connection is a terminal: slowloris handshakes, oversize handshakes, bodies on
upgrades, connections that never send C{reg}; and real terminals unaffected meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import Clock, LoopingCall
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.memoryws import LenientTransport, handshake
from tests.securitysupport import connectWS, openRaw, registerOn, scratchDir, startServerOn, wait
from tm20.config import ServerConfig
from tm20.service import buildServer
from tm20.store.sqlite import SQLiteStore

DRIBBLE = b"GET /pub/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 10_000


class SiteGuardTests(SynchronousTestCase):
    """The HTTP side, driven byte by byte with a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        store = SQLiteStore(scratchDir(self) + "/tm20.sqlite3", reactor=reactor)
        self.server = buildServer(
            ServerConfig(handshakeTimeout=10, httpIdleTimeout=75),
            reactor,
            store,
            clock=self.clock,
        )

    def connect(self) -> tuple[Any, LenientTransport]:
        transport = LenientTransport()
        proto = self.server.site.buildProtocol(IPv4Address("TCP", "10.0.0.9", 40000))
        proto.makeConnection(transport)
        return proto, transport

    def test_dribbledHeadDroppedAtItsDeadline(self) -> None:
        proto, transport = self.connect()
        for i in range(99):  # one byte every 0.1 s: the idle timeout never fires
            proto.dataReceived(DRIBBLE[i : i + 1])
            self.clock.advance(0.1)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(DRIBBLE[99:100])
        self.clock.advance(0.2)  # 10 s after the connection
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")  # dropped, not answered

    def test_silentConnectionDroppedAtTheDeadline(self) -> None:
        proto, transport = self.connect()
        self.clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_completeRequestIsNotCutByTheDeadline(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404"))
        self.clock.advance(60)  # kept alive, idle: below the idle timeout
        self.assertFalse(transport.disconnecting)
        # The next request's head has its own deadline, from its first byte.
        proto.dataReceived(b"GET / HTTP/1.1\r\n")
        self.clock.advance(10)
        self.assertTrue(transport.disconnecting)

    def test_oversizeHeadRefused(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GET /pub/chat HTTP/1.1\r\nUpgrade: websocket\r\n")
        for _ in range(20):  # 20 KiB of headers, over the 16 KiB cap
            proto.dataReceived(b"X-Filler: " + b"b" * 1014 + b"\r\n")
            if transport.disconnecting:
                break
        self.assertTrue(transport.disconnecting)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400"))

    def test_longLineWithoutNewlineRefused(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GET /" + b"x" * 20_000)
        self.assertTrue(transport.disconnecting)

    def test_upgradeWithBodyRefused(self) -> None:
        proto, transport = self.connect()
        head = handshake().replace(b"\r\n\r\n", b"\r\nContent-Length: 1000000\r\n\r\n")
        proto.dataReceived(head)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400"))
        self.assertTrue(transport.disconnecting)

    def test_upgradeWithoutBodyAccepted(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(handshake())
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101"))
        self.clock.advance(30)  # the head deadline no longer applies to the WebSocket
        self.assertFalse(transport.disconnecting)

    def test_terminalFactoryCapsItsOwnHandshakeBuffer(self) -> None:
        # Served without the site (as the conformance echo endpoint could be), the protocol
        # itself drops a connection whose handshake grows past the cap.
        transport = LenientTransport()
        proto = self.server.factory.buildProtocol(transport.getPeer())
        proto.makeConnection(transport)
        proto.dataReceived(b"GET /pub/chat HTTP/1.1\r\nHost: x\r\n")
        for _ in range(17):
            proto.dataReceived(b"X-Filler: " + b"c" * 1012 + b"\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertLessEqual(len(proto.data), 16 * 1024)


class SlowlorisLoopbackTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def roundTrips(self, client: Any, sn: str, count: int, start: int) -> Any:
        """C{count} sendlog round trips, each acknowledged."""
        for i in range(count):
            reply = yield client.request(
                {
                    "cmd": "sendlog",
                    "sn": sn,
                    "count": 1,
                    "logindex": start + i,
                    "record": [{"enrollid": 1, "time": f"2024-01-15 10:{(start + i) % 60:02d}:00"}],
                }
            )
            self.assertIs(reply["result"], True)

    @inlineCallbacks
    def test_slowlorisDroppedAndTerminalsUnaffected(self) -> Any:
        deadline = 1.5
        running = yield startServerOn(self, handshakeTimeout=deadline)
        # A terminal alone.
        alone = yield connectWS(self, running.port)
        reply = yield registerOn(alone, "BASE", cpusn="B1")
        self.assertIs(reply["result"], True)
        yield self.roundTrips(alone, "BASE", 10, 0)

        # 50 sockets that dribble a never-ending handshake, a byte every 50 ms each.
        opened = time.monotonic()
        lorises = yield DeferredList(
            [openRaw(self, running.port) for _ in range(50)], fireOnOneErrback=True
        )
        lorises = [proto for _, proto in lorises]
        position = [0]

        def dribble() -> None:
            i = position[0] % len(DRIBBLE)
            for loris in lorises:
                loris.send(DRIBBLE[i : i + 1])
            position[0] += 1

        sender = LoopingCall(dribble)
        sender.start(0.05)
        self.addCleanup(lambda: sender.running and sender.stop())

        # Meanwhile a real terminal connects, registers and uploads.
        yield wait(0.3)
        client = yield connectWS(self, running.port)
        reply = yield registerOn(client, "REAL", cpusn="R1")
        self.assertIs(reply["result"], True)
        yield self.roundTrips(client, "REAL", 10, 20)
        # All of it done while every loris still dribbles: the server was never blocked by
        # them (no wall-clock ratio: speed is shown in bench/, not in unit tests).
        self.assertTrue(all(loris.closedAt is None for loris in lorises))

        yield DeferredList([loris.closed for loris in lorises])
        sender.stop()
        for loris in lorises:
            assert loris.closedAt is not None
            self.assertGreaterEqual(loris.closedAt - opened, deadline - 0.3)
            self.assertLess(loris.closedAt - opened, deadline + 5)
            self.assertEqual(loris.received, b"")  # dropped, never answered
        # The terminal that finished its handshake is still there.
        self.assertEqual(running.context.registry.connected(), ["BASE", "REAL"])

    @inlineCallbacks
    def test_connectionThatNeverRegistersIsDropped(self) -> Any:
        running = yield startServerOn(self, regTimeout=0.5)
        client = yield connectWS(self, running.port)
        began = time.monotonic()
        _, code, _ = yield client.closed
        self.assertEqual(code, 4004)
        self.assertGreaterEqual(time.monotonic() - began, 0.3)
