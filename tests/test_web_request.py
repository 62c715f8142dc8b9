"""
The site's requests (L{tm20.web.SiteRequest}): a JSON body is not examined as a form (no
C{Content-Type} parsing through C{email.message}); a form body still gives its arguments.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request

from tm20.web import QuietSite, SiteRequest


class _Echo(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[dict[bytes, list[bytes]], bytes]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        self.seen.append((dict(request.args or {}), request.content.read()))
        return b"ok"


class SiteRequestTests(TestCase):
    def setUp(self) -> None:
        self.parsed: list[bytes] = []
        parse = http._parseContentType

        def counting(line: bytes) -> bytes:
            self.parsed.append(line)
            return parse(line)

        self.patch(http, "_parseContentType", counting)
        self.resource = _Echo()
        self.site = QuietSite(self.resource)

    def post(self, contentType: bytes, body: bytes) -> bytes:
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.1", 5000))
        channel: Any = self.site.buildProtocol(transport.getPeer())
        channel.makeConnection(transport)
        channel.dataReceived(
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Type: " + contentType + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        response: bytes = transport.value()
        channel.connectionLost(None)
        return response

    def test_siteMakesThem(self) -> None:
        self.assertIs(self.site.requestFactory, SiteRequest)

    def test_jsonNotParsedAsAForm(self) -> None:
        """A JSON body reaches the resource as it came; its type is not parsed."""
        for ctype in (b"application/json", b"Application/JSON; charset=utf-8"):
            response = self.post(ctype, b'{"a": "b=c"}')
            self.assertTrue(response.startswith(b"HTTP/1.1 200"), response)
        self.assertEqual(self.parsed, [])
        self.assertEqual(self.resource.seen, [({}, b'{"a": "b=c"}')] * 2)

    def test_formStillParsed(self) -> None:
        """A form body gives its arguments, as twisted.web's own request does."""
        self.post(b"application/x-www-form-urlencoded", b"a=1&b=2")
        self.assertEqual(self.parsed, [b"application/x-www-form-urlencoded"])
        self.assertEqual(self.resource.seen, [({b"a": [b"1"], b"b": [b"2"]}, b"a=1&b=2")])
