"""
In-memory WebSocket plumbing for deterministic session tests: a lenient StringTransport, the
client side of the opening handshake, and a minimal RFC 6455 frame codec.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class LenientTransport(StringTransport):
    """autobahn calls unregisterProducer unconditionally when dropping a connection."""

    def __init__(self) -> None:
        super().__init__(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 7788),
            peerAddress=IPv4Address("TCP", "10.0.0.9", 40000),
        )
        self.paused = False

    def unregisterProducer(self) -> None:
        self.producer = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False


def handshake(path: str = "/pub/chat") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:7788\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def clientFrame(payload: bytes | Any, opcode: int = OP_TEXT) -> bytes:
    """A masked frame, as a client sends it."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    mask = os.urandom(4)
    n = len(data)
    header = bytes([0x80 | opcode])
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return header + mask + masked


def serverFrames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Decode unmasked server frames; returns the frames and the unconsumed rest."""
    frames = []
    while len(data) >= 2:
        opcode = data[0] & 0x0F
        n = data[1] & 0x7F
        offset = 2
        if n == 126:
            if len(data) < 4:
                break
            n = struct.unpack("!H", data[2:4])[0]
            offset = 4
        elif n == 127:
            if len(data) < 10:
                break
            n = struct.unpack("!Q", data[2:10])[0]
            offset = 10
        if len(data) < offset + n:
            break
        frames.append((opcode, data[offset : offset + n]))
        data = data[offset + n :]
    return frames, data


class MemoryTerminal:
    """One in-memory connection to a server protocol built by C{factory}."""

    def __init__(self, factory: Any, path: str = "/pub/chat") -> None:
        self.transport = LenientTransport()
        self.protocol = factory.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(handshake(path))
        head, _, rest = self.transport.value().partition(b"\r\n\r\n")
        self.status = head.split(b"\r\n", 1)[0]
        self.transport.clear()
        self._buffer = rest

    def send(self, frame: Any, opcode: int = OP_TEXT) -> None:
        self.protocol.dataReceived(clientFrame(frame, opcode))

    def frames(self) -> list[tuple[int, bytes]]:
        """Every frame the server wrote since the last call."""
        self._buffer += self.transport.value()
        self.transport.clear()
        frames, self._buffer = serverFrames(self._buffer)
        return frames

    def messages(self) -> list[Any]:
        """The JSON text messages the server wrote since the last call."""
        return [json.loads(p) for op, p in self.frames() if op == OP_TEXT]

    def lose(self) -> None:
        """The connection is lost (as the TCP peer going away), unless it is closed already."""
        if self.protocol.state != self.protocol.STATE_CLOSED:
            self.protocol.connectionLost(Failure(ConnectionDone()))

    def closeCode(self, frames: list[tuple[int, bytes]]) -> int | None:
        for op, payload in frames:
            if op == OP_CLOSE and len(payload) >= 2:
                return int(struct.unpack("!H", payload[:2])[0])
        return None
