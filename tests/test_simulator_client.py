"""
Tests for L{tm20.simulator.client}: the simulated terminal over real loopback WebSockets.

The server here is a tiny autobahn server written for these tests (not tm20's): it records every
frame, acks C{reg}, C{sendlog} and C{senduser}, and can be told to withhold acks, drop the
connection after the Nth C{sendlog} or send commands.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stderr
from typing import Any, cast

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tm20.simulator.__main__ import parseArgs, serialNumbers
from tm20.simulator.client import ReactorTimer, TerminalConnection
from tm20.simulator.device import SimulatedTerminal

Frame = dict[str, Any]


def logKey(sn: str, record: Frame) -> tuple[Any, ...]:
    """
    The dedupe key of a log record (protocol notes section 7).
    """
    return (
        sn,
        record["enrollid"],
        record["time"],
        record["mode"],
        record["inout"],
        record["event"],
    )


@inlineCallbacks
def waitUntil(predicate: Callable[[], bool], interval: float = 0.01) -> Any:
    """
    Poll C{predicate} (for conditions on the client side, which the server does not see).
    """
    while not predicate():
        yield deferLater(reactor, interval, lambda: None)


class RecordingServerProtocol(WebSocketServerProtocol):
    server: FakeServer

    def onConnect(self, request: Any) -> None:
        self.server.paths.append(request.path)

    def onOpen(self) -> None:
        self.server.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.server.received(self, json.loads(payload.decode("utf-8")))

    def onPong(self, payload: bytes) -> None:
        self.server.pongs += 1

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.server.closed(self)

    def send(self, frame: Frame) -> None:
        if self.state == self.STATE_OPEN:
            self.sendMessage(json.dumps(frame).encode("utf-8"))


class RecordingServerFactory(WebSocketServerFactory):
    protocol = RecordingServerProtocol
    noisy = False

    def __init__(self, server: FakeServer) -> None:
        super().__init__()
        self.server = server
        self._batched_timer = ReactorTimer(reactor)

    def buildProtocol(self, addr: Any) -> RecordingServerProtocol:
        proto = cast(RecordingServerProtocol, super().buildProtocol(addr))
        proto.server = self.server
        return proto


def listen(server: FakeServer, portNumber: int = 0) -> tuple[IListeningPort, int]:
    """
    Serve C{server} on 127.0.0.1.

    @return: the listening port and its number.
    """
    port = reactor.listenTCP(portNumber, RecordingServerFactory(server), interface="127.0.0.1")
    return port, cast(IPv4Address, port.getHost()).port


class FakeServer:
    """
    A minimal terminal server that records everything.

    @ivar ackReg: answer C{reg}.
    @ivar ignoreSendlogs: how many upcoming C{sendlog} frames to leave unanswered (connection kept).
    @ivar ignoreSendusers: likewise for C{senduser}.
    @ivar dropAtSendlog: drop the connection, without acking, on receiving the C{sendlog} with this
        ordinal (1-based, over all connections); used once.
    @ivar ackDelay: seconds between receiving a C{sendlog} and acking it.
    @ivar onRegistered: called with the protocol after each C{reg} ack.
    """

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.paths: list[bytes | str] = []
        self.connections: list[RecordingServerProtocol] = []
        self.open: list[RecordingServerProtocol] = []
        self.logRecords: Counter[tuple[Any, ...]] = Counter()
        self.pongs = 0
        self.ackReg = True
        self.ignoreSendlogs = 0
        self.ignoreSendusers = 0
        self.dropAtSendlog: int | None = None
        self.ackDelay = 0.0
        self.onRegistered: Callable[[RecordingServerProtocol], None] | None = None
        self.sendlogCount = 0
        self.outstanding = 0
        self.maxOutstanding = 0
        self._delayed: list[IDelayedCall] = []
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    # events

    def opened(self, proto: RecordingServerProtocol) -> None:
        self.connections.append(proto)
        self.open.append(proto)
        self._check()

    def closed(self, proto: RecordingServerProtocol) -> None:
        if proto in self.open:
            self.open.remove(proto)
        self._check()

    def received(self, proto: RecordingServerProtocol, frame: Frame) -> None:
        self.frames.append(frame)
        cmd = frame.get("cmd")
        if cmd == "reg":
            if self.ackReg:
                proto.send(
                    {
                        "ret": "reg",
                        "result": True,
                        "cloudtime": "2026-04-30 11:59:38",
                        "nosenduser": False,
                    }
                )
                if self.onRegistered is not None:
                    self.onRegistered(proto)
        elif cmd == "sendlog":
            self.sendlogCount += 1
            for record in frame["record"]:
                self.logRecords[logKey(frame["sn"], record)] += 1
            if self.dropAtSendlog == self.sendlogCount:
                self.dropAtSendlog = None
                assert proto.transport is not None
                proto.transport.loseConnection()
            elif self.ignoreSendlogs > 0:
                self.ignoreSendlogs -= 1
            else:
                self.outstanding += 1
                self.maxOutstanding = max(self.maxOutstanding, self.outstanding)
                ack = {
                    "ret": "sendlog",
                    "result": True,
                    "count": frame["count"],
                    "logindex": frame["logindex"],
                    "cloudtime": "2026-04-30 12:00:00",
                }
                if self.ackDelay:
                    self._delayed.append(reactor.callLater(self.ackDelay, self._ack, proto, ack))
                else:
                    self._ack(proto, ack)
        elif cmd == "senduser":
            if self.ignoreSendusers > 0:
                self.ignoreSendusers -= 1
            else:
                proto.send({"ret": "senduser", "result": True, "cloudtime": "2026-04-30 12:00:00"})
        self._check()

    def _ack(self, proto: RecordingServerProtocol, ack: Frame) -> None:
        self.outstanding -= 1
        proto.send(ack)

    # queries

    def named(self, name: str) -> list[Frame]:
        return [f for f in self.frames if f.get("cmd") == name or f.get("ret") == name]

    def when(self, predicate: Callable[[], bool]) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if predicate():
            waiter.callback(None)
        else:
            self._waiters.append((predicate, waiter))
        return waiter

    def _check(self) -> None:
        ready = [(p, d) for p, d in self._waiters if p()]
        self._waiters = [(p, d) for p, d in self._waiters if (p, d) not in ready]
        for _, waiter in ready:
            waiter.callback(None)

    def cancelDelayed(self) -> None:
        for call in self._delayed:
            if call.active():
                call.cancel()


class SimulatorClientTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.server = FakeServer()
        self.port, self.portNumber = listen(self.server)
        self.url = f"ws://127.0.0.1:{self.portNumber}/pub/chat"
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self.server.cancelDelayed)

    def connect(self, terminal: SimulatedTerminal, **kwargs: Any) -> TerminalConnection:
        kwargs.setdefault("retryPolicy", lambda attempt: 0.05)
        connection = TerminalConnection(terminal, self.url, reactor=reactor, **kwargs)
        self.addCleanup(self.closeAll, connection)
        connection.start()
        return connection

    @inlineCallbacks
    def closeAll(self, connection: TerminalConnection) -> Any:
        yield connection.disconnect()
        yield self.server.when(lambda: not self.server.open)

    @inlineCallbacks
    def test_registers(self) -> Any:
        terminal = SimulatedTerminal("ZYTI25116685", users=2, logs=0, seed=1)
        connection = self.connect(terminal)
        yield connection.whenRegistered()
        self.assertTrue(connection.registered)
        self.assertEqual(
            [b"/pub/chat"], [p.encode() if isinstance(p, str) else p for p in self.server.paths]
        )
        reg = self.server.frames[0]
        self.assertEqual(("reg", "ZYTI25116685"), (reg["cmd"], reg["sn"]))
        self.assertEqual(2, reg["devinfo"]["useduser"])
        self.assertNotIn("cpusn", reg)
        self.assertEqual(
            (1, 0, 1, 1),
            (
                connection.stats.connections,
                connection.stats.reconnects,
                connection.stats.regsSent,
                connection.stats.regAcks,
            ),
        )
        # the terminal took the server's cloudtime
        self.assertTrue(terminal.timeString().startswith("2026-04-30 11:59"))
        # nothing to upload: whenAllLogsAcknowledged fires at once
        yield connection.whenAllLogsAcknowledged()

    @inlineCallbacks
    def test_uploads1000LogsOneBatchInFlight(self) -> Any:
        """
        1000 stored logs go up in 100 batches of 10, each sent only after the previous ack (the
        server delays its acks, so a pipelining client would be caught).
        """
        self.server.ackDelay = 0.002
        terminal = SimulatedTerminal("SIM000001", users=50, logs=1000, seed=2)
        expected = [logKey("SIM000001", e.record()) for e in terminal.logs]
        connection = self.connect(terminal, batchSize=10)
        yield connection.whenAllLogsAcknowledged()
        sendlogs = self.server.named("sendlog")
        self.assertEqual(100, len(sendlogs))
        self.assertEqual(list(range(0, 1000, 10)), [f["logindex"] for f in sendlogs])
        self.assertEqual({10}, {f["count"] for f in sendlogs})
        self.assertEqual({10}, {len(f["record"]) for f in sendlogs})
        self.assertEqual(1, self.server.maxOutstanding)
        received = [logKey(f["sn"], r) for f in sendlogs for r in f["record"]]
        self.assertEqual(expected, received)
        stats = connection.stats
        self.assertEqual(
            (100, 100, 1000, 0, 0),
            (
                stats.batchesSent,
                stats.acksReceived,
                stats.logsAcknowledged,
                stats.resends,
                stats.reconnects,
            ),
        )
        self.assertEqual(100, len(stats.ackLatencies))
        self.assertTrue(all(latency >= 0.001 for latency in stats.ackLatencies))
        self.assertEqual(0, terminal.pendingLogCount())

    @inlineCallbacks
    def test_serverDropBeforeAckResendsAfterReconnect(self) -> Any:
        """
        The server drops the connection on the third batch without acking: the terminal
        reconnects, registers again and resends that very batch; the server ends with every log,
        and the only duplicates are that batch's records.
        """
        self.server.dropAtSendlog = 3
        terminal = SimulatedTerminal("SIM000002", users=10, logs=100, seed=3)
        expected = {logKey("SIM000002", e.record()) for e in terminal.logs}
        connection = self.connect(terminal)
        yield connection.whenAllLogsAcknowledged()
        sendlogs = self.server.named("sendlog")
        self.assertEqual(
            [0, 10, 20, 20, 30, 40, 50, 60, 70, 80, 90], [f["logindex"] for f in sendlogs]
        )
        self.assertEqual(sendlogs[2], sendlogs[3])
        self.assertEqual(expected, set(self.server.logRecords))
        duplicates = {k for k, n in self.server.logRecords.items() if n > 1}
        self.assertEqual({logKey("SIM000002", r) for r in sendlogs[2]["record"]}, duplicates)
        self.assertEqual({2}, {self.server.logRecords[k] for k in duplicates})
        self.assertEqual(2, len(self.server.named("reg")))
        stats = connection.stats
        self.assertEqual(
            (1, 1, 2, 10, 100),
            (
                stats.resends,
                stats.reconnects,
                stats.connections,
                stats.acksReceived,
                stats.logsAcknowledged,
            ),
        )

    @inlineCallbacks
    def test_dropNextAckResendsWithoutLoss(self) -> Any:
        """
        C{dropNextAck}: the terminal closes its socket right after sending a batch, so the server
        stores the batch but the ack is lost; the batch is resent after the reconnect.
        """
        terminal = SimulatedTerminal("SIM000003", users=10, logs=50, seed=4)
        expected = {logKey("SIM000003", e.record()) for e in terminal.logs}
        connection = self.connect(terminal)
        connection.dropNextAck = 2
        yield connection.whenAllLogsAcknowledged()
        sendlogs = self.server.named("sendlog")
        self.assertEqual([0, 0, 0, 10, 20, 30, 40], [f["logindex"] for f in sendlogs])
        self.assertEqual(expected, set(self.server.logRecords))
        self.assertEqual(50 + 20, sum(self.server.logRecords.values()))
        stats = connection.stats
        self.assertEqual(
            (2, 2, 2, 3, 0),
            (
                stats.resends,
                stats.drops,
                stats.reconnects,
                stats.connections,
                connection.dropNextAck,
            ),
        )

    @inlineCallbacks
    def test_ackTimeoutResendsOnSameConnection(self) -> Any:
        self.server.ignoreSendlogs = 1
        terminal = SimulatedTerminal("SIM000004", users=3, logs=15, seed=5)
        connection = self.connect(terminal, ackTimeout=0.1)
        yield connection.whenAllLogsAcknowledged()
        self.assertEqual([0, 0, 10], [f["logindex"] for f in self.server.named("sendlog")])
        self.assertEqual(
            (1, 1, 0),
            (connection.stats.resends, connection.stats.connections, connection.stats.reconnects),
        )

    @inlineCallbacks
    def test_ackTimeoutReconnects(self) -> Any:
        """
        With C{reconnectOnAckTimeout} (what TopData readers do) the terminal drops the connection
        and resends after reconnecting.
        """
        self.server.ignoreSendlogs = 1
        terminal = SimulatedTerminal("SIM000005", users=3, logs=5, seed=5)
        connection = self.connect(terminal, ackTimeout=0.1, reconnectOnAckTimeout=True)
        yield connection.whenAllLogsAcknowledged()
        self.assertEqual([0, 0], [f["logindex"] for f in self.server.named("sendlog")])
        self.assertEqual(
            (1, 2, 1),
            (connection.stats.resends, connection.stats.connections, connection.stats.reconnects),
        )

    @inlineCallbacks
    def test_regResentUntilAnswered(self) -> Any:
        """
        An unanswered C{reg} is sent again every C{regRetry} seconds on the same connection, and
        no log is uploaded before registration.
        """
        self.server.ackReg = False
        terminal = SimulatedTerminal("SIM000006", users=3, logs=5, seed=6)
        connection = self.connect(terminal, regRetry=0.1)
        yield self.server.when(lambda: len(self.server.named("reg")) >= 3)
        self.assertFalse(connection.registered)
        self.assertEqual([], self.server.named("sendlog"))
        self.assertEqual(1, len(self.server.connections))
        self.assertGreaterEqual(connection.stats.regResends, 2)
        self.server.ackReg = True
        yield connection.whenRegistered()
        yield connection.whenAllLogsAcknowledged()
        self.assertEqual(1, len(self.server.connections))
        self.assertEqual(1, connection.stats.regAcks)

    @inlineCallbacks
    def test_heartbeat(self) -> Any:
        terminal = SimulatedTerminal("SIM000007", seed=7)
        connection = self.connect(terminal, heartbeat=0.05)
        yield self.server.when(lambda: len(self.server.named("reg")) >= 4)
        self.assertEqual(1, len(self.server.connections))
        self.assertEqual(0, connection.stats.regResends)
        self.assertGreaterEqual(connection.stats.regAcks, 3)

    @inlineCallbacks
    def test_answersServerCommand(self) -> Any:
        terminal = SimulatedTerminal("SIM000008", users=3, logs=0, seed=8)
        self.server.onRegistered = lambda proto: proto.send(
            {"cmd": "getuserinfo", "enrollid": 1, "backupnum": 0}
        )
        connection = self.connect(terminal)
        yield self.server.when(lambda: bool(self.server.named("getuserinfo")))
        reply = self.server.named("getuserinfo")[0]
        self.assertEqual(
            {
                "ret": "getuserinfo",
                "sn": "SIM000008",
                "result": True,
                "enrollid": 1,
                "name": "User 1",
                "backupnum": 0,
                "admin": 1,
                "record": terminal.users[1].credentials[0],
            },
            reply,
        )
        self.assertEqual(1, connection.stats.commandsAnswered)

    @inlineCallbacks
    def test_unknownCommandAnswered(self) -> Any:
        terminal = SimulatedTerminal("SIM000009", seed=9)
        self.server.onRegistered = lambda proto: proto.send({"cmd": "selfdestruct"})
        self.connect(terminal)
        yield self.server.when(lambda: bool(self.server.named("selfdestruct")))
        self.assertEqual(
            {"ret": "selfdestruct", "sn": "SIM000009", "result": False, "reason": 1},
            self.server.named("selfdestruct")[0],
        )

    @inlineCallbacks
    def test_rebootReconnects(self) -> Any:
        terminal = SimulatedTerminal("SIM000010", users=2, logs=0, seed=10)
        sent: list[bool] = []

        def reboot(proto: RecordingServerProtocol) -> None:
            if not sent:
                sent.append(True)
                proto.send({"cmd": "reboot"})

        self.server.onRegistered = reboot
        connection = self.connect(terminal, rebootDelay=0.1)
        yield self.server.when(
            lambda: len(self.server.connections) == 2 and len(self.server.named("reg")) == 2
        )
        yield connection.whenRegistered()
        self.assertEqual([], self.server.named("reboot"))
        self.assertEqual(
            (1, 1, 1), (connection.stats.reboots, connection.stats.reconnects, terminal.reboots)
        )

    @inlineCallbacks
    def test_pingsIgnoredByDefault(self) -> Any:
        """
        The server pings, then sends C{gettime}: the C{gettime} reply arrives with no pong before
        it, so the ping was ignored (a pong would have been sent first).
        """
        terminal = SimulatedTerminal("SIM000011", seed=11)

        def probe(proto: RecordingServerProtocol) -> None:
            proto.sendPing(b"probe")
            proto.send({"cmd": "gettime"})

        self.server.onRegistered = probe
        connection = self.connect(terminal)
        yield self.server.when(lambda: bool(self.server.named("gettime")))
        self.assertEqual(0, self.server.pongs)
        self.assertEqual(1, connection.stats.pingsIgnored)
        self.assertEqual({"ret", "sn", "time"}, set(self.server.named("gettime")[0]))

    @inlineCallbacks
    def test_pingsAnsweredOnRequest(self) -> Any:
        terminal = SimulatedTerminal("SIM000012", seed=12)

        def probe(proto: RecordingServerProtocol) -> None:
            proto.sendPing(b"probe")
            proto.send({"cmd": "gettime"})

        self.server.onRegistered = probe
        connection = self.connect(terminal, answerPings=True)
        yield self.server.when(lambda: bool(self.server.named("gettime")))
        self.assertEqual(1, self.server.pongs)
        self.assertEqual(0, connection.stats.pingsIgnored)

    @inlineCallbacks
    def test_senduserResentUntilAcked(self) -> Any:
        self.server.ignoreSendusers = 1
        terminal = SimulatedTerminal("SIM000013", seed=13)
        connection = self.connect(terminal, userAckTimeout=0.1)
        yield connection.whenRegistered()
        frame = connection.enrollUser(42, name="Ann", backupnum=11, record=2352253)
        yield waitUntil(lambda: connection.stats.userAcks == 1)
        self.assertEqual([frame, frame], self.server.named("senduser"))
        self.assertEqual(2, connection.stats.usersSent)
        self.assertIsNone(terminal.nextSendUser())

    @inlineCallbacks
    def test_punchIsUploaded(self) -> Any:
        terminal = SimulatedTerminal("SIM000014", users=3, logs=0, seed=14)
        connection = self.connect(terminal)
        yield connection.whenRegistered()
        entry = connection.punch(2, mode=1)
        assert entry is not None
        yield connection.whenAllLogsAcknowledged()
        yield self.server.when(lambda: bool(self.server.named("sendlog")))
        self.assertEqual([entry.record()], self.server.named("sendlog")[0]["record"])

    @inlineCallbacks
    def test_disconnectStopsReconnecting(self) -> Any:
        terminal = SimulatedTerminal("SIM000015", seed=15)
        connection = self.connect(terminal)
        yield connection.whenRegistered()
        yield connection.disconnect()
        self.assertFalse(connection.connected)
        yield self.server.when(lambda: not self.server.open)
        yield deferLater(reactor, 0.3, lambda: None)
        self.assertEqual(1, len(self.server.connections))
        self.assertEqual(0, connection.stats.reconnects)

    @inlineCallbacks
    def test_reconnectsWhenServerComesBack(self) -> Any:
        """
        With nothing listening the terminal keeps retrying; it connects once a server listens.
        """
        yield self.port.stopListening()
        terminal = SimulatedTerminal("SIM000016", users=1, logs=3, seed=16)
        connection = self.connect(terminal)
        yield deferLater(reactor, 0.3, lambda: None)
        self.assertGreaterEqual(connection.stats.connectFailures, 2)
        port, _ = listen(self.server, self.portNumber)
        self.addCleanup(port.stopListening)
        yield connection.whenAllLogsAcknowledged()
        self.assertEqual(1, connection.stats.connections)


class CommandLineTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_runsUntilUploaded(self) -> Any:
        """
        C{python -m tm20.simulator} with two terminals uploads every log and exits 0 with a
        summary on stderr and nothing on stdout.
        """
        server = FakeServer()
        port, portNumber = listen(server)
        self.addCleanup(port.stopListening)
        url = f"ws://127.0.0.1:{portNumber}/pub/chat"
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out, err, code = yield getProcessOutputAndValue(
            sys.executable,
            [
                "-m",
                "tm20.simulator",
                "--url",
                url,
                "--sn",
                "CLI0098",
                "--count",
                "2",
                "--logs",
                "25",
                "--batch-size",
                "7",
                "--until-uploaded",
                "--duration",
                "30",
            ],
            env={**os.environ, "PYTHONPATH": root},
            path=root,
        )
        yield server.when(lambda: not server.open)
        self.assertEqual((b"", 0), (out, code), err.decode())
        self.assertEqual({"CLI0098", "CLI0099"}, {f["sn"] for f in server.named("reg")})
        self.assertEqual(50, len(server.logRecords))
        self.assertIn(b"summary: 2/2 registered, 50 logs acknowledged", err)


class CommandLineParsingTests(SynchronousTestCase):
    def test_serialNumbers(self) -> None:
        self.assertEqual(["SIM000001"], serialNumbers("SIM000001", 1))
        self.assertEqual(["SIM000001", "SIM000002", "SIM000003"], serialNumbers("SIM000001", 3))
        self.assertEqual(["ZX0990", "ZX0991"], serialNumbers("ZX0990", 2))
        self.assertEqual(["A99", "A100"], serialNumbers("A99", 2))
        self.assertEqual(["LAB000001", "LAB000002"], serialNumbers("LAB", 2))
        self.assertRaises(ValueError, serialNumbers, "X", 0)

    def test_defaults(self) -> None:
        options = parseArgs([])
        self.assertEqual(
            (
                "ws://127.0.0.1:7788/pub/chat",
                "SIM000001",
                1,
                10,
                100,
                10,
                0,
                0.0,
                0.0,
                "info",
                False,
            ),
            (
                options.url,
                options.sn,
                options.count,
                options.users,
                options.logs,
                options.batch_size,
                options.seed,
                options.punch_interval,
                options.duration,
                options.log_level,
                options.answer_pings,
            ),
        )

    def test_options(self) -> None:
        options = parseArgs(
            [
                "--url",
                "wss://example.com:443/x",
                "--count",
                "5",
                "--batch-size",
                "3",
                "--punch-interval",
                "2.5",
                "--duration",
                "60",
                "--paging-style",
                "th900",
                "--page-size",
                "10",
            ]
        )
        self.assertEqual(
            ("wss://example.com:443/x", 5, 3, 2.5, 60.0, "th900", 10),
            (
                options.url,
                options.count,
                options.batch_size,
                options.punch_interval,
                options.duration,
                options.paging_style,
                options.page_size,
            ),
        )
        self.assertIsNone(parseArgs([]).page_size)

    def test_rejected(self) -> None:
        for argv in (
            ["--count", "0"],
            ["--batch-size", "0"],
            ["--page-size", "0"],
            ["--logs", "-1"],
            ["--duration", "-2"],
            ["--log-level", "loud"],
        ):
            with redirect_stderr(io.StringIO()):
                self.assertRaises(SystemExit, parseArgs, argv)
