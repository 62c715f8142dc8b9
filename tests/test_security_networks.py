"""
Where terminals may connect from (C{--terminal-networks}), reverse proxies
(C{--trusted-proxies}), the connection caps' options, and the pure helpers behind them.
"""

from __future__ import annotations

from typing import Any

import treq
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.securitysupport import connectWS, openRaw, registerOn, startServerOn
from tm20.protocol.parser import countJSONValues
from tm20.tap import Options
from tm20.terminal.limits import (
    ConnectionLimiter,
    NetworkList,
    forwardedClient,
    hostOf,
)


def parse(argv: list[str], env: dict[str, str] | None = None) -> Options:
    o = Options(environ=env or {})
    o.parseOptions(argv)
    return o


class TerminalNetworkTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def test_terminalsOnlyFromTheirNetworksAPIUnaffected(self) -> Any:
        running = yield startServerOn(self, terminalNetworks=("127.0.0.2/32", "10.0.0.0/8"))
        # From 127.0.0.1 (not listed): the upgrade is refused with 403.
        raw = yield openRaw(self, running.port)
        raw.send(
            b"GET /pub/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        received = yield raw.closed
        self.assertTrue(received.startswith(b"HTTP/1.1 403"), received)
        # From 127.0.0.2 (listed): a terminal like any other.
        client = yield connectWS(self, running.port, bindAddress="127.0.0.2")
        reply = yield registerOn(client, "NET1", cpusn="N")
        self.assertIs(reply["result"], True)
        # The API still answers 127.0.0.1.
        response = yield treq.get(f"http://127.0.0.1:{running.port}/health", persistent=False)
        self.assertEqual(response.code, 200)
        yield response.content()
        self.assertEqual(running.context.registry.connected(), ["NET1"])

    @inlineCallbacks
    def test_trustedProxyForwardsTheClientAddress(self) -> Any:
        running = yield startServerOn(
            self, terminalNetworks=("10.1.0.0/16",), trustedProxies=("127.0.0.1/32",)
        )
        client = yield connectWS(self, running.port, headers={"X-Forwarded-For": "10.1.2.3"})
        reply = yield registerOn(client, "PROXIED", cpusn="P")
        self.assertIs(reply["result"], True)
        session = running.context.registry.get("PROXIED")
        self.assertEqual(session.peerHost, "10.1.2.3")
        # The same header from an untrusted peer is ignored.
        d = connectWS(
            self, running.port, bindAddress="127.0.0.2", headers={"X-Forwarded-For": "10.1.2.3"}
        )
        yield self.assertFailure(d, ConnectionError)


class HelperTests(SynchronousTestCase):
    def test_networkList(self) -> None:
        nets = NetworkList(["10.0.0.0/8", " 192.168.1.7 ", "2001:db8::/32", ""])
        self.assertTrue(nets.contains("10.200.3.4"))
        self.assertTrue(nets.contains("192.168.1.7"))
        self.assertFalse(nets.contains("192.168.1.8"))
        self.assertTrue(nets.contains("::ffff:10.1.1.1"))  # IPv4-mapped
        self.assertTrue(nets.contains("2001:db8::1"))
        self.assertFalse(nets.contains("not an address"))
        self.assertTrue(NetworkList().allows("1.2.3.4"))
        self.assertFalse(NetworkList().contains("1.2.3.4"))
        self.assertFalse(nets.allows("8.8.8.8"))
        with self.assertRaises(ValueError):
            NetworkList(["10.0.0.0/33"])

    def test_hostOf(self) -> None:
        self.assertEqual(hostOf(IPv4Address("TCP", "10.0.0.1", 5)), "10.0.0.1")
        self.assertEqual(hostOf(IPv6Address("TCP", "::ffff:10.0.0.1", 5)), "10.0.0.1")
        self.assertEqual(hostOf(IPv6Address("TCP", "::1", 5)), "::1")
        self.assertEqual(hostOf(UNIXAddress(b"/run/x")), "local")
        self.assertEqual(hostOf(None), "local")

    def test_forwardedClient(self) -> None:
        proxies = NetworkList(["127.0.0.1/32", "10.9.0.0/16"])
        self.assertEqual(forwardedClient("127.0.0.1", "10.1.2.3", proxies), "10.1.2.3")
        # Two trusted hops: the client is the first untrusted address from the right.
        self.assertEqual(
            forwardedClient("127.0.0.1", "6.6.6.6, 10.1.2.3, 10.9.0.5", proxies), "10.1.2.3"
        )
        self.assertEqual(forwardedClient("8.8.8.8", "10.1.2.3", proxies), "8.8.8.8")
        self.assertEqual(forwardedClient("127.0.0.1", None, proxies), "127.0.0.1")
        self.assertEqual(forwardedClient("127.0.0.1", "garbage", proxies), "127.0.0.1")

    def test_limiter(self) -> None:
        limiter = ConnectionLimiter(3, 2, exempt=NetworkList(["10.9.0.1"]))
        self.assertIsNone(limiter.acquire("1.1.1.1"))
        self.assertIsNone(limiter.acquire("1.1.1.1"))
        self.assertEqual(limiter.acquire("1.1.1.1"), "per-ip")
        self.assertIsNone(limiter.acquire("10.9.0.1"))
        self.assertEqual(limiter.acquire("2.2.2.2"), "total")
        limiter.release("1.1.1.1")
        self.assertIsNone(limiter.acquire("2.2.2.2"))
        limiter.release("9.9.9.9")  # never acquired: ignored
        self.assertEqual(limiter.total, 3)
        exempt = ConnectionLimiter(0, 1, exempt=NetworkList(["10.9.0.1"]))
        for _ in range(5):
            self.assertIsNone(exempt.acquire("10.9.0.1"))  # a trusted proxy carries many

    def test_countJSONValues(self) -> None:
        self.assertEqual(countJSONValues(b'{"a":[1,2,3]}', 100), 5)
        # Commas and brackets inside strings are not structure.
        text = b'{"name":"a,b,[c]{","photo":"' + b"," * 1000 + b'"}'
        self.assertLessEqual(countJSONValues(text, 10), 3)
        self.assertGreater(countJSONValues(b"[" + b"0," * 500 + b"0]", 10), 500)
