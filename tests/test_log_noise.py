"""
What garbage from the network costs in the logs: one line, no traceback; and a terminal's path
secret in no log event at any level, whatever the spelling of its path.  Real loopback sockets.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.securitysupport import openRaw, startServerOn, until, wait
from tm20.redact import redactBytes, redactText
from tm20.terminal.protocol import RedactingLogger, splitSecretPath

TOKEN = "noise-token"


def handshake(path: str) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        (
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        ).encode("latin-1")
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )


def frame(opcode: int, payload: bytes, masked: bool = True, rsv: int = 0) -> bytes:
    head = bytes([0x80 | rsv | opcode])
    length = len(payload)
    bit = 0x80 if masked else 0
    head += (
        bytes([bit | length]) if length < 126 else bytes([bit | 126]) + struct.pack("!H", length)
    )
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Captured:
    """Every log event published while a test runs."""

    def __init__(self, testCase: TestCase) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        testCase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def since(self, mark: int, level: LogLevel = LogLevel.info) -> list[dict[str, Any]]:
        """The server's events from C{mark} on, at C{level} or above (not the test client's)."""
        return [
            e
            for e in self.events[mark:]
            if e.get("log_level", LogLevel.info) >= level
            and e.get("log_namespace") != "twisted.internet.protocol.Factory"
        ]

    def text(self, event: dict[str, Any]) -> str:
        return formatEvent(event)


class MalformedInputTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self) -> Any:
        # autobahn leaves its close-handshake timer running after the connection is gone
        self.running = yield startServerOn(self, apiTokens=(f"ops:{TOKEN}",), closeTimeout=0.3)
        self.port = self.running.ports[0]
        self.log = Captured(self)

    def assertOneLineNoTraceback(self, mark: int, *needles: str) -> None:
        events = self.log.since(mark)
        lines = [self.log.text(e) for e in events]
        self.assertEqual(len(events), 1, lines)
        for event in self.log.events[mark:]:
            self.assertNotIn("log_failure", event, self.log.text(event))
            self.assertNotIn("Traceback (most recent call last)", self.log.text(event))
        for needle in needles:
            self.assertIn(needle, lines[0])

    @inlineCallbacks
    def test_malformedFramesLogOneLineEach(self) -> Any:
        cases = [
            (frame(0x1, b"\xff\xfe{}"), "invalid UTF-8", 1007),
            (frame(0x1, b"{}", masked=False), "unmasked", 1002),
            (frame(0x1, b"{}", rsv=0x40), "RSV", 1002),
            (frame(0x3, b"{}"), "reserved opcode", 1002),
        ]
        for data, needle, code in cases:
            raw = yield openRaw(self, self.port)
            raw.send(handshake("/ws/tm20/"))
            yield until(lambda r=raw: b"\r\n\r\n" in r.received, "the handshake's answer")
            self.assertIn(b"101 Switching Protocols", raw.received)
            mark = len(self.log.events)
            # the bad frame, then more bytes that autobahn reads after failing
            raw.send(data + frame(0x1, b"\xc3"))
            yield raw.closed
            yield wait(0.1)
            self.assertOneLineNoTraceback(mark, needle, f"WebSocket code {code}")
        yield wait(0.4)

    @inlineCallbacks
    def test_invalidJSONLogsOneLineAndTheConnectionLives(self) -> Any:
        raw = yield openRaw(self, self.port)
        raw.send(handshake("/ws/tm20/"))
        yield until(lambda: b"101 Switching Protocols" in raw.received, "the upgrade")
        mark = len(self.log.events)
        raw.send(frame(0x1, b"{not json"))
        yield until(lambda: b'"ret"' in raw.received, "the reply")
        self.assertIn(b'"result":false', raw.received)
        self.assertIsNone(raw.closedAt)
        self.assertOneLineNoTraceback(mark, "invalid JSON")
        raw.abort()
        yield raw.closed
        yield wait(0.1)

    @inlineCallbacks
    def test_percentGarbageAPIPathIsOneLineAndJSON400(self) -> Any:
        for path in ("/api/terminals/%ff%fe/", "/api/%E0%A4%A/logs/", "/api/%c3"):
            raw = yield openRaw(self, self.port)
            mark = len(self.log.events)
            raw.send(
                f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
            )
            answer = yield raw.closed
            head, _, body = answer.partition(b"\r\n\r\n")
            self.assertIn(b" 400 ", head.split(b"\r\n")[0], path)
            if b"chunked" in head.lower():
                body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
            self.assertEqual(
                json.loads(body),
                {
                    "error": "invalid_path",
                    "detail": "the path is not UTF-8 (once percent-decoded)",
                    "field": "path",
                },
            )
            self.assertOneLineNoTraceback(mark, "path not UTF-8")

    @inlineCallbacks
    def test_nonUTF8HostIsOneLineAndJSON400(self) -> Any:
        raw = yield openRaw(self, self.port)
        mark = len(self.log.events)
        raw.send(
            b"GET /api/terminals/ HTTP/1.1\r\nHost: \xff\xfe\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = yield raw.closed
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertIn(b" 400 ", head.split(b"\r\n")[0])
        if b"chunked" in head.lower():
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        self.assertEqual(json.loads(body)["field"], "host")
        self.assertOneLineNoTraceback(mark, "host not UTF-8")

    @inlineCallbacks
    def test_percentGarbageTerminalPathLogsNoTraceback(self) -> Any:
        raw = yield openRaw(self, self.port)
        mark = len(self.log.events)
        raw.send(handshake("/%zz%ff/%E0%A4%A"))
        yield until(lambda: b"\r\n\r\n" in raw.received, "the handshake's answer")
        self.assertIn(b"101 Switching Protocols", raw.received)
        raw.send(frame(0x1, b'{"cmd":"reg","sn":"GARBAGE1","devinfo":{"modelname":"x"}}'))
        yield until(lambda: b'"ret"' in raw.received, "the reg reply")
        self.assertIn(b'"result":true', raw.received)
        for event in self.log.events[mark:]:
            self.assertNotIn("log_failure", event)
            self.assertLess(event["log_level"], LogLevel.warn, self.log.text(event))
        raw.abort()
        yield raw.closed
        yield wait(0.1)


#: Spellings of the path of a terminal whose secret is the value (case-insensitive).
SPELLINGS = {
    "/t/Pq1secretA": "Pq1secretA",
    "/t//Pq2secretB": "Pq2secretB",
    "/T/Pq3secretC": "Pq3secretC",
    "/%74/Pq4secretD": "Pq4secretD",
    "/%54/Pq5secretE": "Pq5secretE",
    "/t%2FPq6secretF": "Pq6secretF",
    "/t%2fPq7secretG": "Pq7secretG",
    "//t/Pq8secretH/": "Pq8secretH",
    "/t/Pq9secretI?x=1": "Pq9secretI",
    "/x/t/Pq10secretJ": "Pq10secretJ",
}


class PathSecretTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def test_secretInNoEventAtAnyLevelWhateverTheSpelling(self) -> Any:
        # debug: autobahn logs the raw opening handshake through the protocol's logger
        running = yield startServerOn(self, logLevel="debug", closeTimeout=0.3)
        log = Captured(self)
        for number, path in enumerate(SPELLINGS):
            raw = yield openRaw(self, running.ports[0])
            raw.send(handshake(path))
            yield until(lambda r=raw: b"\r\n\r\n" in r.received, "the handshake's answer")
            self.assertIn(b"101 Switching Protocols", raw.received, path)
            reg = {"cmd": "reg", "sn": f"SECRETPATH{number}", "devinfo": {"modelname": "x"}}
            raw.send(frame(0x1, json.dumps(reg).encode()))
            yield until(lambda r=raw: b'"ret"' in r.received, "the reg reply")
            # and a malformed frame, whose failure is logged with the connection's details
            raw.send(frame(0x1, b"\xff"))
            yield raw.closed
        yield wait(0.4)
        self.assertGreater(len(log.events), 20)
        for event in log.events:
            dump = (repr(event) + formatEvent(event)).lower()
            for secret in SPELLINGS.values():
                self.assertNotIn(secret.lower(), dump, formatEvent(event))


class RedactionTests(SynchronousTestCase):
    def test_everySpellingIsMasked(self) -> None:
        for path, secret in SPELLINGS.items():
            self.assertNotIn(secret, redactText(f"GET {path} HTTP/1.1"), path)
            self.assertNotIn(secret.encode(), redactBytes(f"GET {path} HTTP/1.1".encode()), path)
            shown, _ = splitSecretPath(path)
            self.assertNotIn(secret, shown, path)

    def test_otherPathsAreKept(self) -> None:
        for path in ("/ws/tm20/", "/pub/chat", "/", "/api/terminals/T1/", "/tm20/t"):
            self.assertEqual(redactText(f"on {path} now"), f"on {path} now")
            self.assertEqual(splitSecretPath(path), (path, None))
        self.assertEqual(splitSecretPath("/t/s3cret"), ("/t/***", "s3cret"))


class BoundLoggerTests(SynchronousTestCase):
    """A protocol's redacting logger is built once per instance, not at every read."""

    def test_builtOncePerInstance(self) -> None:
        class Owner:
            log = RedactingLogger()

        first, second = Owner(), Owner()
        self.assertIs(first.log, first.log)
        self.assertIs(first.log.source, first)
        self.assertIsNot(first.log, second.log)
        self.assertIs(second.log.source, second)
        self.assertEqual(first.log.namespace, f"{Owner.__module__}.{Owner.__name__}")
        self.assertIs(Owner.log.source, Owner)  # read on the class: nothing kept

    def test_stillRedacts(self) -> None:
        class Owner:
            log = RedactingLogger(observer=lambda event: seen.append(event))

        seen: list[dict[str, Any]] = []
        owner = Owner()
        owner.log.info("dialled {path}", path="/t/s3cret")
        owner.log.info("dialled {path}", path="/t/s3cret")
        self.assertEqual([formatEvent(e) for e in seen], ["dialled /t/***"] * 2)
