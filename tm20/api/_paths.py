"""
Path parameters that may hold any character, C{/} included: C{/api/terminals/A%2FB/} names the
terminal C{A/B}.

twisted.web splits the request path at C{/} and then percent-decodes each segment, so an encoded
C{/} stays inside its segment; Klein joins the segments back with C{/} before routing, which
would lose the difference.  L{ApiResource<tm20.api._app.ApiResource>} therefore escapes C{%} and
C{/} inside each segment again (L{escapeSegments}) and the routes' C{segment} converter
(L{SegmentConverter}) undoes it, so a handler gets the segment as the client encoded it.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from werkzeug.routing import BaseConverter

__all__ = ["SEGMENT", "SegmentConverter", "escapeSegments"]

#: The converter's name in route rules: C{/terminals/<segment:sn>/}.
SEGMENT = "segment"


def escapeSegments(segments: list[bytes]) -> list[bytes]:
    """Escape C{%} and C{/} in decoded path segments (the only two characters escaped)."""
    return [s.replace(b"%", b"%25").replace(b"/", b"%2F") if s else s for s in segments]


class SegmentConverter(BaseConverter):
    """One path segment, decoded: the inverse of L{escapeSegments}."""

    def to_python(self, value: str) -> str:
        return unquote(value)

    def to_url(self, value: str) -> str:
        return quote(value, safe="")
