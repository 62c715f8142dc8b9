"""
Helpers for the TLS, abuse and security tests: a throwaway CA, a server on chosen ports,
WebSocket clients over plain or TLS connections (optionally from another loopback address),
and a raw TCP client that sends bytes as it is told.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
from autobahn.twisted.websocket import WebSocketClientFactory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.serverfixture import RawClient, RunningServer
from tm20.config import ServerConfig
from tm20.service import TM20Service, buildServer
from tm20.store.sqlite import SQLiteStore


def scratchDir(testCase: Any) -> str:
    """
    A temporary folder removed after the test (trial's C{mktemp} would leave it in the
    working directory when the tests run under pytest).
    """
    folder = tempfile.mkdtemp(prefix="tm20-test-")
    testCase.addCleanup(shutil.rmtree, folder, True)
    return folder


@attrs.frozen
class TestPKI:
    """A scratch CA and a server certificate it signed (files in a temp folder)."""

    caPEM: bytes
    keyFile: str
    certFile: str

    @property
    def trustRoot(self) -> Certificate:
        return Certificate.loadPEM(self.caPEM)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def makePKI(folder: str, hostnames: tuple[str, ...] = ("localhost",)) -> TestPKI:
    """A CA and a certificate for C{hostnames} (DNS names, or IP addresses), valid for a day."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    caKey = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("tm20 test CA"))
        .issuer_name(_name("tm20 test CA"))
        .public_key(caKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(caKey.public_key()), critical=False
        )
        .sign(caKey, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostnames[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()),
            critical=False,
        )
        .sign(caKey, hashes.SHA256())
    )
    keyFile = str(Path(folder) / "key.pem")
    certFile = str(Path(folder) / "cert.pem")
    Path(keyFile).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    Path(certFile).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TestPKI(ca.public_bytes(serialization.Encoding.PEM), keyFile, certFile)


@attrs.define
class Running:
    """A server listening on several ports (in the order given)."""

    service: TM20Service
    ports: list[int]

    @property
    def context(self) -> Any:
        return self.service.server.context

    @property
    def server(self) -> Any:
        return self.service.server

    @property
    def port(self) -> int:
        return self.ports[0]

    def first(self) -> RunningServer:
        """The first port, as the shared fixture's L{RunningServer}."""
        return RunningServer(self.service, self.ports[0])


@inlineCallbacks
def startServerOn(
    testCase: TestCase, ports: tuple[str, ...] = ("tcp:0:interface=127.0.0.1",), **changes: Any
) -> Any:
    """Start a server listening on C{ports}; stopped by a cleanup.  @return: L{Running}."""
    store = SQLiteStore(scratchDir(testCase) + "/tm20.sqlite3", reactor=reactor)
    changes.setdefault("fetchMissingLogs", False)  # no commands of the server's own
    config = ServerConfig(ports=ports, **changes)
    service = TM20Service(buildServer(config, reactor, store))
    service.startService()
    listening = yield service.ready
    testCase.addCleanup(service.stopService)
    return Running(service, [p.getHost().port for p in listening])


@inlineCallbacks
def connectWS(
    testCase: TestCase,
    port: int,
    path: str = "/pub/chat",
    tlsOptions: Any = None,
    bindAddress: str | None = None,
    headers: dict[str, str] | None = None,
    offerDeflate: bool = False,
) -> Any:
    """
    A L{RawClient} WebSocket to 127.0.0.1:C{port} (TLS with C{tlsOptions}), from
    C{bindAddress} when given; closed by a cleanup.  Fails when the handshake is refused.
    """
    scheme = "wss" if tlsOptions is not None else "ws"
    factory = WebSocketClientFactory(f"{scheme}://localhost:{port}{path}", headers=headers)
    factory.protocol = RawClient
    options: dict[str, Any] = {"maxMessagePayloadSize": 0, "autoPingInterval": 0}
    if offerDeflate:
        from autobahn.websocket.compress import PerMessageDeflateOffer

        options["perMessageCompressionOffers"] = [PerMessageDeflateOffer()]
    factory.setProtocolOptions(**options)
    endpoint: Any = TCP4ClientEndpoint(
        reactor,
        "127.0.0.1",
        port,
        timeout=5,
        bindAddress=(bindAddress, 0) if bindAddress else None,
    )
    if tlsOptions is not None:
        endpoint = wrapClientTLS(tlsOptions, endpoint)
    proto = yield endpoint.connect(factory)

    def close() -> Any:
        if proto.state == proto.STATE_OPEN:
            proto.sendClose(1000)
        return proto.closed

    testCase.addCleanup(close)
    client = yield proto.opened
    return client


def tlsOptionsFor(pki: TestPKI, hostname: str = "localhost") -> Any:
    """Client TLS options trusting only the test CA and checking C{hostname}."""
    return optionsForClientTLS(hostname, trustRoot=pki.trustRoot)


@inlineCallbacks
def registerOn(client: RawClient, sn: str, **fields: Any) -> Any:
    """Send C{reg}; return its reply."""
    frame = {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}, **fields}
    reply = yield client.request(frame)
    return reply


class RawSocket(Protocol):
    """A TCP client that records what it receives and when the connection closed."""

    def __init__(self) -> None:
        self.received = b""
        self.closedAt: float | None = None
        self.closed: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.closedAt = time.monotonic()
        self.closed.callback(self.received)

    def send(self, data: bytes) -> None:
        if self.transport is not None and self.closedAt is None:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None and self.closedAt is None:
            self.transport.abortConnection()


@inlineCallbacks
def openRaw(
    testCase: TestCase, port: int, bindAddress: str | None = None, tlsOptions: Any = None
) -> Any:
    """A connected L{RawSocket}; aborted by a cleanup."""
    endpoint: Any = TCP4ClientEndpoint(
        reactor, "127.0.0.1", port, bindAddress=(bindAddress, 0) if bindAddress else None
    )
    if tlsOptions is not None:
        endpoint = wrapClientTLS(tlsOptions, endpoint)
    proto = yield endpoint.connect(Factory.forProtocol(RawSocket))
    testCase.addCleanup(proto.abort)
    return proto


def wait(seconds: float) -> Deferred[None]:
    """A real-time pause (loopback tests only)."""
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


@inlineCallbacks
def until(check: Any, what: str, seconds: float = 10.0) -> Any:
    """
    Wait (loopback tests only) until C{check()} is true: a condition, checked every 10 ms, not a
    fixed pause; fails after C{seconds}.
    """
    from twisted.internet.task import deferLater

    for _ in range(int(seconds / 0.01)):
        if check():
            return
        yield deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"never happened within {seconds:g}s: {what}")
