"""
Access decisions at the door, end to end: simulated terminals in server-approval mode over real
loopback WebSockets, rules and codes through the REST API, on SQLite (L{AccessTests}) and
PostgreSQL (L{AccessPostgresTests}).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.test_api_support import ApiTestCase
from tm20.access.model import DAYS
from tm20.interfaces import IStore
from tm20.simulator.device import SimulatedTerminal


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


class AccessTests(ApiTestCase):
    timeout = 120

    @inlineCallbacks
    def site(self, **config: Any) -> Any:
        """
        DOOR1 and DOOR2 in group hq; persons 1 (passes at any time), 2 (disabled), 3 (validity
        over), 5 (only on a day that is not today), all in hq; a rule for each.
        """
        yield self.start(**config)
        for sn in ("DOOR1", "DOOR2"):
            r = yield self.call("POST", "/api/terminals/", {"sn": sn})
            self.assertEqual(r.status, 201, r.text)
        r = yield self.call("POST", "/api/groups/", {"name": "hq", "terminals": ["DOOR1", "DOOR2"]})
        self.assertEqual(r.status, 201, r.text)
        persons = [
            {"enrollid": 1, "name": "Ann"},
            {"enrollid": 2, "name": "Bob", "enabled": False},
            {"enrollid": 3, "name": "Cy", "validUntil": "2020-01-01 00:00:00"},
            {"enrollid": 5, "name": "Eve"},
        ]
        for person in persons:
            r = yield self.call("POST", "/api/persons/", {**person, "groups": ["hq"]})
            self.assertEqual(r.status, 201, r.text)
        r = yield self.call(
            "POST",
            "/api/access/rules/",
            {"description": "staff", "persons": [1, 2, 3], "terminalGroups": ["hq"]},
        )
        self.assertEqual(r.status, 201, r.text)
        tomorrow = DAYS[(datetime.now().weekday() + 1) % 7]
        r = yield self.call(
            "POST",
            "/api/access/rules/",
            {
                "persons": [5],
                "terminals": ["DOOR1"],
                "windows": [{"days": [tomorrow], "start": "00:00", "end": "24:00"}],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        self.door = yield self.connect(SimulatedTerminal("DOOR1", serverApproval=True))

    @inlineCallbacks
    def punch(self, connection: Any, enrollid: int, time: str | None = None) -> Any:
        """A real-time punch; the door's answer."""
        answers = connection.terminal.accessAnswers
        before = len(answers)
        connection.punch(enrollid, time=time)
        yield self.until(lambda: len(answers) > before, f"the answer to {enrollid}'s punch")
        return answers[-1]

    @inlineCallbacks
    def accessEvents(self) -> Any:
        r = yield self.call("GET", "/api/events/?type=access.*")
        self.assertEqual(r.status, 200, r.text)
        return [(e["type"], e["data"]) for e in r.json["items"]]

    @inlineCallbacks
    def test_rulesDecideRealTimePunches(self) -> Any:
        """
        An enabled person inside a window passes; outside the window, disabled, expired,
        unknown: the door stays shut.  Each decision is stored with its log, reason and event.
        """
        yield self.site()
        expected = [(1, True, "rule"), (5, False, "window"), (2, False, "disabled")]
        expected += [(3, False, "expired"), (99, False, "unknown")]
        for enrollid, opened, _ in expected:
            answer = yield self.punch(self.door, enrollid)
            self.assertEqual((answer.opened, answer.result), (opened, True), enrollid)
        self.assertEqual(self.door.terminal.accessAnswers[0].message, "Ann")
        r = yield self.call("GET", "/api/terminals/DOOR1/logs/")
        stored = {
            log["enrollid"]: (log["accessGranted"], log["accessReason"]) for log in r.json["items"]
        }
        self.assertEqual(stored, {e: (o, reason) for e, o, reason in expected})
        events = yield self.accessEvents()
        self.assertEqual(
            [(t, d["enrollid"], d["reason"], d["kind"]) for t, d in events],
            [
                ("access.granted" if o else "access.denied", e, reason, "log")
                for e, o, reason in expected
            ],
        )
        r = yield self.call("GET", "/api/logs/?access=granted")
        self.assertEqual([log["enrollid"] for log in r.json["items"]], [1])
        r = yield self.call("GET", "/api/logs/?access=denied&accessReason=window")
        self.assertEqual([log["enrollid"] for log in r.json["items"]], [5])
        r = yield self.call("GET", "/api/logs/?access=maybe")
        self.assertEqual((r.status, r.json["field"]), (400, "access"))

    @inlineCallbacks
    def test_backlogNeverOpens(self) -> Any:
        """
        A batch of several records asks no decision (stored with none, answered access 0);
        one record older than --access-max-age is decided backlog: the door stays shut.
        """
        yield self.site()
        backlog = SimulatedTerminal("DOOR2", serverApproval=True, logs=3, users=2)
        connection = yield self.connect(backlog)
        yield connection.whenAllLogsAcknowledged()
        self.assertEqual(backlog.accessAnswers, [])
        r = yield self.call("GET", "/api/terminals/DOOR2/logs/?access=none")
        self.assertEqual(len(r.json["items"]), 3)
        old = (datetime.now() - timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S")
        answer = yield self.punch(self.door, 1, time=old)
        self.assertEqual((answer.opened, answer.result), (False, True))
        r = yield self.call("GET", "/api/logs/?accessReason=backlog")
        self.assertEqual([(log["sn"], log["time"]) for log in r.json["items"]], [("DOOR1", old)])
        answer = yield self.punch(self.door, 1)
        self.assertTrue(answer.opened)

    @inlineCallbacks
    def test_qrCodes(self) -> Any:
        """A visitor code: valid, expired, single-use used twice, wrong door; all recorded."""
        yield self.site()
        door2 = yield self.connect(SimulatedTerminal("DOOR2", serverApproval=True))
        visit = {"visitorName": "Zoe", "terminals": ["DOOR1"]}
        r = yield self.call(
            "POST", "/api/access/qrcodes/", {**visit, "validUntil": _iso(timedelta(hours=1))}
        )
        self.assertEqual(r.status, 201, r.text)
        valid = r.json["code"]
        r = yield self.call(
            "POST",
            "/api/access/qrcodes/",
            {
                **visit,
                "code": "EXPIRED-1",
                "validFrom": _iso(-timedelta(hours=2)),
                "validUntil": _iso(-timedelta(hours=1)),
            },
        )
        self.assertEqual(r.status, 201, r.text)
        r = yield self.call(
            "POST",
            "/api/access/qrcodes/",
            {**visit, "code": "ONCE-1", "singleUse": True, "validUntil": _iso(timedelta(hours=1))},
        )
        onceId = r.json["id"]
        r = yield self.call("GET", f"/api/access/qrcodes/{onceId}")
        self.assertNotIn("code", r.json)
        scans = [
            (self.door, valid, 1, "qr_valid"),
            (self.door, "EXPIRED-1", 0, "qr_expired"),
            (self.door, "ONCE-1", 1, "qr_valid"),
            (self.door, "ONCE-1", 0, "qr_used"),
            (door2, valid, 0, "qr_door"),
            (self.door, "never-issued", 0, "qr_unknown"),
        ]
        for connection, code, access, _ in scans:
            reply = yield connection.scanQrCode(code)
            self.assertEqual((reply["result"], reply["access"]), (True, access), code)
        self.assertEqual(
            [a.opened for a in self.door.terminal.accessAnswers], [True, False, True, False, False]
        )
        r = yield self.call("GET", "/api/access/decisions/")
        self.assertEqual(
            [(d["sn"], d["granted"], d["reason"]) for d in reversed(r.json["items"])],
            [(c.sn, bool(a), reason) for c, _, a, reason in scans],
        )
        events = yield self.accessEvents()
        self.assertEqual([d["reason"] for _, d in events], [s[3] for s in scans])
        r = yield self.call("GET", f"/api/access/qrcodes/{onceId}")
        self.assertEqual(r.json["usedSn"], "DOOR1")
        r = yield self.call("DELETE", f"/api/access/qrcodes/{onceId}")
        self.assertIsNotNone(r.json["revokedAt"])

    @inlineCallbacks
    def test_pinOfAPerson(self) -> Any:
        """sendpin: a person's password credential, decided by the rules."""
        yield self.site()
        r = yield self.call(
            "PATCH", "/api/persons/1/", {"credentials": [{"backupnum": 10, "record": 4711}]}
        )
        self.assertEqual(r.status, 200, r.text)
        reply = yield self.door.enterPin("4711")
        self.assertEqual((reply["access"], reply["enrollid"]), (1, 1))
        reply = yield self.door.enterPin("0000")
        self.assertEqual(reply["access"], 0)

    @inlineCallbacks
    def test_unknownAllowedPerGroupAndChangesApplyAtOnce(self) -> Any:
        yield self.site()
        answer = yield self.punch(self.door, 99)
        self.assertFalse(answer.opened)
        r = yield self.call("PATCH", "/api/access/groups/hq", {"unknownEnrollid": "allow"})
        self.assertEqual((r.status, r.json["unknownEnrollid"]), (200, "allow"))
        answer = yield self.punch(self.door, 99)
        self.assertTrue(answer.opened)
        # a new holiday today closes the rule (it does not cover holidays)
        today = datetime.now().strftime("%Y-%m-%d")
        r = yield self.call("POST", "/api/access/holidays/", {"name": "Feast", "start": today})
        self.assertEqual(r.status, 201, r.text)
        answer = yield self.punch(self.door, 1)
        self.assertFalse(answer.opened)
        r = yield self.call("DELETE", f"/api/access/holidays/{r.json['id']}")
        self.assertEqual(r.status, 204)
        answer = yield self.punch(self.door, 1)
        self.assertTrue(answer.opened)

    @inlineCallbacks
    def test_offlinePlanPushedToTheTerminal(self) -> Any:
        """The rules at DOOR1 compiled to its own lock settings and pushed through the queue."""
        yield self.site()
        r = yield self.call("GET", "/api/access/terminals/DOOR1/device")
        self.assertEqual(r.status, 200, r.text)
        plan = r.json
        self.assertIn("holidays", plan["notOnDevice"])
        locks = {u["enrollid"]: u for u in plan["userlocks"]}
        self.assertEqual(sorted(locks), [1, 2, 3, 5])
        r = yield self.call("POST", "/api/access/terminals/DOOR1/device")
        self.assertEqual(r.status, 202, r.text)
        ids = r.json["commands"]
        self.assertEqual(len(ids), 2)
        for commandId in ids:
            yield self.until(
                lambda c=commandId: self.commandStatus(c).addCallback(lambda s: s == "succeeded"),
                f"command {commandId} done",
            )
        terminal = self.door.terminal
        self.assertEqual(terminal.devlock["weekzone"], plan["weekzone"])
        self.assertEqual(terminal.devlock["dayzone"], plan["dayzone"])
        self.assertEqual(terminal.userlocks[1]["weekzone"], locks[1]["weekzone"])
        self.assertEqual(terminal.userlocks[3]["endtime"], "2020-01-01 00:00:00")
        r = yield self.call("GET", "/api/access/terminals/NOPE/device")
        self.assertEqual(r.status, 404)

    @inlineCallbacks
    def test_badInputNamesTheField(self) -> Any:
        yield self.site()
        cases = [
            ("/api/access/rules/", {"terminals": ["DOOR1"]}, "persons"),
            ("/api/access/rules/", {"persons": [1]}, "terminals"),
            (
                "/api/access/rules/",
                {"persons": [1], "terminalGroups": ["nope"]},
                "terminalGroups[0]",
            ),
            ("/api/access/rules/", {"persons": [77], "terminals": ["DOOR1"]}, "persons[0]"),
            (
                "/api/access/rules/",
                {
                    "persons": [1],
                    "terminals": ["DOOR1"],
                    "windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}],
                },
                "windows[0].start",
            ),
            ("/api/access/rules/", {"persons": [1], "terminals": ["DOOR1"], "x": 1}, "x"),
            (
                "/api/access/holidays/",
                {"name": "x", "start": "2026-12-02", "end": "2026-12-01"},
                "end",
            ),
            (
                "/api/access/qrcodes/",
                {"terminals": ["DOOR1"], "validUntil": _iso(timedelta(1))},
                "visitorName",
            ),
            (
                "/api/access/qrcodes/",
                {"visitorName": "z", "terminals": ["DOOR1"], "validUntil": "2026-12-01T10:00:00"},
                "validUntil",
            ),
            (
                "/api/access/qrcodes/",
                {"enrollid": 77, "terminals": ["DOOR1"], "validUntil": _iso(timedelta(1))},
                "enrollid",
            ),
            (
                "/api/access/qrcodes/",
                {"visitorName": "z", "terminals": ["DOOR1"], "validUntil": _iso(-timedelta(1))},
                "validUntil",
            ),
        ]
        for path, body, field in cases:
            r = yield self.call("POST", path, body)
            self.assertEqual((r.status, r.json.get("field")), (400, field), (body, r.text))
        r = yield self.call("GET", "/api/access/rules/999")
        self.assertEqual(r.status, 404)
        r = yield self.call("PATCH", "/api/access/groups/nope", {"unknownCode": "allow"})
        self.assertEqual(r.status, 404)


class AccessControlGateTests(ApiTestCase):
    """
    Decisions only where access control is in use (C{--access-control auto}, the default): a
    terminal no access rule, code or group setting covers gets the replies, records and events
    it got without access control; C{always} decides at every terminal.
    """

    timeout = 120

    @inlineCallbacks
    def door(self, sn: str) -> Any:
        """A terminal in server-approval mode, connected, with the C{sendlog} replies it got."""
        connection = yield self.connect(SimulatedTerminal(sn, serverApproval=True))
        replies: list[dict[str, Any]] = []
        ackLogs = connection.terminal.ackLogs

        def recorded(reply: Any) -> Any:
            replies.append(dict(reply))
            return ackLogs(reply)

        connection.terminal.ackLogs = recorded
        return connection, replies

    @inlineCallbacks
    def punch(self, connection: Any, replies: list[dict[str, Any]], enrollid: int) -> Any:
        """A real-time punch; the C{sendlog} reply (without C{sn}, C{cloudtime}, C{logindex})."""
        before = len(replies)
        connection.punch(enrollid)
        yield self.until(lambda: len(replies) > before, f"the reply to {enrollid}'s punch")
        reply = dict(replies[-1])
        for volatile in ("sn", "cloudtime", "logindex"):
            reply.pop(volatile, None)
        return reply

    @inlineCallbacks
    def stored(self, sn: str) -> Any:
        r = yield self.call("GET", f"/api/terminals/{sn}/logs/")
        self.assertEqual(r.status, 200, r.text)
        return [
            (log["enrollid"], log["accessGranted"], log["accessReason"]) for log in r.json["items"]
        ]

    @inlineCallbacks
    def eventTypes(self) -> Any:
        r = yield self.call("GET", "/api/events/")
        self.assertEqual(r.status, 200, r.text)
        return [e["type"] for e in r.json["items"]]

    @inlineCallbacks
    def test_autoWithoutAnyAccessSettingRepliesAsBefore(self) -> Any:
        """
        No rule, code or group setting: a punch is stored with no decision and answered without
        C{access}, with no C{access.*} event; C{sendqrcode} gets C{access:0}, C{sendpin} the
        generic failure.  A rule covering the door through a group makes it decided at once;
        another door stays as it was.
        """
        yield self.start()
        connection, replies = yield self.door("LOBBY1")
        reply = yield self.punch(connection, replies, 2)
        self.assertEqual(reply, {"ret": "sendlog", "result": True, "count": 1})
        stored = yield self.stored("LOBBY1")
        self.assertEqual(stored, [(2, None, None)])
        types = yield self.eventTypes()
        self.assertIn("log.created", types)
        self.assertEqual([t for t in types if t.startswith("access.")], [])
        scanned = yield connection.scanQrCode("VISITOR-1")
        self.assertEqual((scanned["result"], scanned["access"]), (True, 0))
        self.assertNotIn("message", scanned)
        pin = yield connection.enterPin("4711")
        self.assertEqual((pin["result"], pin.get("access")), (False, None))
        r = yield self.call("GET", "/api/access/decisions/")
        self.assertEqual((r.status, r.json["items"]), (200, []), r.text)

        other, otherReplies = yield self.door("LOBBY2")
        r = yield self.call("POST", "/api/persons/", {"enrollid": 1, "name": "Ann"})
        self.assertEqual(r.status, 201, r.text)
        r = yield self.call("POST", "/api/groups/", {"name": "lobby", "terminals": ["LOBBY1"]})
        self.assertEqual(r.status, 201, r.text)
        r = yield self.call(
            "POST", "/api/access/rules/", {"persons": [1], "terminalGroups": ["lobby"]}
        )
        self.assertEqual(r.status, 201, r.text)
        reply = yield self.punch(connection, replies, 1)
        self.assertEqual((reply["result"], reply["access"]), (True, 1))
        stored = yield self.stored("LOBBY1")
        self.assertCountEqual(stored, [(2, None, None), (1, True, "rule")])
        reply = yield self.punch(other, otherReplies, 1)
        self.assertEqual(reply, {"ret": "sendlog", "result": True, "count": 1})
        types = yield self.eventTypes()
        self.assertEqual([t for t in types if t.startswith("access.")], ["access.granted"])

    @inlineCallbacks
    def test_groupAccessSettingPutsTheDoorUnderControl(self) -> Any:
        """A group's unknown-enrollid setting alone covers its doors (here: lets 99 in)."""
        yield self.start()
        r = yield self.call("POST", "/api/terminals/", {"sn": "GATE1"})
        r = yield self.call("POST", "/api/groups/", {"name": "gates", "terminals": ["GATE1"]})
        self.assertEqual(r.status, 201, r.text)
        r = yield self.call("PATCH", "/api/access/groups/gates", {"unknownEnrollid": "allow"})
        self.assertEqual(r.status, 200, r.text)
        connection, replies = yield self.door("GATE1")
        reply = yield self.punch(connection, replies, 99)
        self.assertEqual((reply["result"], reply["access"]), (True, 1))

    @inlineCallbacks
    def test_alwaysDecidesAtEveryTerminal(self) -> Any:
        """C{--access-control always}: no rule at all, every punch is decided (denied)."""
        yield self.start(accessControl="always")
        connection, replies = yield self.door("LOBBY1")
        reply = yield self.punch(connection, replies, 1)
        self.assertEqual((reply["result"], reply["access"]), (True, 0))
        stored = yield self.stored("LOBBY1")
        self.assertEqual(stored, [(1, False, "unknown")])
        types = yield self.eventTypes()
        self.assertEqual([t for t in types if t.startswith("access.")], ["access.denied"])
        scanned = yield connection.scanQrCode("VISITOR-1")
        self.assertEqual((scanned["result"], scanned["access"]), (True, 0))
        self.assertIn("message", scanned)


class AccessControlGatePostgresTests(AccessControlGateTests):
    """The same on PostgreSQL."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_access_gate")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store


class AccessPostgresTests(AccessTests):
    """The same tests on PostgreSQL."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_access")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store
