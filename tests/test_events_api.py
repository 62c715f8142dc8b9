"""
Events and webhooks through the live server: the event log API, webhook subscriptions, and
deliveries to real loopback receivers (signatures verified by the C{standardwebhooks} library)
while simulated terminals upload logs.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests import pgharness
from tests.test_api_support import ADMIN, READER, ApiTestCase, simulated
from tests.webhookreceiver import Receiver
from tm20.events.webhooks import generateSecret
from tm20.interfaces import IStore
from tm20.store.postgres import PostgresStore

#: Fast retries for tests (the schedule's values are tested with a Clock in test_events_runner).
FAST = "0.05s,0.05s,0.05s,0.05s,0.05s,0.05s,0.05s,0.05s,0.05s,0.05s"


class EventLogApiTests(ApiTestCase):
    @inlineCallbacks
    def test_eventsOfATerminalSession(self) -> Any:
        """Registration, connection, uploaded logs, an enrolment and a disconnection."""
        yield self.start()
        terminal = simulated("ZX0000000001", users=1, logs=0)
        connection = yield self.connect(terminal)
        connection.punch(1, "2026-04-30 08:00:00")
        connection.punch(0, "2026-04-30 08:00:05", event=3)
        yield connection.whenAllLogsAcknowledged()
        connection.enrollUser(42, name="Eve", backupnum=11, record=12345678)

        def types() -> Any:
            d = self.call("GET", "/api/events/?limit=1000")
            return d.addCallback(lambda r: [e["type"] for e in r.json["items"]])

        yield self.until(
            lambda: types().addCallback(lambda t: "user.enrolled" in t), "user.enrolled"
        )
        yield connection.disconnect()
        yield self.until(
            lambda: types().addCallback(lambda t: "terminal.disconnected" in t), "disconnected"
        )
        r = yield self.call("GET", "/api/events/?limit=1000", token=READER)
        self.assertEqual(r.status, 200)
        items = r.json["items"]
        self.assertEqual(
            [e["type"] for e in items],
            [
                "terminal.registered",
                "terminal.connected",
                "log.created",
                "door.event",
                "user.enrolled",
                "terminal.disconnected",
            ],
        )
        self.assertEqual([e["id"] for e in items], sorted(e["id"] for e in items))
        self.assertTrue(all(e["sn"] == "ZX0000000001" for e in items))
        log = items[2]
        self.assertEqual(log["data"]["time"], "2026-04-30 08:00:00")
        self.assertEqual(log["data"]["enrollid"], 1)
        self.assertIn("timeUTC", log["data"])
        self.assertEqual(items[4]["data"]["backupnum"], 11)
        self.assertEqual(items[5]["data"]["code"], 1000)  # the simulator closes cleanly
        self.assertNotIn("12345678", r.text)
        self.assertFalse(r.json["more"])
        self.assertEqual(r.json["next"], items[-1]["id"])

    @inlineCallbacks
    def test_pagingAndFilters(self) -> Any:
        yield self.start()
        store = self.running.context.store
        for i in range(5):
            yield store.appendEvent("terminal.connected", f"SN{i % 2}", {"i": i})
        yield store.appendEvent("door.event", "SN0", {})
        r = yield self.call("GET", "/api/events/?limit=2")
        self.assertEqual([e["data"]["i"] for e in r.json["items"]], [0, 1])
        self.assertTrue(r.json["more"])
        r = yield self.call("GET", f"/api/events/?limit=2&after={r.json['next']}")
        self.assertEqual([e["data"]["i"] for e in r.json["items"]], [2, 3])
        r = yield self.call("GET", "/api/events/?sn=SN1")
        self.assertEqual([e["data"]["i"] for e in r.json["items"]], [1, 3])
        r = yield self.call("GET", "/api/events/?type=door.*")
        self.assertEqual([e["type"] for e in r.json["items"]], ["door.event"])
        r = yield self.call("GET", "/api/events/?type=terminal.connected,door.event&sn=SN0")
        self.assertEqual(len(r.json["items"]), 4)
        r = yield self.call("GET", "/api/events/?after=1000")
        self.assertEqual((r.json["items"], r.json["next"], r.json["more"]), ([], 1000, False))

    @inlineCallbacks
    def test_badQueries(self) -> Any:
        yield self.start()
        for query, field in (
            ("type=nothing.here", "type"),
            ("after=-1", "after"),
            ("after=x", "after"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
        ):
            r = yield self.call("GET", f"/api/events/?{query}")
            self.assertEqual(r.status, 400, query)
            self.assertEqual(r.json["field"], field, query)
        r = yield self.call("GET", "/api/events/", token=None)
        self.assertEqual(r.status, 401)


class WebhookApiTests(ApiTestCase):
    @inlineCallbacks
    def test_crud(self) -> Any:
        yield self.start()
        r = yield self.call(
            "POST",
            "/api/webhooks/",
            {"url": "https://example.com/h", "types": ["log.*"], "description": "payroll"},
        )
        self.assertEqual(r.status, 201, r.text)
        hook = r.json
        self.assertTrue(hook["secret"].startswith("whsec_"))
        self.assertEqual(hook["types"], ["log.*"])
        self.assertEqual(hook["state"], "active")
        self.assertEqual(r.headers["location"], f"/api/webhooks/{hook['id']}")
        r = yield self.call("GET", f"/api/webhooks/{hook['id']}")
        self.assertNotIn("secret", r.json)
        self.assertEqual(r.json["url"], "https://example.com/h")
        r = yield self.call("GET", "/api/webhooks/")
        self.assertEqual(r.json["count"], 1)
        self.assertNotIn("secret", r.json["items"][0])
        self.assertNotIn(hook["secret"], r.text)
        r = yield self.call(
            "PATCH", f"/api/webhooks/{hook['id']}", {"types": ["door.event"], "sn": "ZX1"}
        )
        self.assertEqual((r.json["types"], r.json["sn"]), (["door.event"], "ZX1"))
        r = yield self.call("PATCH", f"/api/webhooks/{hook['id']}", {"enabled": False})
        self.assertEqual(r.json["state"], "disabled")
        r = yield self.call("PATCH", f"/api/webhooks/{hook['id']}", {"enabled": True})
        self.assertEqual(r.json["state"], "active")
        r = yield self.call("GET", "/api/audit/")
        actions = [e["action"] for e in r.json["items"]]
        self.assertIn("webhook.create", actions)
        self.assertNotIn(hook["secret"], r.text)
        r = yield self.call("DELETE", f"/api/webhooks/{hook['id']}")
        self.assertEqual(r.status, 204)
        for method, path in (
            ("GET", f"/api/webhooks/{hook['id']}"),
            ("DELETE", f"/api/webhooks/{hook['id']}"),
            ("GET", f"/api/webhooks/{hook['id']}/attempts"),
        ):
            r = yield self.call(method, path)
            self.assertEqual(r.status, 404, path)
        r = yield self.call("POST", "/api/webhooks/9/replay", {"from": 1})
        self.assertEqual(r.status, 404)
        r = yield self.call("POST", "/api/webhooks/", {"url": "http://x/"}, token=READER)
        self.assertEqual(r.status, 403)

    @inlineCallbacks
    def test_givenSecret(self) -> Any:
        yield self.start()
        secret = generateSecret()
        r = yield self.call("POST", "/api/webhooks/", {"url": "http://h/", "secret": secret})
        self.assertEqual(r.json["secret"], secret)
        self.assertEqual(r.json["types"], ["*"])

    @inlineCallbacks
    def test_badBodies(self) -> Any:
        yield self.start(webhookNetworks=("10.0.0.0/8",))
        for body, field in (
            ({}, "url"),
            ({"url": "ftp://x/"}, "url"),
            ({"url": "http://"}, "url"),
            ({"url": "http://u:p@x/"}, "url"),
            ({"url": "http://192.168.1.5/hook"}, "url"),
            ({"url": "http://x/", "types": []}, "types"),
            ({"url": "http://x/", "types": ["log.*", "nope"]}, "types[1]"),
            ({"url": "http://x/", "secret": "plain"}, "secret"),
            ({"url": "http://x/", "secret": "whsec_c2hvcnQ="}, "secret"),
            ({"url": "http://x/", "extra": 1}, "extra"),
        ):
            r = yield self.call("POST", "/api/webhooks/", body)
            self.assertEqual(r.status, 400, (body, r.text))
            self.assertEqual(r.json["field"], field, body)
        r = yield self.call("POST", "/api/webhooks/", {"url": "http://10.1.2.3:8080/hook"})
        self.assertEqual(r.status, 201)
        r = yield self.call("POST", f"/api/webhooks/{r.json['id']}/replay", {"from": 0})
        self.assertEqual((r.status, r.json["field"]), (400, "from"))

    @inlineCallbacks
    def test_linkLocalRefusedByDefault(self) -> Any:
        yield self.start()
        r = yield self.call("POST", "/api/webhooks/", {"url": "http://169.254.169.254/latest"})
        self.assertEqual((r.status, r.json["field"]), (400, "url"))


class WebhookDeliveryTests(ApiTestCase):
    timeout = 120

    def receiver(self, secret: str) -> Receiver:
        receiver = Receiver(secret)
        receiver.up()
        self.addCleanup(receiver.stop)
        return receiver

    @inlineCallbacks
    def subscribe(self, receiver: Receiver, secret: str, **body: Any) -> Any:
        r = yield self.call(
            "POST", "/api/webhooks/", {"url": receiver.url, "secret": secret, **body}
        )
        self.assertEqual(r.status, 201, r.text)
        return r.json

    @inlineCallbacks
    def logEventIds(self) -> Any:
        r = yield self.call("GET", "/api/events/?type=log.created&limit=1000")
        return [e["id"] for e in r.json["items"]]

    @inlineCallbacks
    def test_signedBatchesInOrder(self) -> Any:
        yield self.start(webhookBatchSize=50)
        secret = generateSecret()
        receiver = self.receiver(secret)
        yield self.subscribe(receiver, secret, types=["log.*"])
        terminal = simulated("ZX0000000002", users=5, logs=0)
        connection = yield self.connect(terminal)
        for i in range(120):
            connection.punch(1 + i % 5, f"2026-04-30 08:{i // 60:02d}:{i % 60:02d}")
        yield connection.whenAllLogsAcknowledged()
        expected = yield self.logEventIds()
        self.assertEqual(len(expected), 120)
        yield receiver.until(lambda: len(receiver.events) >= 120, "every log delivered")
        self.assertEqual(receiver.ids(), expected)
        self.assertEqual(receiver.rejected, [])
        self.assertLess(len(receiver.accepted), 120)  # batched
        self.assertTrue(all(len(b["data"]["events"]) <= 50 for b in receiver.bodies()))
        headers, _ = receiver.requests[0]
        first = receiver.bodies()[0]
        self.assertEqual(first["type"], "tm20.events")
        self.assertTrue(
            headers["webhook-id"].startswith(f"msg_{first['data']['webhook']}_{expected[0]}_")
        )
        self.assertTrue(headers["webhook-signature"].startswith("v1,"))
        self.assertEqual(receiver.events[0]["type"], "log.created")

    @inlineCallbacks
    def test_receiverDownThen500ThenRecovers(self) -> Any:
        """Every acknowledged log is delivered, in order, after the receiver's outage."""
        yield self.start(webhookRetrySchedule=FAST, webhookTimeout=2.0)
        secret = generateSecret()
        receiver = self.receiver(secret)
        hook = yield self.subscribe(receiver, secret, types=["log.created"])
        yield receiver.down()
        terminal = simulated("ZX0000000003", users=3, logs=0)
        connection = yield self.connect(terminal)
        for i in range(10):
            connection.punch(1 + i % 3, f"2026-04-30 09:00:{i:02d}")
        yield connection.whenAllLogsAcknowledged()

        @inlineCallbacks
        def attempts() -> Any:
            r = yield self.call("GET", f"/api/webhooks/{hook['id']}/attempts?limit=100")
            return r.json["items"]

        yield self.until(lambda: attempts().addCallback(lambda a: len(a) >= 2), "refused tries")
        tried = yield attempts()
        self.assertFalse(tried[0]["ok"])
        self.assertIn("refused", tried[0]["error"].lower())
        receiver.up()
        receiver.mode = "fail"
        yield receiver.until(lambda: receiver.requests, "a 500 answered")
        yield self.until(
            lambda: attempts().addCallback(lambda a: any(t["status"] == 500 for t in a)),
            "a 500 recorded",
        )
        tried = yield attempts()
        answered = [t for t in tried if t["status"] == 500][0]
        self.assertEqual(answered["response"], "receiver broken")
        self.assertEqual(answered["error"], "HTTP 500")
        for i in range(10, 15):
            connection.punch(1, f"2026-04-30 09:00:{i:02d}")
        yield connection.whenAllLogsAcknowledged()
        receiver.mode = "ok"
        expected = yield self.logEventIds()
        yield receiver.until(lambda: receiver.ids() == expected, "all delivered in order")
        yield self.until(
            lambda: self.call("GET", f"/api/webhooks/{hook['id']}").addCallback(
                lambda r: r.json["cursor"] == expected[-1] and r.json["failures"] == 0
            ),
            "cursor at the last event",
        )

    @inlineCallbacks
    def test_goneDisablesAndReEnableResumes(self) -> Any:
        yield self.start()
        secret = generateSecret()
        receiver = self.receiver(secret)
        hook = yield self.subscribe(receiver, secret, types=["log.created"])
        receiver.mode = "gone"
        terminal = simulated("ZX0000000004", users=1, logs=0)
        connection = yield self.connect(terminal)
        connection.punch(1, "2026-04-30 10:00:00")
        yield connection.whenAllLogsAcknowledged()

        def state() -> Any:
            return self.call("GET", f"/api/webhooks/{hook['id']}").addCallback(
                lambda r: r.json["state"]
            )

        yield self.until(lambda: state().addCallback(lambda s: s == "disabled"), "disabled")
        requests = len(receiver.requests)
        connection.punch(1, "2026-04-30 10:00:01")
        yield connection.whenAllLogsAcknowledged()
        receiver.mode = "ok"
        r = yield self.call("PATCH", f"/api/webhooks/{hook['id']}", {"enabled": True})
        self.assertEqual(r.json["state"], "active")
        expected = yield self.logEventIds()
        yield receiver.until(lambda: receiver.ids() == expected, "delivered from its cursor")
        self.assertEqual(requests, 1)

    @inlineCallbacks
    def test_failingThenReplay(self) -> Any:
        yield self.start(webhookRetrySchedule="0.05s,0.05s")
        secret = generateSecret()
        receiver = self.receiver(secret)
        receiver.mode = "fail"
        hook = yield self.subscribe(receiver, secret, types=["log.created"])
        terminal = simulated("ZX0000000005", users=1, logs=0)
        connection = yield self.connect(terminal)
        connection.punch(1, "2026-04-30 11:00:00")
        yield connection.whenAllLogsAcknowledged()
        yield self.until(
            lambda: self.call("GET", f"/api/webhooks/{hook['id']}").addCallback(
                lambda r: r.json["state"] == "failing"
            ),
            "failing",
        )
        r = yield self.call("GET", f"/api/webhooks/{hook['id']}")
        self.assertEqual(r.json["failures"], 3)
        self.assertEqual(r.json["lastError"], "HTTP 500")
        self.assertEqual(len(receiver.requests), 3)
        receiver.mode = "ok"
        expected = yield self.logEventIds()
        r = yield self.call("POST", f"/api/webhooks/{hook['id']}/replay", {"from": expected[0]})
        self.assertEqual((r.status, r.json["state"]), (200, "active"))
        yield receiver.until(lambda: receiver.ids() == expected, "replayed")
        # replay again from the start: delivered twice (at least once)
        yield self.call("POST", f"/api/webhooks/{hook['id']}/replay", {"from": 1})
        yield receiver.until(lambda: receiver.ids() == expected * 2, "replayed twice")

    @inlineCallbacks
    def test_slowReceiverTimesOutWithoutSlowingIngest(self) -> Any:
        yield self.start(webhookTimeout=0.3, webhookRetrySchedule="0.05s")
        secret = generateSecret()
        receiver = self.receiver(secret)
        receiver.mode = "slow"
        receiver.delay = 30.0
        hook = yield self.subscribe(receiver, secret, types=["log.created"])
        terminal = simulated("ZX0000000006", users=1, logs=0)
        connection = yield self.connect(terminal)
        for i in range(20):
            connection.punch(1, f"2026-04-30 12:00:{i:02d}")
            yield connection.whenAllLogsAcknowledged()
        yield self.until(
            lambda: self.call("GET", f"/api/webhooks/{hook['id']}/attempts").addCallback(
                lambda r: any("timed out" in (a["error"] or "") for a in r.json["items"])
            ),
            "a timed-out attempt",
        )

    @inlineCallbacks
    def test_onlyAnExcerptOfTheAnswerIsKept(self) -> Any:
        yield self.start(webhookRetrySchedule="0.05s")
        secret = generateSecret()
        receiver = self.receiver(secret)
        receiver.mode = "huge"
        hook = yield self.subscribe(receiver, secret)
        yield self.running.context.store.appendEvent("terminal.connected", "X", {})
        yield self.until(
            lambda: self.call("GET", f"/api/webhooks/{hook['id']}").addCallback(
                lambda r: r.json["state"] == "failing"
            ),
            "failing",
        )
        r = yield self.call("GET", f"/api/webhooks/{hook['id']}/attempts")
        for attempt in r.json["items"]:
            self.assertEqual(attempt["status"], 500)
            self.assertEqual(attempt["response"], "x" * 512)

    @inlineCallbacks
    def mostInFlight(self, cap: int) -> Any:
        """Three slow subscriptions, one event: the most requests in flight at once."""
        yield self.start(webhookConcurrency=cap)
        secret = generateSecret()
        receivers = [self.receiver(secret) for _ in range(3)]
        for receiver in receivers:
            receiver.gauge = receivers[0].gauge
            receiver.mode = "slow"
            receiver.delay = 0.2
            yield self.subscribe(receiver, secret)
        yield self.running.context.store.appendEvent("terminal.connected", "S", {})
        for receiver in receivers:
            yield receiver.until(lambda r=receiver: r.accepted, "delivered")
        return receivers[0].gauge[1]

    @inlineCallbacks
    def test_concurrencyCap(self) -> Any:
        most = yield self.mostInFlight(1)
        self.assertEqual(most, 1)

    @inlineCallbacks
    def test_concurrencyCapOfTwo(self) -> Any:
        most = yield self.mostInFlight(2)
        self.assertEqual(most, 2)

    @inlineCallbacks
    def test_redirectIsNotFollowed(self) -> Any:
        yield self.start(webhookRetrySchedule="0.05s")
        secret = generateSecret()
        receiver = self.receiver(secret)
        receiver.mode = "redirect"
        hook = yield self.subscribe(receiver, secret)
        yield self.running.context.store.appendEvent("terminal.connected", "X", {})
        yield self.until(
            lambda: self.call("GET", f"/api/webhooks/{hook['id']}/attempts").addCallback(
                lambda r: [a["status"] for a in r.json["items"]] == [302, 302]
            ),
            "two 302 attempts",
        )
        r = yield self.call("GET", f"/api/webhooks/{hook['id']}")
        self.assertEqual(r.json["state"], "failing")

    @inlineCallbacks
    def test_networksCheckedWhenConnecting(self) -> Any:
        """A host name resolving outside --webhook-networks is refused at connection time."""
        yield self.start(webhookNetworks=("10.0.0.0/8",), webhookRetrySchedule="0.05s")
        secret = generateSecret()
        receiver = self.receiver(secret)
        url = receiver.url.replace("127.0.0.1", "localhost")
        r = yield self.call("POST", "/api/webhooks/", {"url": url, "secret": secret})
        hook = r.json
        yield self.running.context.store.appendEvent("terminal.connected", "X", {})
        yield self.until(
            lambda: self.call("GET", f"/api/webhooks/{hook['id']}/attempts").addCallback(
                lambda r: (
                    r.json["items"]
                    and "not allowed by --webhook-networks" in r.json["items"][0]["error"]
                )
            ),
            "refused address",
        )
        self.assertEqual(receiver.requests, [])


__all__ = ["ADMIN"]


def _postgresStore(case: ApiTestCase) -> IStore:
    url = pgharness.createSchema("tm20_events_api")
    case.addCleanup(pgharness.dropSchema, url)
    return PostgresStore(url, reactor=reactor)


class EventLogApiPostgresTests(EventLogApiTests):
    """The same, on PostgreSQL."""

    def makeStore(self) -> IStore:
        return _postgresStore(self)


class WebhookDeliveryPostgresTests(WebhookDeliveryTests):
    """The same, on PostgreSQL."""

    def makeStore(self) -> IStore:
        return _postgresStore(self)
