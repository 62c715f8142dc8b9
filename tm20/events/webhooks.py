"""
The webhook sink: each subscription is a stream; each batch is one signed HTTP C{POST}.

B{Body.}  One JSON object per request, whatever the batch size::

    {"type": "tm20.events", "timestamp": "2026-04-30T11:59:37+00:00",
     "data": {"webhook": 3, "events": [{"id": 41, "type": "log.created", "sn": "...",
                                          "at": "...", "data": {...}}, ...]}}

B{Signature} (Standard Webhooks, U{https://www.standardwebhooks.com/}): headers C{webhook-id}
(C{msg_<webhook>_<first event>_<last event>}: the same for a retry of the same batch),
C{webhook-timestamp} (POSIX seconds) and C{webhook-signature}: C{v1,} and the Base64 HMAC-SHA256,
keyed with the Base64-decoded part of the C{whsec_...} secret, of C{"<id>.<timestamp>.<body>"}.

B{Safety.}  A deadline per request (connect, headers and the body excerpt together); at most
C{concurrency} requests in flight for all subscriptions; redirects are not followed (a 3xx is a
failure); at most L{EXCERPT_BYTES} of the response are read and kept; the address a URL resolves
to is checked when connecting (so DNS cannot point a checked name elsewhere later): inside
C{networks} when that list is set, else anywhere except link-local addresses (169.254.0.0/16,
fe80::/10: cloud metadata services).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from treq.client import HTTPClient
from twisted.internet import defer
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from tm20.events.model import Event, Webhook, expandTypes
from tm20.events.sinks import DeliveryFailed, DeliveryReport, SinkGone, StreamSpec
from tm20.interfaces import IEventSink
from tm20.store._rows import utcFromSeconds
from tm20.terminal.limits import NetworkList

#: The most bytes of a response read (and kept with the attempt).
EXCERPT_BYTES = 512

#: What C{connectionLost} is given by default: the body ended normally.
_RESPONSE_DONE = Failure(ResponseDone())

SECRET_PREFIX = "whsec_"

_LINK_LOCAL = NetworkList(["169.254.0.0/16", "fe80::/10"])


def generateSecret() -> str:
    """A new signing secret: C{whsec_} and 32 random bytes in Base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secretKey(secret: str) -> bytes:
    """
    The HMAC key of a C{whsec_...} secret.  @raise ValueError: not that form (or too short).
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (ValueError, TypeError):
        raise ValueError("must be whsec_ followed by Base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("must hold 24 to 64 bytes (Base64)")
    return key


def sign(secret: str, messageId: str, timestamp: int, body: bytes) -> str:
    """The C{webhook-signature} value (C{v1,<Base64 HMAC-SHA256>})."""
    signed = f"{messageId}.{timestamp}.".encode() + body
    digest = hmac.new(secretKey(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def checkURL(url: str, networks: NetworkList) -> None:
    """
    A webhook URL must be C{http(s)://host[:port]/...} without credentials; an address
    literal must be allowed (see L{addressAllowed}).  @raise ValueError: why not.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials")
    if port == 0:
        raise ValueError("has an invalid port")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    if not addressAllowed(parts.hostname, networks):
        raise ValueError(f"points to {parts.hostname}, not allowed by --webhook-networks")


def addressAllowed(address: str, networks: NetworkList) -> bool:
    """Inside C{networks} when set; else anything but link-local addresses."""
    if networks:
        return networks.contains(address)
    return not _LINK_LOCAL.contains(address)


class AddressRefused(Exception):
    """The URL's host resolved to an address outside the allowed networks."""


class _GuardedEndpoint:
    """Resolve, check the address, then connect to I{that} address (TLS with the host name)."""

    def __init__(self, factory: _EndpointFactory, scheme: bytes, host: str, port: int) -> None:
        self._factory = factory
        self._scheme = scheme
        self._host = host
        self._port = port

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        async def connect() -> Any:
            reactor = self._factory.reactor
            try:
                address = str(ipaddress.ip_address(self._host))
            except ValueError:
                address = await reactor.resolve(self._host)
            if not addressAllowed(address, self._factory.networks):
                raise AddressRefused(
                    f"{self._host} is {address}, not allowed by --webhook-networks"
                )
            timeout = self._factory.timeout
            endpoint: Any
            if ":" in address:
                endpoint = TCP6ClientEndpoint(reactor, address, self._port, timeout=timeout)
            else:
                endpoint = TCP4ClientEndpoint(reactor, address, self._port, timeout=timeout)
            if self._scheme == b"https":
                endpoint = wrapClientTLS(optionsForClientTLS(self._host), endpoint)
            return await endpoint.connect(protocolFactory)

        return Deferred.fromCoroutine(connect())


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, reactor: Any, networks: NetworkList, timeout: float) -> None:
        self.reactor = reactor
        self.networks = networks
        self.timeout = timeout

    def endpointForURI(self, uri: Any) -> _GuardedEndpoint:
        host = uri.host.decode("ascii")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return _GuardedEndpoint(self, uri.scheme, host, uri.port)


class _Excerpt(Protocol):
    """Reads at most L{EXCERPT_BYTES} of a response body, then stops the transfer."""

    def __init__(self, finished: Deferred[bytes]) -> None:
        self.finished = finished
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self.data += data
        if len(self.data) >= EXCERPT_BYTES:
            self.finished.callback(self.data[:EXCERPT_BYTES])
            producer = IPushProducer(self.transport, None)
            if producer is not None:
                producer.stopProducing()

    def connectionLost(self, reason: Failure = _RESPONSE_DONE) -> None:
        if not self.finished.called:
            self.finished.callback(self.data)


def batchBody(webhookId: int, events: Sequence[Event], now: float) -> bytes:
    """The JSON body of one delivery (see the module docstring)."""
    document = {
        "type": "tm20.events",
        "timestamp": utcFromSeconds(now).isoformat(timespec="seconds"),
        "data": {"webhook": webhookId, "events": [e.asJSON() for e in events]},
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def messageId(webhookId: int, events: Sequence[Event]) -> str:
    return f"msg_{webhookId}_{events[0].id}_{events[-1].id}"


@implementer(IPlugin, IEventSink)
class WebhookSink:
    """
    L{tm20.interfaces.IEventSink} of the webhook subscriptions (published as a plugin in
    C{tm20.plugins.tm20_webhooks}).

    Settings come from the server's config at L{start} (C{webhookTimeout},
    C{webhookConcurrency}, C{webhookNetworks}, C{webhookBatchSize}); C{reactor} may be set
    before (tests) and is the global reactor otherwise.
    """

    name = "webhook"
    log = Logger()

    def __init__(self) -> None:
        self.reactor: Any = None
        self.store: Any = None
        self.timeout = 10.0
        self.batchSize = 100
        self.networks = NetworkList()
        self._semaphore = DeferredSemaphore(16)
        self._pool: HTTPConnectionPool | None = None
        self._agent: Agent | None = None
        self._inFlight: set[Deferred[Any]] = set()

    def start(self, context: Any) -> None:
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        config = context.config
        self.store = context.store
        self.timeout = config.webhookTimeout
        self.batchSize = config.webhookBatchSize
        self.networks = NetworkList(config.webhookNetworks)
        self._semaphore = DeferredSemaphore(config.webhookConcurrency)
        self._pool = HTTPConnectionPool(self.reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._pool.retryAutomatically = False
        self._agent = Agent.usingEndpointFactory(
            self.reactor, _EndpointFactory(self.reactor, self.networks, self.timeout), self._pool
        )

    async def streams(self) -> list[StreamSpec]:
        webhooks: list[Webhook] = await self.store.listWebhooks()
        specs = []
        for webhook in webhooks:
            try:
                types = expandTypes(webhook.types)
            except ValueError as e:
                self.log.warn("webhook {id}: {error}; not delivered", id=webhook.id, error=e)
                continue
            specs.append(
                StreamSpec(
                    key=webhook.streamKey,
                    types=types,
                    sn=webhook.sn,
                    batchSize=self.batchSize,
                    data=webhook,
                )
            )
        return specs

    def stop(self) -> Deferred[None] | None:
        for request in list(self._inFlight):
            request.cancel()
        pool, self._pool = self._pool, None
        if pool is None:
            return None
        d: Deferred[None] = pool.closeCachedConnections()
        return d

    def deliver(self, stream: StreamSpec, events: list[Event]) -> Deferred[DeliveryReport]:
        webhook: Webhook = stream.data
        return self._semaphore.run(self._post, webhook, events)

    async def _post(self, webhook: Webhook, events: list[Event]) -> DeliveryReport:
        assert self._agent is not None, "deliver before start"
        now = self.reactor.seconds()
        body = batchBody(webhook.id, events, now)
        msgId = messageId(webhook.id, events)
        timestamp = int(now)
        headers: dict[bytes | str, list[bytes | str]] = {
            "Content-Type": ["application/json"],
            "User-Agent": ["tm20-webhooks"],
            "webhook-id": [msgId],
            "webhook-timestamp": [str(timestamp)],
            "webhook-signature": [sign(webhook.secret, msgId, timestamp, body)],
        }
        client = HTTPClient(self._agent)

        async def exchange() -> tuple[int, bytes]:
            response = await client.post(
                webhook.url, data=body, headers=headers, allow_redirects=False
            )
            finished: Deferred[bytes] = Deferred()
            response.deliverBody(_Excerpt(finished))
            excerpt = await finished
            return int(response.code), excerpt

        timedOut: list[bool] = []

        def onTimeout(result: Any, timeout: float) -> Any:
            timedOut.append(True)
            return result

        d = Deferred.fromCoroutine(exchange())
        d.addTimeout(self.timeout, self.reactor, onTimeoutCancel=onTimeout)
        self._inFlight.add(d)
        try:
            status, excerpt = await d
        except Exception as e:
            if timedOut or isinstance(e, defer.TimeoutError):
                raise DeliveryFailed(f"timed out after {self.timeout:g}s") from None
            if isinstance(e, ConnectTimeout):
                raise DeliveryFailed(f"connection timed out after {self.timeout:g}s") from None
            if isinstance(e, AddressRefused):
                raise DeliveryFailed(str(e)) from None
            raise DeliveryFailed(_connectionError(e)) from None
        finally:
            self._inFlight.discard(d)
        text = excerpt.decode("utf-8", "replace")
        if 200 <= status < 300:
            return DeliveryReport(status=status, response=text)
        if status == 410:
            raise SinkGone("HTTP 410 Gone: subscription disabled", status, text)
        raise DeliveryFailed(f"HTTP {status}", status, text)


def _connectionError(error: Exception) -> str:
    reasons = getattr(error, "reasons", None)
    if reasons:
        inner = reasons[0]
        value = getattr(inner, "value", inner)
        return f"{type(value).__name__}: {value}"
    return f"{type(error).__name__}: {error}"


__all__ = [
    "EXCERPT_BYTES",
    "SECRET_PREFIX",
    "WebhookSink",
    "addressAllowed",
    "batchBody",
    "checkURL",
    "generateSecret",
    "messageId",
    "secretKey",
    "sign",
]
