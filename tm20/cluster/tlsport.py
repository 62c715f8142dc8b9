"""
TLS on a listening socket shared by C{--workers} (L{tm20.cluster.workers}): the parent opens a
plain TCP socket for an C{ssl:} port, each worker adopts it and runs TLS itself
(L{TLSMemoryBIOFactory} around its site, as Twisted's own C{ssl:} port does in one process).

The certificate, key, chain, DH parameters and method are read from the same C{ssl:} endpoint
string by Twisted's own parser (C{serverFromString}), so a worker serves exactly what one process
would: the endpoint is asked to listen on a reactor that only records what it was given.
"""

from __future__ import annotations

import socket
from typing import Any

import attrs
from twisted.internet.abstract import isIPv6Address
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory
from twisted.protocols.tls import TLSMemoryBIOFactory

__all__ = ["TLSPort", "isTLS", "readTLSPort", "tlsFactory"]


@attrs.frozen
class TLSPort:
    """What an C{ssl:} endpoint string asks for: where to listen, and the TLS options."""

    port: int
    backlog: int
    interface: str
    contextFactory: Any

    @property
    def family(self) -> int:
        return socket.AF_INET6 if isIPv6Address(self.interface) else socket.AF_INET


class _Recorder:
    """A reactor that records the C{listenSSL} an endpoint asks for, and listens nowhere."""

    asked: TLSPort | None = None

    def listenSSL(
        self, port: int, factory: Any, contextFactory: Any, backlog: int = 50, interface: str = ""
    ) -> None:
        self.asked = TLSPort(port, backlog, interface, contextFactory)


def isTLS(spec: str) -> bool:
    """Is C{spec} (an endpoint string) an C{ssl:} port?"""
    return spec.split(":", 1)[0] == "ssl"


def readTLSPort(spec: str) -> TLSPort:
    """
    The port, backlog, interface and TLS options of the C{ssl:} endpoint string C{spec}.

    @raise ValueError: a malformed string; C{OSError}/OpenSSL errors: a key or certificate that
        cannot be read (as C{serverFromString} raises them for one process).
    """
    recorder = _Recorder()
    serverFromString(recorder, spec).listen(Factory())
    if recorder.asked is None:
        raise ValueError(f"not an ssl: endpoint: {spec!r}")
    return recorder.asked


def tlsFactory(spec: str, wrapped: Any) -> TLSMemoryBIOFactory:
    """C{wrapped} (the site) behind TLS with the options of the C{ssl:} endpoint C{spec}."""
    return TLSMemoryBIOFactory(readTLSPort(spec).contextFactory, False, wrapped)
