"""
Deterministic session tests: in-memory transport, an injected Clock for every timer, and a real
SQLite store.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.memoryws import OP_CLOSE, OP_PING, MemoryTerminal
from tm20.config import ServerConfig
from tm20.service import buildServer
from tm20.store.sqlite import SQLiteStore


def reg(sn: str = "S1") -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}}


class SessionTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def setUp(self) -> Any:
        self.clock = Clock()
        self.store = SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor)
        yield self.store.start()
        self.addCleanup(self.store.stop)
        self.terminals: list[MemoryTerminal] = []

    def makeServer(self, **changes: Any) -> Any:
        config = ServerConfig(**changes)
        return buildServer(config, reactor, self.store, clock=self.clock)

    def connect(self, server: Any, path: str = "/pub/chat") -> MemoryTerminal:
        term = MemoryTerminal(server.factory, path)
        self.assertEqual(term.status, b"HTTP/1.1 101 Switching Protocols")
        self.terminals.append(term)
        self.addCleanup(self.disconnect, term)
        return term

    def disconnect(self, term: MemoryTerminal) -> None:
        if not term.transport.disconnecting or term.protocol.state != term.protocol.STATE_CLOSED:
            term.protocol.connectionLost(Failure(ConnectionDone()))

    @inlineCallbacks
    def nextMessages(self, term: MemoryTerminal, count: int = 1) -> Any:
        got: list[Any] = []
        for _ in range(500):
            got.extend(term.messages())
            if len(got) >= count:
                return got
            yield deferLater(reactor, 0.01, lambda: None)
        self.fail(f"expected {count} messages, got {got}")

    @inlineCallbacks
    def registered(self, server: Any, sn: str = "S1") -> Any:
        term = self.connect(server)
        term.send(reg(sn))
        [reply] = yield self.nextMessages(term)
        self.assertEqual((reply["ret"], reply["result"]), ("reg", True))
        return term

    @inlineCallbacks
    def test_probeAfterSilenceThenDisconnect(self) -> Any:
        server = self.makeServer(heartbeatInterval=30, connectionTimeout=120)
        term = yield self.registered(server)
        self.clock.advance(29)
        self.assertEqual(term.messages(), [])
        self.clock.advance(1)
        self.assertEqual(term.messages(), [{"cmd": "gettime"}])
        self.clock.advance(60)
        frames = term.frames()
        self.assertNotIn(OP_CLOSE, [op for op, _ in frames])
        self.clock.advance(30)  # 120 s of silence
        frames = term.frames()
        self.assertEqual(term.closeCode(frames), 4000)

    @inlineCallbacks
    def test_answeringTheProbeKeepsTheTerminal(self) -> Any:
        server = self.makeServer(heartbeatInterval=30, connectionTimeout=120)
        term = yield self.registered(server)
        for _ in range(10):  # 10 minutes, answering each probe
            self.clock.advance(30)
            self.assertEqual(term.messages(), [{"cmd": "gettime"}])
            term.send({"ret": "gettime", "sn": "S1", "time": "2024-01-15 10:00:00"})
        frames = term.frames()
        self.assertIsNone(term.closeCode(frames))
        self.assertEqual(server.context.registry.connected(), ["S1"])

    @inlineCallbacks
    def test_neverSendsWebSocketPings(self) -> Any:
        server = self.makeServer(heartbeatInterval=30, connectionTimeout=120)
        term = yield self.registered(server)
        for _ in range(30):
            self.clock.advance(10)
            term.send({"ret": "gettime", "sn": "S1", "time": "2024-01-15 10:00:00"})
        self.assertNotIn(OP_PING, [op for op, _ in term.frames()])

    def test_noRegBeforeDeadline(self) -> None:
        server = self.makeServer(regTimeout=60)
        term = self.connect(server)
        self.clock.advance(59)
        self.assertIsNone(term.closeCode(term.frames()))
        self.clock.advance(1)
        self.assertEqual(term.closeCode(term.frames()), 4004)

    def test_handshakeTimeout(self) -> None:
        server = self.makeServer(handshakeTimeout=5)
        from tests.memoryws import LenientTransport

        transport = LenientTransport()
        proto = server.factory.buildProtocol(transport.getPeer())
        proto.makeConnection(transport)
        proto.dataReceived(b"GET /pub/chat HTTP/1.1\r\nHost: x\r\n")  # dribbles, never ends
        self.clock.advance(6)
        self.assertTrue(transport.disconnecting)

    @inlineCallbacks
    def test_regHeartbeatIsCheap(self) -> Any:
        server = self.makeServer()
        term = yield self.registered(server)
        first = yield self.store.getTerminal("S1")
        self.clock.advance(20)
        term.send(reg())
        [reply] = yield self.nextMessages(term)
        self.assertIs(reply["result"], True)
        again = yield self.store.getTerminal("S1")
        self.assertEqual(first.lastSeen, again.lastSeen)  # no write for a heartbeat

    @inlineCallbacks
    def test_floodPausesReading(self) -> Any:
        server = self.makeServer(maxPendingMessages=8)
        term = yield self.registered(server)
        for i in range(20):
            term.send(
                {
                    "cmd": "sendlog",
                    "count": 1,
                    "logindex": i,
                    "record": [{"enrollid": 1, "time": f"2024-01-15 10:00:{i:02d}"}],
                }
            )
        self.assertTrue(term.transport.paused)
        replies = yield self.nextMessages(term, 20)
        self.assertEqual([r["logindex"] for r in replies], list(range(20)))
        self.assertFalse(term.transport.paused)
        self.assertEqual((yield self.store.countLogs("S1")), 20)

    @inlineCallbacks
    def test_whitelistRefusal(self) -> Any:
        server = self.makeServer(requireWhitelist=True)
        term = self.connect(server)
        term.send(reg("INTRUDER"))
        for _ in range(500):
            frames = term.frames()
            if frames:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        import json

        texts = [json.loads(p) for op, p in frames if op == 1]
        self.assertEqual(texts[0]["ret"], "reg")
        self.assertIs(texts[0]["result"], False)
        self.assertEqual(term.closeCode(frames), 4003)
        self.assertEqual(server.context.registry.connected(), [])
        pending = yield self.store.listTerminals(False)
        self.assertEqual([t.sn for t in pending], ["INTRUDER"])

    @inlineCallbacks
    def test_cloudtimeIsTheTerminalsLocalTime(self) -> Any:
        self.clock.advance(1_700_000_000)  # 2023-11-14 22:13:20 UTC
        yield self.store.createTerminal("TOKYO", None, True, "Asia/Tokyo")
        server = self.makeServer(defaultTimezone="Africa/Kinshasa")
        tokyo = self.connect(server)
        tokyo.send(reg("TOKYO"))
        [reply] = yield self.nextMessages(tokyo)
        self.assertEqual(reply["cloudtime"], "2023-11-15 07:13:20")
        other = self.connect(server)
        other.send(reg("KINSHASA"))
        [reply] = yield self.nextMessages(other)
        self.assertEqual(reply["cloudtime"], "2023-11-14 23:13:20")
        other.send(
            {
                "cmd": "sendlog",
                "count": 1,
                "logindex": 3,
                "record": [{"enrollid": 1, "time": "2023-11-14 23:13:00"}],
            }
        )
        [ack] = yield self.nextMessages(other)
        self.assertEqual(ack["cloudtime"], "2023-11-14 23:13:20")
