"""
TLS: C{ssl:} endpoints serve wss:// terminals and the https:// API on one port, beside a plain
port; clients verify the certificate chain and the hostname (service_identity).
"""

from __future__ import annotations

from typing import Any

import treq
from service_identity.exceptions import VerificationError
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseNeverReceived,
)

from tests.securitysupport import (
    connectWS,
    makePKI,
    openRaw,
    registerOn,
    scratchDir,
    startServerOn,
    tlsOptionsFor,
)


class TLSTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def setUp(self) -> Any:
        self.pki = makePKI(scratchDir(self))
        spec = (
            f"ssl:0:privateKey={self.pki.keyFile}:certKey={self.pki.certFile}:interface=127.0.0.1"
        )
        self.running = yield startServerOn(self, ports=("tcp:0:interface=127.0.0.1", spec))
        self.plainPort, self.tlsPort = self.running.ports

    def httpsClient(self, trustRoot: Any = None) -> treq.client.HTTPClient:
        pool = HTTPConnectionPool(reactor, persistent=False)
        policy = BrowserLikePolicyForHTTPS(trustRoot=trustRoot or self.pki.trustRoot)
        return treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))

    @inlineCallbacks
    def test_wssTerminalBesidePlainTerminal(self) -> Any:
        secure = yield connectWS(self, self.tlsPort, tlsOptions=tlsOptionsFor(self.pki))
        reply = yield registerOn(secure, "TLS1", cpusn="C1")
        self.assertIs(reply["result"], True)
        ack = yield secure.request(
            {
                "cmd": "sendlog",
                "sn": "TLS1",
                "count": 1,
                "logindex": 0,
                "record": [{"enrollid": 7, "time": "2024-01-15 10:00:00", "mode": 1}],
            }
        )
        self.assertIs(ack["result"], True)
        plain = yield connectWS(self, self.plainPort)
        reply = yield registerOn(plain, "PLAIN1", cpusn="C2")
        self.assertIs(reply["result"], True)
        self.assertEqual(self.running.context.registry.connected(), ["PLAIN1", "TLS1"])
        self.assertEqual((yield self.running.context.store.countLogs("TLS1")), 1)

    @inlineCallbacks
    def test_httpsAPIOnTheTLSPort(self) -> Any:
        client = self.httpsClient()
        response = yield client.get(f"https://localhost:{self.tlsPort}/health")
        self.assertEqual(response.code, 200)
        body = yield response.json()
        self.assertEqual(body["status"], "ok")

    @inlineCallbacks
    def test_wrongHostnameRefusedForHTTPS(self) -> Any:
        # The certificate names "localhost" only; 127.0.0.1 does not match it.
        client = self.httpsClient()
        d = client.get(f"https://127.0.0.1:{self.tlsPort}/health")
        error = yield self.assertFailure(d, ResponseNeverReceived)
        [reason] = error.reasons
        self.assertIsInstance(reason.value, VerificationError)

    @inlineCallbacks
    def test_wrongHostnameRefusedForWSS(self) -> Any:
        d = connectWS(self, self.tlsPort, tlsOptions=tlsOptionsFor(self.pki, "wrong.example"))
        yield self.assertFailure(d, ConnectionError)  # closed before the WebSocket opened
        self.assertEqual(self.running.context.registry.connected(), [])

    @inlineCallbacks
    def test_untrustedCertificateRefused(self) -> Any:
        other = makePKI(scratchDir(self))
        client = self.httpsClient(trustRoot=other.trustRoot)
        d = client.get(f"https://localhost:{self.tlsPort}/health")
        yield self.assertFailure(d, Exception)
        d = connectWS(self, self.tlsPort, tlsOptions=tlsOptionsFor(other))
        yield self.assertFailure(d, Exception)

    @inlineCallbacks
    def test_plainTextOnTheTLSPortIsNotServed(self) -> Any:
        raw = yield openRaw(self, self.tlsPort)
        raw.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = yield raw.closed
        self.assertNotIn(b"HTTP/1.1 200", received)
