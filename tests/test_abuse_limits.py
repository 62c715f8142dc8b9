"""
Abuse by volume: connection caps (global and per source address), hostile JSON (deep, huge,
a million records), compression offers, and a terminal flooding messages.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any, ClassVar

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.memoryws import LenientTransport, MemoryTerminal, clientFrame, handshake
from tests.securitysupport import connectWS, openRaw, registerOn, scratchDir, startServerOn, wait
from tm20.config import ServerConfig
from tm20.service import buildServer
from tm20.store.sqlite import SQLiteStore
from tm20.terminal.protocol import TerminalProtocol


def sendlog(sn: str, i: int) -> dict[str, Any]:
    return {
        "cmd": "sendlog",
        "sn": sn,
        "count": 1,
        "logindex": i,
        "record": [{"enrollid": 1 + i, "time": "2024-01-15 10:00:00"}],
    }


@inlineCallbacks
def until(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        yield wait(0.01)


class ConnectionCapTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def test_globalCapAnswers503AndFreesSlots(self) -> Any:
        running = yield startServerOn(self, maxConnections=3)
        limiter = running.server.site.limiter
        terminal = yield connectWS(self, running.port)
        yield registerOn(terminal, "CAP1", cpusn="C")
        first = yield openRaw(self, running.port)
        yield openRaw(self, running.port)
        yield until(lambda: limiter.total == 3)
        refused = yield openRaw(self, running.port)
        received = yield refused.closed
        self.assertTrue(received.startswith(b"HTTP/1.1 503 "), received)
        self.assertEqual(limiter.total, 3)
        # A closed HTTP connection and a closed terminal each give their slot back.
        first.abort()
        terminal.sendClose(1000)
        yield terminal.closed
        yield until(lambda: limiter.total == 1)
        again = yield connectWS(self, running.port)
        reply = yield registerOn(again, "CAP2", cpusn="D")
        self.assertIs(reply["result"], True)

    @inlineCallbacks
    def test_perAddressCap(self) -> Any:
        running = yield startServerOn(self, maxConnectionsPerIP=2)
        limiter = running.server.site.limiter
        yield openRaw(self, running.port)
        yield openRaw(self, running.port)
        yield until(lambda: limiter.count("127.0.0.1") == 2)
        refused = yield openRaw(self, running.port)
        received = yield refused.closed
        self.assertTrue(received.startswith(b"HTTP/1.1 503 "))
        # Another address is not affected (127.0.0.2 is loopback too).
        other = yield connectWS(self, running.port, bindAddress="127.0.0.2")
        reply = yield registerOn(other, "OTHER", cpusn="E")
        self.assertIs(reply["result"], True)
        self.assertEqual(limiter.count("127.0.0.2"), 1)


class HostileFrameTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def registered(self, **changes: Any) -> Any:
        running = yield startServerOn(self, **changes)
        client = yield connectWS(self, running.port)
        reply = yield registerOn(client, "S1", cpusn="C1")
        self.assertIs(reply["result"], True)
        return running, client

    @inlineCallbacks
    def assertStillServes(self, client: Any) -> Any:
        ack = yield client.request(sendlog("S1", 1))
        self.assertEqual((ack["ret"], ack["result"]), ("sendlog", True))

    @inlineCallbacks
    def test_deepNestingAnsweredNotCrashed(self) -> Any:
        running, client = yield self.registered()
        deep = b'{"cmd":"senduser","sn":"S1","x":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001
        reply = yield client.request(deep)
        self.assertEqual(reply, {"ret": "senduser", "result": False, "reason": 1})
        deepArrays = b'{"cmd":"sendlog","record":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        reply = yield client.request(deepArrays)
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", False))
        yield self.assertStillServes(client)

    @inlineCallbacks
    def test_millionRecordsAnsweredNotStored(self) -> Any:
        running, client = yield self.registered()
        million = b'{"cmd":"sendlog","sn":"S1","record":[' + b",".join([b"{}"] * 1_000_000) + b"]}"
        self.assertLess(len(million), ServerConfig().maxMessageSize)
        reply = yield client.request(million, timeout=20)
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", False))
        numbers = b'{"cmd":"sendlog","sn":"S1","record":[' + b",".join([b"0"] * 1_500_000) + b"]}"
        reply = yield client.request(numbers, timeout=20)
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", False))
        yield self.assertStillServes(client)
        self.assertEqual((yield running.context.store.countLogs("S1")), 1)

    @inlineCallbacks
    def test_oversizeMessageClosesWith1009(self) -> Any:
        running, client = yield self.registered(maxMessageSize=64 * 1024)
        client.send({"cmd": "senduser", "enrollid": 1, "backupnum": 50, "record": "A" * 70_000})
        _, code, _ = yield client.closed
        self.assertEqual(code, 1009)

    @inlineCallbacks
    def test_permessageDeflateOfferDeclined(self) -> Any:
        running = yield startServerOn(self)
        client = yield connectWS(self, running.port, offerDeflate=True)
        self.assertEqual(client.websocket_extensions_in_use, [])
        reply = yield registerOn(client, "Z1", cpusn="Z")
        self.assertIs(reply["result"], True)


class MemoryBoundTests(TestCase):
    """What a hostile frame costs, measured in process (no sockets, tracemalloc)."""

    timeout = 60

    @inlineCallbacks
    def test_millionEntryFrameCostsAboutItsOwnSize(self) -> Any:
        store = SQLiteStore(scratchDir(self) + "/tm20.sqlite3", reactor=reactor)
        yield store.start()
        self.addCleanup(store.stop)
        # The full message limit (a registered terminal's): the value count is what is measured.
        config = ServerConfig(maxPreRegMessageSize=0)
        server = buildServer(config, reactor, store, clock=Clock())
        term = MemoryTerminal(server.factory)
        self.addCleanup(term.protocol.dropConnection, True)
        payload = b'{"cmd":"sendlog","sn":"S1","record":[' + b",".join([b"{}"] * 1_300_000) + b"]}"
        frame = clientFrame(payload)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            term.protocol.dataReceived(frame)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        [reply] = term.messages()
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", False))
        # Decoding it would cost ~100 MB (25x); refused before decoding, a few copies of the
        # frame (unmasking, reassembly, the string-blanking pass) at most.
        self.assertLess(peak, 6 * len(payload), f"peak {peak / 1e6:.1f} MB")

    def test_deflateNotNegotiatedInTheHandshake(self) -> None:
        store = SQLiteStore(scratchDir(self) + "/tm20.sqlite3", reactor=reactor)
        server = buildServer(ServerConfig(), reactor, store, clock=Clock())

        transport = LenientTransport()
        proto = server.factory.buildProtocol(transport.getPeer())
        proto.makeConnection(transport)
        offer = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        proto.dataReceived(handshake().replace(b"\r\n\r\n", b"\r\n" + offer))
        response = transport.value().split(b"\r\n\r\n", 1)[0].lower()
        self.assertTrue(response.startswith(b"http/1.1 101"))
        self.assertNotIn(b"sec-websocket-extensions", response)
        proto.dropConnection(abort=True)


class _Spy(TerminalProtocol):
    """Records the longest inbox and the read pauses of each connection."""

    maxInbox: ClassVar[dict[str, int]] = {}
    pauses: ClassVar[dict[str, int]] = {}

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        super().onMessage(payload, isBinary)
        if self.sn is not None:
            self.maxInbox[self.sn] = max(self.maxInbox.get(self.sn, 0), len(self._inbox))

    def pauseReading(self, reason: str) -> None:
        if reason not in self.pausedFor:
            self.pauses[str(self.sn)] = self.pauses.get(str(self.sn), 0) + 1
        super().pauseReading(reason)


class FloodTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def roundTrips(self, client: Any, sn: str, start: int, count: int = 10) -> Any:
        for i in range(start, start + count):
            ack = yield client.request(sendlog(sn, i), timeout=20)
            self.assertIs(ack["result"], True)

    @inlineCallbacks
    def test_floodIsSlowedByBackpressureOthersKeepTheirLatency(self) -> Any:
        _Spy.maxInbox.clear()
        _Spy.pauses.clear()
        running = yield startServerOn(self, maxPendingMessages=8)
        running.server.factory.protocol = _Spy
        calm = yield connectWS(self, running.port)
        yield registerOn(calm, "CALM", cpusn="C")
        yield self.roundTrips(calm, "CALM", 0)

        flooder = yield connectWS(self, running.port)
        yield registerOn(flooder, "FLOOD", cpusn="F")
        count = 2000
        frames = [clientFrame(sendlog("FLOOD", i)) for i in range(count)]
        flooder.transport.write(b"".join(frames))  # all at once, replies unread for now
        yield self.roundTrips(calm, "CALM", 100)

        replies = []
        while len(replies) < count:
            replies.append((yield flooder.next(timeout=30)))
        self.assertEqual([r["logindex"] for r in replies], list(range(count)))
        self.assertEqual((yield running.context.store.countLogs("FLOOD")), count)

        # The flooder's socket was paused, and what it had queued never exceeded the pending
        # limit plus one socket read (64 KiB) worth of frames, far below what it sent.
        self.assertGreater(_Spy.pauses.get("FLOOD", 0), 0)
        bound = 8 + 65536 // min(len(f) for f in frames) + 1
        self.assertLessEqual(_Spy.maxInbox["FLOOD"], bound)
        self.assertLess(bound, count)
        # The calm terminal never queued behind anything (that it is answered while the
        # flooder waits is shown deterministically: test_terminal_session, floodDoesNotDelay).
        self.assertLessEqual(_Spy.maxInbox["CALM"], 1)
