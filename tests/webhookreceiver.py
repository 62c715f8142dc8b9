"""
A real webhook receiver for tests: an HTTP server on 127.0.0.1 that verifies every request with
the C{standardwebhooks} library (not our code) and records the events it accepted.

Its behaviour is switched by the test: C{mode} C{"ok"} (204), C{"fail"} (500), C{"gone"} (410),
C{"slow"} (answers after C{delay} seconds), C{"redirect"} (302), C{"huge"} (500 with a 5 MiB
body); L{Receiver.down} closes the port
(connections refused) and L{Receiver.up} opens it again on the same port.
"""

from __future__ import annotations

import json
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


class _Hook(Resource):
    isLeaf = True

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver

    def render_POST(self, request: Any) -> Any:
        receiver = self.receiver
        body = request.content.read()
        headers = {
            k.decode("latin-1").lower(): v[-1].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        receiver.requests.append((headers, body))
        mode = receiver.mode
        if mode == "fail":
            request.setResponseCode(500)
            return b"receiver broken"
        if mode == "gone":
            request.setResponseCode(410)
            return b"gone"
        if mode == "huge":
            request.setResponseCode(500)
            return b"x" * (5 * 1024 * 1024)
        if mode == "redirect":
            request.setResponseCode(302)
            request.setHeader(b"location", b"http://127.0.0.1:1/elsewhere")
            return b""
        try:
            document = receiver.verifier.verify(body, headers)
        except WebhookVerificationError as e:
            receiver.rejected.append(str(e))
            request.setResponseCode(401)
            return b"bad signature"

        gauge = receiver.gauge
        gauge[0] += 1
        gauge[1] = max(gauge[1], gauge[0])

        def accept() -> None:
            gauge[0] -= 1
            receiver.accepted.append(headers["webhook-id"])
            receiver.events.extend(document["data"]["events"])
            for waiter in list(receiver.waiters):
                waiter()
            request.setResponseCode(204)
            request.finish()

        if mode == "slow":
            call = reactor.callLater(receiver.delay, accept)
            request.notifyFinish().addErrback(lambda _: call.cancel() if call.active() else None)
            return NOT_DONE_YET
        accept()
        return NOT_DONE_YET


class Receiver:
    """See the module docstring.  @ivar events: the events of accepted deliveries, in order."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.mode = "ok"
        self.delay = 0.0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[str] = []
        self.rejected: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.waiters: list[Any] = []
        #: [requests being answered now, most at once]; receivers may share one
        self.gauge = [0, 0]
        self.port: Any = None
        self.portNumber = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.portNumber}/hook"

    def up(self) -> None:
        site = Site(_Hook(self))
        site.noisy = False
        self.port = reactor.listenTCP(self.portNumber, site, interface="127.0.0.1")
        self.portNumber = self.port.getHost().port

    def down(self) -> Deferred[Any]:
        port, self.port = self.port, None
        d: Deferred[Any] = port.stopListening()
        return d

    def stop(self) -> Deferred[Any] | None:
        return self.down() if self.port is not None else None

    def ids(self) -> list[int]:
        return [event["id"] for event in self.events]

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    @inlineCallbacks
    def until(self, check: Any, what: str, timeout: float = 20.0) -> Any:
        """Wait (real time, polling every 20 ms) until C{check()} is true."""
        for _ in range(int(timeout / 0.02)):
            if check():
                return
            yield deferLater(reactor, 0.02, lambda: None)
        raise AssertionError(f"never happened: {what}")


__all__ = ["Receiver"]
