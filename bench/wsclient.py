"""
A lean WebSocket client (RFC 6455) for the load generator: the opening handshake, masked text
frames out, unmasked frames in, close and ping handled, nothing else (no extensions, no
fragmentation sent; fragmented messages received are reassembled).

autobahn's client protocol carries far more state and per-frame work than a load generator with
thousands of sockets can afford; this one keeps a buffer and a few attributes per connection.
The frames it sends are ordinary masked frames (a random mask per frame), so the server does the
same work as for a real terminal.
"""

from __future__ import annotations

import base64
import os
import random
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_rand = random.Random()


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR C{payload} with the 4-byte C{key} repeated (RFC 6455 section 5.3)."""
    n = len(payload)
    if n == 0:
        return payload
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keystream, "little")).to_bytes(
        n, "little"
    )


def encodeFrame(payload: bytes, opcode: int = OP_TEXT, key: bytes | None = None) -> bytes:
    """A final, masked client frame carrying C{payload}."""
    if key is None:
        key = _rand.randbytes(4)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + key + mask(payload, key)


def decodeFrames(buffer: bytearray) -> list[tuple[bool, int, bytes]]:
    """
    Take every complete frame off the front of C{buffer} (server frames: unmasked, but a masked
    one is unmasked too).

    @return: C{(fin, opcode, payload)} for each frame, in order.
    """
    frames: list[tuple[bool, int, bytes]] = []
    pos = 0
    size = len(buffer)
    while size - pos >= 2:
        b0 = buffer[pos]
        b1 = buffer[pos + 1]
        length = b1 & 0x7F
        offset = pos + 2
        if length == 126:
            if size - offset < 2:
                break
            (length,) = struct.unpack_from("!H", buffer, offset)
            offset += 2
        elif length == 127:
            if size - offset < 8:
                break
            (length,) = struct.unpack_from("!Q", buffer, offset)
            offset += 8
        key = None
        if b1 & 0x80:
            if size - offset < 4:
                break
            key = bytes(buffer[offset : offset + 4])
            offset += 4
        if size - offset < length:
            break
        payload = bytes(buffer[offset : offset + length])
        if key is not None:
            payload = mask(payload, key)
        frames.append((bool(b0 & 0x80), b0 & 0x0F, payload))
        pos = offset + length
    if pos:
        del buffer[:pos]
    return frames


class HandshakeFailed(Exception):
    """The server did not answer the upgrade with 101."""


class LeanWebSocket(Protocol):
    """
    One client WebSocket.  The owner gives callbacks: C{onOpen()}, C{onMessage(bytes)},
    C{onClose(reason)} (once, whatever ended the connection: a handshake failure, a close frame,
    a lost socket).
    """

    def __init__(
        self,
        host: str,
        path: str,
        onOpen: Callable[[], Any],
        onMessage: Callable[[bytes], Any],
        onClose: Callable[[str], Any],
    ) -> None:
        self._host = host
        self._path = path
        self._onOpen = onOpen
        self._onMessage = onMessage
        self._onClose = onClose
        self._buffer = bytearray()
        self._fragments: list[bytes] | None = None
        self.open = False
        self._closeReason: str | None = None
        self._ended = False

    def connectionMade(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.transport.write(
            (
                f"GET {self._path} HTTP/1.1\r\n"
                f"Host: {self._host}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode("ascii")
        )

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > 16384:
                    self._fail("oversized handshake response")
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            if b" 101 " not in status + b" ":
                self._fail(f"handshake refused: {status.decode('latin-1')}")
                return
            del buffer[: end + 4]
            self.open = True
            self._onOpen()
            if not buffer:
                return
        for fin, opcode, payload in decodeFrames(buffer):
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if fin:
                    self._onMessage(payload)
                else:
                    self._fragments = [payload]
            elif opcode == OP_CONTINUATION and self._fragments is not None:
                self._fragments.append(payload)
                if fin:
                    whole = b"".join(self._fragments)
                    self._fragments = None
                    self._onMessage(whole)
            elif opcode == OP_PING:
                self.transport.write(encodeFrame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._closeReason = f"closed by server ({code})"
                if self.transport is not None:
                    self.transport.write(encodeFrame(payload[:2], OP_CLOSE))
                    self.transport.loseConnection()
                return

    def send(self, payload: bytes) -> bool:
        """Send a text message; C{False} when the connection is not open."""
        if not self.open or self.transport is None:
            return False
        self.transport.write(encodeFrame(payload))
        return True

    def abort(self) -> None:
        """Drop the socket at once, as a terminal losing power or its network."""
        if self.transport is not None:
            self._closeReason = self._closeReason or "aborted"
            self.transport.abortConnection()

    def _fail(self, reason: str) -> None:
        self._closeReason = reason
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.open = False
        if self._ended:
            return
        self._ended = True
        why = self._closeReason
        if why is None:
            why = "connection lost" if reason is None else f"lost: {reason.getErrorMessage()}"
        self._onClose(why)


__all__ = [
    "HandshakeFailed",
    "LeanWebSocket",
    "decodeFrames",
    "encodeFrame",
    "mask",
]
