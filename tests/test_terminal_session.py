"""
Deterministic session tests: in-memory transport, an injected Clock for every timer, and a real
SQLite store that answers synchronously (L{tests.syncstore}): nothing waits on the real reactor.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.memoryws import OP_CLOSE, OP_PING, LenientTransport, MemoryTerminal
from tests.syncstore import fired, stopSync, syncSQLiteStore
from tm20.config import ServerConfig
from tm20.protocol.parser import parseFrame
from tm20.service import buildServer


def reg(sn: str = "S1") -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}}


def sendlog(logindex: int, count: int, second: int = 0) -> dict[str, Any]:
    return {
        "cmd": "sendlog",
        "count": count,
        "logindex": logindex,
        "record": [
            {"enrollid": 1, "time": f"2026-04-30 08:00:{second + i:02d}"} for i in range(count)
        ],
    }


class SessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = syncSQLiteStore(self.mktemp() + ".sqlite3", self.clock)
        self.addCleanup(stopSync, self.store)

    def makeServer(self, **changes: Any) -> Any:
        config = ServerConfig(**changes)
        return buildServer(config, reactor, self.store, clock=self.clock)

    def connect(self, server: Any, path: str = "/pub/chat") -> MemoryTerminal:
        term = MemoryTerminal(server.factory, path)
        self.assertEqual(term.status, b"HTTP/1.1 101 Switching Protocols")
        self.addCleanup(self.disconnect, term)
        return term

    def disconnect(self, term: MemoryTerminal) -> None:
        if not term.transport.disconnecting or term.protocol.state != term.protocol.STATE_CLOSED:
            term.protocol.connectionLost(Failure(ConnectionDone()))

    def logGap(self, sn: str) -> int:
        """The logs the watch has found missing for C{sn} (0: no gap, or no watch row yet)."""
        watch = fired(self.store.getWatch(sn))
        return 0 if watch is None else watch.logGap

    def registered(self, server: Any, sn: str = "S1") -> MemoryTerminal:
        term = self.connect(server)
        term.send(reg(sn))
        [reply] = term.messages()
        self.assertEqual((reply["ret"], reply["result"]), ("reg", True))
        return term

    def test_probeAfterSilenceThenDisconnect(self) -> None:
        server = self.makeServer(heartbeatInterval=30, connectionTimeout=120)
        term = self.registered(server)
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

    def test_answeringTheProbeKeepsTheTerminal(self) -> None:
        server = self.makeServer(heartbeatInterval=30, connectionTimeout=120)
        term = self.registered(server)
        for _ in range(10):  # 10 minutes, answering each probe
            self.clock.advance(30)
            self.assertEqual(term.messages(), [{"cmd": "gettime"}])
            term.send({"ret": "gettime", "sn": "S1", "time": "2024-01-15 10:00:00"})
        frames = term.frames()
        self.assertIsNone(term.closeCode(frames))
        self.assertEqual(server.context.registry.connected(), ["S1"])

    def test_neverSendsWebSocketPings(self) -> None:
        server = self.makeServer(heartbeatInterval=30, connectionTimeout=120)
        term = self.registered(server)
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
        transport = LenientTransport()
        proto = server.factory.buildProtocol(transport.getPeer())
        proto.makeConnection(transport)
        proto.dataReceived(b"GET /pub/chat HTTP/1.1\r\nHost: x\r\n")  # dribbles, never ends
        self.clock.advance(6)
        self.assertTrue(transport.disconnecting)

    def test_regHeartbeatIsCheap(self) -> None:
        server = self.makeServer()
        term = self.registered(server)
        first = fired(self.store.getTerminal("S1"))
        self.clock.advance(20)
        term.send(reg())
        [reply] = term.messages()
        self.assertIs(reply["result"], True)
        again = fired(self.store.getTerminal("S1"))
        self.assertEqual(first.lastSeen, again.lastSeen)  # no write for a heartbeat

    def test_floodPausesReading(self) -> None:
        server = self.makeServer(maxPendingMessages=8)
        term = self.registered(server)
        # the store takes its time: each batch waits until released, in order (before it
        # joins the ingest service's group commit)
        waiting: list[Deferred[None]] = []
        queue = server.context.ingest.queue
        addLogs = queue.submit

        def slowAddLogs(sn: str, records: Any) -> Deferred[Any]:
            d: Deferred[None] = Deferred()
            waiting.append(d)
            return d.addCallback(lambda _: addLogs(sn, records))

        queue.submit = slowAddLogs
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
        self.assertEqual(len(waiting), 1)  # one command handled at a time
        replies: list[Any] = []
        while waiting:
            waiting.pop(0).callback(None)
            replies.extend(term.messages())
        self.assertEqual([r["logindex"] for r in replies], list(range(20)))
        self.assertFalse(term.transport.paused)
        self.assertEqual(fired(self.store.countLogs("S1")), 20)

    def test_floodDoesNotDelayOthers(self) -> None:
        """
        While a flooding terminal's batches wait for the store (its socket paused), another
        terminal's commands are answered at once: connections never queue behind each other.
        """
        server = self.makeServer(maxPendingMessages=8)
        flooder = self.registered(server, "FLOOD")
        calm = self.registered(server, "CALM")
        held: list[Deferred[None]] = []
        queue = server.context.ingest.queue
        addLogs = queue.submit

        def floodWaits(sn: str, records: Any) -> Deferred[Any]:
            if sn != "FLOOD":
                return addLogs(sn, records)
            d: Deferred[None] = Deferred()
            held.append(d)
            return d.addCallback(lambda _: addLogs(sn, records))

        queue.submit = floodWaits
        for i in range(20):
            flooder.send(
                {
                    "cmd": "sendlog",
                    "count": 1,
                    "logindex": i,
                    "record": [{"enrollid": 1, "time": f"2024-01-15 10:00:{i:02d}"}],
                }
            )
        self.assertTrue(flooder.transport.paused)
        for i in range(10):
            calm.send(
                {
                    "cmd": "sendlog",
                    "count": 1,
                    "logindex": i,
                    "record": [{"enrollid": 2, "time": f"2024-01-15 11:00:{i:02d}"}],
                }
            )
            [ack] = calm.messages()  # answered before send() returned
            self.assertEqual((ack["logindex"], ack["result"]), (i, True))
        self.assertFalse(calm.transport.paused)
        self.assertEqual(flooder.messages(), [])
        while held:
            held.pop(0).callback(None)
        self.assertEqual([r["logindex"] for r in flooder.messages()], list(range(20)))
        self.assertEqual(fired(self.store.countLogs("FLOOD")), 20)
        self.assertEqual(fired(self.store.countLogs("CALM")), 10)

    def test_whitelistRefusal(self) -> None:
        server = self.makeServer(requireWhitelist=True)
        term = self.connect(server)
        term.send(reg("INTRUDER"))
        frames = term.frames()
        texts = [json.loads(p) for op, p in frames if op == 1]
        self.assertEqual(texts[0]["ret"], "reg")
        self.assertIs(texts[0]["result"], False)
        self.assertEqual(term.closeCode(frames), 4003)
        self.assertEqual(server.context.registry.connected(), [])
        pending = fired(self.store.listTerminals(False))
        self.assertEqual([t.sn for t in pending], ["INTRUDER"])

    def test_cloudtimeIsTheTerminalsLocalTime(self) -> None:
        self.clock.advance(1_700_000_000)  # 2023-11-14 22:13:20 UTC
        fired(self.store.createTerminal("TOKYO", None, True, "Asia/Tokyo"))
        server = self.makeServer(defaultTimezone="Africa/Kinshasa")
        tokyo = self.connect(server)
        tokyo.send(reg("TOKYO"))
        [reply] = tokyo.messages()
        self.assertEqual(reply["cloudtime"], "2023-11-15 07:13:20")
        other = self.connect(server)
        other.send(reg("KINSHASA"))
        [reply] = other.messages()
        self.assertEqual(reply["cloudtime"], "2023-11-14 23:13:20")
        other.send(
            {
                "cmd": "sendlog",
                "count": 1,
                "logindex": 3,
                "record": [{"enrollid": 1, "time": "2023-11-14 23:13:00"}],
            }
        )
        [ack] = other.messages()
        self.assertEqual(ack["cloudtime"], "2023-11-14 23:13:20")

    def test_gapFetchFollowsTheAck(self) -> None:
        """
        A jump in C{logindex} makes the watch fetch the missing logs (a C{getlog}): the batch's
        ack is written first.
        """
        server = self.makeServer()
        term = self.registered(server)
        term.send(sendlog(0, 2))
        [ack] = term.messages()
        self.assertEqual((ack["ret"], ack["result"]), ("sendlog", True))
        term.send(sendlog(10, 1, second=30))
        messages = term.messages()
        self.assertEqual(
            [(m.get("ret"), m.get("cmd")) for m in messages],
            [("sendlog", None), (None, "getalllog")],
        )
        self.assertEqual(self.logGap("S1"), 8)

    def test_refusedBatchIsNotCommittedForTheWatch(self) -> None:
        """
        Only a batch acknowledged C{result:true} counts in the C{logindex} sequence: a batch
        answered C{result:false} (not committed) neither moves it nor makes a gap.
        """
        server = self.makeServer()
        self.registered(server)
        watch = server.context.watch
        first = parseFrame(json.dumps(sendlog(0, 2)))
        jump = parseFrame(json.dumps(sendlog(10, 1, second=30)))
        watch.answered("S1", first, {"ret": "sendlog", "result": True})
        watch.answered("S1", jump, {"ret": "sendlog", "result": False})
        self.assertEqual(self.logGap("S1"), 0)
        watch.answered("S1", parseFrame(json.dumps(sendlog(2, 1, second=5))), {"result": True})
        self.assertEqual(self.logGap("S1"), 0)
        watch.answered("S1", jump, {"ret": "sendlog", "result": True})
        self.assertEqual(self.logGap("S1"), 7)
