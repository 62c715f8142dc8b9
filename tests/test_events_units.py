"""
The parts of events out that need no server: signatures (checked with the C{standardwebhooks}
library), URL and address checks, type patterns, payloads, the feed, retention pruning, the
options.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.storecontract import SN, T0, at, punch
from tm20.config import ServerConfig
from tm20.events.feed import EventFeed
from tm20.events.model import EVENT_TYPES, Event, EventQuery, expandTypes
from tm20.events.payloads import localToUTC
from tm20.events.service import EventsService, pluginSinks
from tm20.events.sse import formatEvent
from tm20.events.webhooks import (
    WebhookSink,
    addressAllowed,
    batchBody,
    checkURL,
    generateSecret,
    messageId,
    secretKey,
    sign,
)
from tm20.interfaces import IEventSink
from tm20.store.sqlite import SQLiteStore
from tm20.terminal.limits import NetworkList
from tm20.terminal.registry import TerminalRegistry


def event(eventId: int, type: str = "log.created") -> Event:
    return Event(eventId, type, SN, {"enrollid": 1}, datetime(2026, 4, 30, 12, tzinfo=UTC))


class SignatureTests(SynchronousTestCase):
    def test_verifiedByTheStandardWebhooksLibrary(self) -> None:
        secret = generateSecret()
        self.assertTrue(secret.startswith("whsec_"))
        self.assertEqual(len(secretKey(secret)), 32)
        now = int(reactor.seconds())
        body = batchBody(7, [event(1), event(2)], now)
        msgId = messageId(7, [event(1), event(2)])
        self.assertEqual(msgId, "msg_7_1_2")
        headers = {
            "webhook-id": msgId,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(secret, msgId, now, body),
        }
        document = StandardWebhook(secret).verify(body, headers)
        self.assertEqual(document["type"], "tm20.events")
        self.assertEqual(document["data"]["webhook"], 7)
        self.assertEqual([e["id"] for e in document["data"]["events"]], [1, 2])
        with self.assertRaises(WebhookVerificationError):
            StandardWebhook(generateSecret()).verify(body, headers)
        with self.assertRaises(WebhookVerificationError):
            StandardWebhook(secret).verify(body + b" ", headers)

    def test_signMatchesTheLibrarySigner(self) -> None:
        secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
        when = datetime.fromtimestamp(1_700_000_000, tz=UTC)
        expected = StandardWebhook(secret).sign("msg_1", when, '{"a":1}')
        self.assertEqual(sign(secret, "msg_1", 1_700_000_000, b'{"a":1}'), expected)

    def test_secretForms(self) -> None:
        for bad in ("abc", "whsec_", "whsec_!!!", "whsec_" + base64.b64encode(b"x" * 8).decode()):
            with self.assertRaises(ValueError):
                secretKey(bad)


class URLTests(SynchronousTestCase):
    def test_checkURL(self) -> None:
        anywhere = NetworkList()
        for good in ("http://example.com/h", "https://10.0.0.1:8443/x", "http://[::1]:9/"):
            checkURL(good, anywhere)
        for bad in (
            "ftp://x/",
            "http:///x",
            "http://u:p@x/",
            "http://x:0/",
            "http://x:99999/",
            "http://169.254.169.254/",
            "http://[fe80::1]/",
        ):
            with self.assertRaises(ValueError):
                checkURL(bad, anywhere)
        private = NetworkList(["10.0.0.0/8"])
        checkURL("http://10.2.3.4/", private)
        checkURL("http://name.example/", private)  # checked when connecting
        with self.assertRaises(ValueError):
            checkURL("http://127.0.0.1/", private)

    def test_addresses(self) -> None:
        self.assertTrue(addressAllowed("127.0.0.1", NetworkList()))
        self.assertFalse(addressAllowed("169.254.1.1", NetworkList()))
        self.assertTrue(addressAllowed("169.254.1.1", NetworkList(["169.254.0.0/16"])))
        self.assertFalse(addressAllowed("8.8.8.8", NetworkList(["10.0.0.0/8"])))


class ModelTests(SynchronousTestCase):
    def test_expandTypes(self) -> None:
        self.assertEqual(expandTypes(["log.*"]), ("log.created", "log.quarantined"))
        self.assertEqual(expandTypes(["*"]), EVENT_TYPES)
        self.assertEqual(
            expandTypes(["user.deleted", "terminal.*connected"]),
            ("terminal.connected", "terminal.disconnected", "user.deleted"),
        )
        with self.assertRaises(ValueError):
            expandTypes(["log.*", "nope"])

    def test_localToUTC(self) -> None:
        self.assertEqual(
            localToUTC("2026-01-15 09:00:00", "America/New_York"), "2026-01-15T14:00:00+00:00"
        )
        self.assertIsNone(localToUTC("2026-13-01 00:00:00", "UTC"))
        self.assertIsNone(localToUTC("2026-01-01 00:00:00", "Not/AZone"))

    def test_sseFormat(self) -> None:
        text = formatEvent(event(5)).decode()
        self.assertTrue(text.startswith("id: 5\nevent: log.created\ndata: {"))
        self.assertTrue(text.endswith("}\n\n"))
        self.assertEqual(json.loads(text.split("data: ", 1)[1])["id"], 5)


class FeedTests(SynchronousTestCase):
    def test_wakeAndTimeout(self) -> None:
        clock = Clock()

        class Store:
            observer: Any = None

            def addEventObserver(self, observer: Any) -> Any:
                self.observer = observer
                return lambda: setattr(self, "observer", None)

        store = Store()
        feed = EventFeed(store, clock, pollInterval=5)
        feed.start()
        woken: list[Any] = []
        feed.wait().addCallback(woken.append)
        store.observer()
        self.assertEqual(woken, [None])
        self.assertEqual(clock.getDelayedCalls(), [])
        feed.wait().addCallback(woken.append)
        clock.advance(4.9)
        self.assertEqual(len(woken), 1)
        clock.advance(0.2)
        self.assertEqual(len(woken), 2)
        cancelled = feed.wait(timeout=1)
        cancelled.addErrback(lambda f: f.trap(CancelledError))
        cancelled.cancel()
        self.assertEqual(clock.getDelayedCalls(), [])
        # a wake-up between a reader's read and its wait is not missed
        seen = feed.version
        store.observer()
        early: list[Any] = []
        feed.wait(since=seen).addCallback(early.append)
        self.assertEqual(early, [None])
        self.assertEqual(clock.getDelayedCalls(), [])
        current: list[Any] = []
        feed.wait(timeout=1, since=feed.version).addCallback(current.append)
        self.assertEqual(current, [])
        clock.advance(1)
        self.assertEqual(current, [None])
        feed.stop()
        self.assertTrue(feed.stopped)
        self.assertIsNone(store.observer)


class RetentionTests(TestCase):
    @inlineCallbacks
    def test_pruneOlderThanTheRetention(self) -> Any:
        clock = Clock()
        clock.advance(T0)
        store = SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor, clock=clock)
        yield store.start()
        self.addCleanup(store.stop)
        config = ServerConfig(eventRetention=3600.0)
        service = EventsService(store, clock, config, TerminalRegistry(), sinks=[])
        old = yield store.appendEvent("terminal.connected", SN, {})
        clock.advance(1800)
        young = yield store.appendEvent("terminal.connected", SN, {})
        yield service.start()
        self.addCleanup(service.stop)
        yield store.lastEventId()  # the first prune (at start) is done: the next is scheduled
        clock.advance(3600)  # the hourly prune: cutoff T0 + 1800
        yield store.addLogs(SN, [punch(1, "2026-04-30 08:00:00")])  # let the reactor turn
        events = yield store.listEvents(EventQuery())
        self.assertNotIn(old.id, [e.id for e in events])
        self.assertIn(young.id, [e.id for e in events])
        self.assertEqual(events[0].createdAt, at(T0 + 1800))


class _Session:
    """A session as the registry and the connection events see it (hashable)."""

    def __init__(self, peerHost: str) -> None:
        self.peerHost = peerHost


class ConnectionEventTests(TestCase):
    @inlineCallbacks
    def test_aStormIsFewTransactions(self) -> Any:
        store = SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor)
        yield store.start()
        self.addCleanup(store.stop)
        writes: list[int] = []
        appendEvents = store.appendEvents

        def counting(events: Any) -> Any:
            writes.append(len(events))
            return appendEvents(events)

        store.appendEvents = counting  # type: ignore[method-assign]
        registry = TerminalRegistry()
        service = EventsService(store, reactor, ServerConfig(), registry, sinks=[])
        yield service.start()
        sessions = [_Session(f"10.0.0.{i}") for i in range(200)]
        for i, session in enumerate(sessions):
            registry.bind(f"SN{i:03d}", session)
        for i, session in enumerate(sessions):
            registry.unbind(f"SN{i:03d}", session)
        yield service.stop()
        events = yield store.listEvents(EventQuery(limit=1000))
        self.assertEqual(len(events), 400)
        self.assertEqual(sum(writes), 400)
        self.assertLessEqual(len(writes), 3)
        self.assertEqual(events[0].type, "terminal.connected")
        self.assertEqual(dict(events[0].payload), {"sn": "SN000", "peer": "10.0.0.0"})
        self.assertEqual(events[-1].type, "terminal.disconnected")
        self.assertEqual(
            dict(events[-1].payload),
            {"sn": "SN199", "peer": "10.0.0.199", "code": None, "reason": None},
        )


class PluginTests(SynchronousTestCase):
    def test_webhookSinkIsAPlugin(self) -> None:
        verifyObject(IEventSink, WebhookSink())
        sinks = pluginSinks()
        webhooks = [s for s in sinks if isinstance(s, WebhookSink)]
        self.assertEqual(len(webhooks), 1)
        again = [s for s in pluginSinks() if isinstance(s, WebhookSink)]
        self.assertIsNot(webhooks[0], again[0])  # one per server

    def test_noSinks(self) -> None:
        service = EventsService(
            SimpleNamespace(), Clock(), ServerConfig(runSinks=False), TerminalRegistry()
        )
        self.assertEqual(service.runner.sinks, [])
        service = EventsService(SimpleNamespace(), Clock(), ServerConfig(), TerminalRegistry())
        self.assertTrue(any(isinstance(s, WebhookSink) for s in service.runner.sinks))
