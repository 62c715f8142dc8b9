"""
A socket that has not registered: a small message limit, and no keep-alive probe.

Deterministic: in-memory transport, an injected C{Clock}, a real SQLite store that answers
synchronously (L{tests.syncstore}).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

from twisted.internet import reactor
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.memoryws import OP_TEXT, MemoryTerminal
from tests.syncstore import stopSync, syncSQLiteStore
from tm20.config import ServerConfig
from tm20.service import buildServer
from tm20.terminal.protocol import TerminalProtocol


def reg(sn: str = "S1") -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}}


def sendlog(sn: str, records: int) -> bytes:
    """A valid C{sendlog} frame of C{records} records (about 95 bytes each)."""
    record = {"enrollid": 1, "time": "2024-01-15 08:00:00", "mode": 1, "inout": 0, "event": 0}
    return json.dumps(
        {"cmd": "sendlog", "sn": sn, "count": records, "logindex": 0, "record": [record] * records}
    ).encode()


def frameHeader(length: int) -> bytes:
    """The header (and mask) of a masked text frame declaring C{length} payload bytes."""
    return bytes([0x80 | OP_TEXT, 0x80 | 127]) + struct.pack("!Q", length) + os.urandom(4)


class PreRegLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = syncSQLiteStore(self.mktemp() + ".sqlite3", self.clock)
        self.addCleanup(stopSync, self.store)
        self.parsed: list[bytes] = []
        original = TerminalProtocol.onMessage

        def spy(proto: TerminalProtocol, payload: bytes, isBinary: bool) -> None:
            self.parsed.append(payload)
            original(proto, payload, isBinary)

        self.patch(TerminalProtocol, "onMessage", spy)

    def connect(self, **changes: Any) -> MemoryTerminal:
        server = buildServer(ServerConfig(**changes), reactor, self.store, clock=self.clock)
        term = MemoryTerminal(server.factory)
        self.assertEqual(term.status, b"HTTP/1.1 101 Switching Protocols")
        self.addCleanup(self.disconnect, term)
        return term

    def disconnect(self, term: MemoryTerminal) -> None:
        if term.protocol.state != term.protocol.STATE_CLOSED:
            term.protocol.connectionLost(Failure(ConnectionDone()))

    def replies(self, term: MemoryTerminal) -> list[Any]:
        """What the server has written (the store answered before the frame was read)."""
        return term.messages()

    def test_bigFrameBeforeRegClosedWith1009Unread(self) -> None:
        term = self.connect()
        # Only the header of a 2.7 MB frame and its first bytes: refused at once, not buffered.
        term.protocol.dataReceived(frameHeader(2_700_000) + b'{"cmd":"sendlog","record":[')
        frames = term.frames()
        self.assertEqual(term.closeCode(frames), 1009)
        self.assertEqual(self.parsed, [])

    def test_limitIs16KiBBeforeReg(self) -> None:
        term = self.connect()
        self.assertEqual(term.protocol.maxMessagePayloadSize, 16 * 1024)
        term.send(b" " * (16 * 1024 + 1))
        self.assertEqual(term.closeCode(term.frames()), 1009)
        self.assertEqual(self.parsed, [])

    def test_smallFrameBeforeRegAnsweredAndConnectionLives(self) -> None:
        term = self.connect()
        term.send(sendlog("S1", 100))  # ~10 KB, under the limit: answered result:false
        [reply] = self.replies(term)
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", False))
        term.send(reg())
        [reply] = self.replies(term)
        self.assertEqual((reply["ret"], reply["result"]), ("reg", True))

    def test_fullLimitAfterReg(self) -> None:
        term = self.connect()
        term.send(reg())
        [reply] = self.replies(term)
        self.assertIs(reply["result"], True)
        self.assertEqual(term.protocol.maxMessagePayloadSize, 4 * 1024 * 1024)
        big = sendlog("S1", 20_000)  # ~1.9 MB
        self.assertGreater(len(big), 1_000_000)
        term.send(big)
        [reply] = self.replies(term)
        self.assertEqual((reply["ret"], reply["result"]), ("sendlog", True))
        self.assertIsNone(term.closeCode(term.frames()))

    def test_configuredLimitNeverAboveMaxMessageSize(self) -> None:
        term = self.connect(maxPreRegMessageSize=64 * 1024, maxMessageSize=32 * 1024)
        self.assertEqual(term.protocol.maxMessagePayloadSize, 32 * 1024)
        term = self.connect(maxPreRegMessageSize=0)
        self.assertEqual(term.protocol.maxMessagePayloadSize, 4 * 1024 * 1024)


class NoProbeBeforeRegTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.store = syncSQLiteStore(self.mktemp() + ".sqlite3", self.clock)
        self.addCleanup(stopSync, self.store)

    def test_unregisteredSocketIsNotProbed(self) -> None:
        server = buildServer(
            ServerConfig(heartbeatInterval=30, connectionTimeout=120, regTimeout=60),
            reactor,
            self.store,
            clock=self.clock,
        )
        term = MemoryTerminal(server.factory)
        self.addCleanup(term.protocol.connectionLost, Failure(ConnectionDone()))
        self.clock.advance(59)
        self.assertEqual(term.frames(), [])  # no gettime at 30 s
        self.clock.advance(1)
        self.assertEqual(term.closeCode(term.frames()), 4004)  # the reg deadline still applies
