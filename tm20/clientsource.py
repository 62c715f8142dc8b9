"""
The client-source rule of every HTTP door (the REST API, the console): which address a request
is counted against (rate limits, failed logins, audit).
"""

from __future__ import annotations

from twisted.web.iweb import IRequest

from tm20.terminal.limits import NetworkList, forwardedClient, hostOf

__all__ = ["clientSource"]


def clientSource(request: IRequest, trustedProxies: NetworkList) -> str:
    """
    The address a request is counted against: its TCP peer, or, when the peer is a trusted
    proxy, the client named by C{X-Forwarded-For} (see L{forwardedClient}).  A header from any
    other peer is ignored.
    """
    peer = hostOf(request.getClientAddress())
    if not trustedProxies.contains(peer):
        return peer
    # Several X-Forwarded-For lines are one comma-separated list (RFC 9110, section 5.3).
    lines = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
    forwardedFor = ", ".join(line.decode("latin-1") for line in lines) or None
    return forwardedClient(peer, forwardedFor, trustedProxies)
