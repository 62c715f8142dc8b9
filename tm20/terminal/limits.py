"""
Abuse limits that do not depend on the WebSocket protocol: source networks and connection
counts (the bounds of a frame's JSON are the parser's, L{tm20.protocol.parser.parseFrame}).

Everything here is pure (no reactor, no I/O) and is used by L{tm20.web} (the HTTP side, before a
connection becomes a WebSocket) and by L{tm20.terminal.protocol}.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = [
    "ConnectionLimiter",
    "NetworkList",
    "forwardedClient",
    "hostOf",
    "parseNetworks",
]


def parseNetworks(specs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """
    Parse CIDR blocks (C{10.0.0.0/8}, C{2001:db8::/32}, a bare address for one host).

    @raise ValueError: a block is not a valid network (the message names it).
    """
    networks: list[IPNetwork] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        try:
            networks.append(ipaddress.ip_network(spec, strict=False))
        except ValueError:
            raise ValueError(f"not a network (CIDR) or address: {spec!r}") from None
    return tuple(networks)


def _address(host: str) -> IPAddress | None:
    """The address C{host} names, IPv4-mapped IPv6 (C{::ffff:10.0.0.1}) as IPv4; else C{None}."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkList:
    """
    A set of CIDR blocks.  An empty list allows everything (L{allows}) yet contains nothing
    (L{contains}).

    @ivar networks: the parsed blocks.
    """

    def __init__(self, specs: Iterable[str] = ()) -> None:
        self.networks = parseNetworks(specs)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def contains(self, host: str) -> bool:
        """C{True} when C{host} (an address as text) is in one of the blocks."""
        address = _address(host)
        if address is None:
            return False
        return any(address.version == n.version and address in n for n in self.networks)

    def allows(self, host: str) -> bool:
        """C{True} when the list is empty or contains C{host}."""
        return not self.networks or self.contains(host)

    def __repr__(self) -> str:
        return f"NetworkList({[str(n) for n in self.networks]!r})"


def hostOf(address: Any) -> str:
    """
    The source address of a Twisted C{IAddress} as text, IPv4-mapped IPv6 shown as IPv4; a
    UNIX socket or an unknown address type gives C{"local"}.
    """
    host = getattr(address, "host", None)
    if not isinstance(host, str) or not host:
        return "local"
    return _hostText(host)


@functools.lru_cache(maxsize=4096)
def _hostText(host: str) -> str:
    # Parsed once per source address: sites behind NAT connect many terminals from one.
    parsed = _address(host)
    return host if parsed is None else str(parsed)


def forwardedClient(peer: str, forwardedFor: str | None, trusted: NetworkList) -> str:
    """
    The real client behind trusted reverse proxies.

    C{X-Forwarded-For} lists the client and every proxy that relayed the request, each proxy
    appending the address it received the request from.  Walking from the right, we skip
    addresses of trusted proxies and stop at the first other one: anything further left could
    have been written by the client itself.

    @param peer: the TCP peer (as text).
    @param forwardedFor: the C{X-Forwarded-For} header, or C{None}.
    @param trusted: the proxies whose header is believed.
    @return: the client address, or C{peer} when the peer is not a trusted proxy.
    """
    if not trusted.contains(peer) or not forwardedFor:
        return peer
    client = peer
    for hop in reversed([h.strip() for h in forwardedFor.split(",")]):
        if _address(hop) is None:
            break
        client = str(_address(hop))
        if not trusted.contains(client):
            break
    return client


class ConnectionLimiter:
    """
    Counts open connections, in total and per source address.

    @param maxTotal: connections allowed at once (0: no limit).
    @param maxPerHost: connections allowed at once from one address (0: no limit).
    @param exempt: addresses not subject to C{maxPerHost} (trusted reverse proxies, which carry
        many clients).
    """

    def __init__(self, maxTotal: int, maxPerHost: int, exempt: NetworkList | None = None) -> None:
        self.maxTotal = maxTotal
        self.maxPerHost = maxPerHost
        self.exempt = exempt if exempt is not None else NetworkList()
        self.total = 0
        self._byHost: dict[str, int] = {}

    def count(self, host: str) -> int:
        """Open connections from C{host}."""
        return self._byHost.get(host, 0)

    def acquire(self, host: str) -> str | None:
        """
        Take a slot for a new connection from C{host}.

        @return: C{None} when the connection may proceed (it must then be L{release}d), or why
            it may not (C{"total"} or C{"per-ip"}).
        """
        if self.maxTotal and self.total >= self.maxTotal:
            return "total"
        n = self._byHost.get(host, 0)
        if self.maxPerHost and n >= self.maxPerHost and not self.exempt.contains(host):
            return "per-ip"
        self.total += 1
        self._byHost[host] = n + 1
        return None

    def release(self, host: str) -> None:
        """A connection from C{host} that L{acquire}d its slot has closed."""
        n = self._byHost.get(host, 0)
        if n <= 0:
            return
        self.total -= 1
        if n == 1:
            del self._byHost[host]
        else:
            self._byHost[host] = n - 1
