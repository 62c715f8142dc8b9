"""
Never acknowledge what was not stored, end to end: a real server on loopback, raw WebSocket
terminals and the REST API, on SQLite (L{QuarantineTests}) and PostgreSQL
(L{QuarantinePostgresTests}).

  - a C{sendlog} whose C{record} is missing, misnamed, null, not a list, or empty while C{count}
    says otherwise gets C{result:false} and a warning naming the terminal;
  - a record that can never be stored is held verbatim in the quarantine, the batch is stored and
    acknowledged with the terminal's C{count}, and the quarantine is on the API;
  - a C{senduser} that can never be stored is quarantined and acknowledged.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from tests.serverfixture import connectRaw, registeredClient
from tests.test_api_support import ApiTestCase
from tm20.interfaces import IStore
from tm20.model import LogQuery
from tm20.protocol.storable import INT32_MAX, INT64_MAX

SN = "ZX0006827500"
GOOD1 = '{"enrollid":1,"time":"2026-04-30 08:00:00","mode":1}'
GOOD2 = '{"enrollid":2,"time":"2026-04-30 08:00:01","mode":1}'
#: Records the parser accepts as JSON but no store can hold (or that are no log record at all).
UNSTORABLE = [
    '{"enrollid":3,"time":"2026-02-30 08:00:00"}',
    '{ "enrollid" : 9223372036854775808, "time":"2026-04-30 08:00:02" }',
    '{"enrollid":4,"time":"2026-04-30 08:00:03","mode":' + str(INT64_MAX + 1) + "}",
    '{"enrollid":5,"time":"2026-04-30 08:00:04","image":"QU\\u0000JD"}',
    '{"enrollid":6,"time":"2026-04-30 08:00:05","verifymode":"99999999999999999999"}',
    '"not a record"',
]


def sendlog(records: list[str], count: int | None, logindex: int = 7) -> bytes:
    head = '{"cmd":"sendlog","sn":"' + SN + '",'
    if count is not None:
        head += f'"count":{count},'
    return (head + f'"logindex":{logindex},"record":[' + ",".join(records) + "]}").encode()


class QuarantineTests(ApiTestCase):
    """On SQLite."""

    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def warnings(self, containing: str) -> list[str]:
        texts = [formatEvent(e) for e in self.events if e.get("log_level") is LogLevel.warn]
        return [t for t in texts if containing in t]

    @inlineCallbacks
    def storedLogs(self) -> Any:
        store = self.running.context.store
        logs = yield store.queryLogs(LogQuery(sn=SN, limit=1000))
        return sorted((log.enrollid, log.time) for log in logs)

    @inlineCallbacks
    def test_batchWithoutRecordsRefused(self) -> Any:
        """
        Missing, misnamed, null, not-a-list, or empty-while-count-says-otherwise records: each
        batch gets C{result:false} (it used to be acked with its count, storing nothing) and a
        warning naming the terminal and the field.
        """
        yield self.start()
        client = yield registeredClient(self, self.running, SN)
        frames = [
            {"cmd": "sendlog", "sn": SN, "count": 1, "logindex": 1},
            {"cmd": "sendlog", "sn": SN, "count": 1, "records": [json.loads(GOOD1)]},
            {"cmd": "sendlog", "sn": SN, "count": 1, "Record": [json.loads(GOOD1)]},
            {"cmd": "sendlog", "sn": SN, "count": 1, "data": [json.loads(GOOD1)]},
            {"cmd": "sendlog", "sn": SN, "count": 1, "record": None},
            {"cmd": "sendlog", "sn": SN, "count": 1, "record": json.loads(GOOD1)},
            {"cmd": "sendlog", "sn": SN, "count": 1, "record": "[]"},
            {"cmd": "sendlog", "sn": SN, "count": 2, "logindex": 3, "record": []},
        ]
        for frame in frames:
            reply = yield client.request(frame)
            self.assertEqual(reply, {"ret": "sendlog", "result": False, "reason": 1}, frame)
        self.assertEqual((yield self.storedLogs()), [])
        warned = self.warnings(SN)
        self.assertEqual(len([w for w in warned if "record" in w]), len(frames), warned)
        # the connection lives on
        reply = yield client.request(sendlog([GOOD1], 1))
        self.assertIs(reply["result"], True)

    @inlineCallbacks
    def test_emptyBatchClaimingNothingAcked(self) -> Any:
        """C{record:[]} with C{count} 0 (or none) stores nothing and is acknowledged as such."""
        yield self.start()
        client = yield registeredClient(self, self.running, SN)
        reply = yield client.request(sendlog([], 0))
        self.assertEqual((reply["result"], reply["count"], reply["logindex"]), (True, 0, 7), reply)
        reply = yield client.request(sendlog([], None))
        self.assertIs(reply["result"], True)
        self.assertNotIn("count", reply)
        self.assertEqual((yield self.storedLogs()), [])

    @inlineCallbacks
    def test_unstorableRecordsQuarantinedBatchAcked(self) -> Any:
        """
        A batch mixing storable records with ones no store can hold is acknowledged whole, with
        the terminal's count, once the good records are stored and the others held verbatim; a
        resend stores and holds nothing twice.  One warning per batch names the terminal.
        """
        yield self.start()
        client = yield registeredClient(self, self.running, SN)
        records = [GOOD1, *UNSTORABLE, GOOD2]
        frame = sendlog(records, len(records))
        reply = yield client.request(frame)
        self.assertEqual(
            (reply["ret"], reply["result"], reply["count"], reply["logindex"]),
            ("sendlog", True, len(records), 7),
        )
        self.assertEqual(
            (yield self.storedLogs()), [(1, "2026-04-30 08:00:00"), (2, "2026-04-30 08:00:01")]
        )
        warned = self.warnings("quarantine")
        self.assertEqual(len(warned), 1)
        self.assertIn(SN, warned[0])
        self.assertIn("record[1].time", warned[0])
        r = yield self.call("GET", f"/api/terminals/{SN}/quarantine/")
        self.assertEqual(r.status, 200)
        items = r.json["items"]
        self.assertEqual([i["raw"] for i in items], list(reversed(UNSTORABLE)))
        self.assertEqual(
            [i["field"] for i in items],
            [
                "record[6]",
                "record[5].verifymode",
                "record[4].image",
                "record[3].mode",
                "record[2].enrollid",
                "record[1].time",
            ],
        )
        self.assertEqual({i["source"] for i in items}, {"sendlog"})
        self.assertEqual({i["sn"] for i in items}, {SN})
        self.assertEqual(
            items[4]["record"], {"enrollid": INT64_MAX + 1, "time": "2026-04-30 08:00:02"}
        )
        self.assertEqual(items[2]["record"]["image"], "QU\x00JD")
        self.assertTrue(items[5]["reason"].startswith("record[1].time: "))
        self.assertIsNotNone(items[0]["receivedAt"])
        self.assertIsNone(r.json["next"])
        # the terminal did not hear the ack: the same batch again
        reply = yield client.request(frame)
        self.assertEqual((reply["result"], reply["count"]), (True, len(records)))
        self.assertEqual(len((yield self.storedLogs())), 2)
        r = yield self.call("GET", "/api/logs/quarantine/")
        self.assertEqual(len(r.json["items"]), len(UNSTORABLE))
        # and the terminal's backlog goes on
        reply = yield client.request(sendlog([GOOD1.replace("08:00:00", "09:00:00")], 1, 8))
        self.assertEqual((reply["result"], reply["logindex"]), (True, 8))
        self.assertEqual(len((yield self.storedLogs())), 3)
        self.assertEqual([e for e in self.events if e.get("log_level") is LogLevel.critical], [])

    @inlineCallbacks
    def test_batchOfOnlyUnstorableRecordsAcked(self) -> Any:
        """Even when no record can be stored, the batch is held, so acknowledged."""
        yield self.start()
        client = yield registeredClient(self, self.running, SN)
        reply = yield client.request(sendlog(UNSTORABLE[:2], 2))
        self.assertEqual((reply["result"], reply["count"]), (True, 2))
        r = yield self.call("GET", f"/api/terminals/{SN}/quarantine/")
        self.assertEqual(len(r.json["items"]), 2)

    @inlineCallbacks
    def test_senduserUnstorableQuarantinedAndAcked(self) -> Any:
        """
        A C{senduser} whose values no store can hold is held (the whole frame, verbatim) and
        acknowledged: refused, the terminal would resend it every few seconds, forever.
        """
        yield self.start()
        client = yield registeredClient(self, self.running, SN)
        frames = [
            '{"cmd":"senduser","sn":"'
            + SN
            + '","enrollid":7,"backupnum":'
            + str(INT32_MAX + 1)
            + ',"record":1}',
            '{"cmd":"senduser","sn":"' + SN + '","enrollid":8,"admin":1,"name":"A\\u0000"}',
            '{"cmd":"senduser","sn":"' + SN + '","enrollid":' + str(INT64_MAX + 1) + "}",
            '{"cmd":"senduser","sn":"' + SN + '","name":"no id"}',
        ]
        for frame in frames:
            reply = yield client.request(frame.encode())
            self.assertEqual((reply["ret"], reply["result"]), ("senduser", True), frame)
            self.assertIn("cloudtime", reply)
        store = self.running.context.store
        self.assertEqual((yield store.listUsers(SN, 100, None)), [])
        r = yield self.call("GET", f"/api/logs/quarantine/?terminal={SN}")
        items = r.json["items"]
        self.assertEqual([i["raw"] for i in items], list(reversed(frames)))
        self.assertEqual({i["source"] for i in items}, {"senduser"})
        self.assertEqual([i["field"] for i in items], ["enrollid", "enrollid", "name", "backupnum"])
        # a storable one is still stored
        reply = yield client.request(
            {"cmd": "senduser", "sn": SN, "enrollid": 7, "backupnum": INT32_MAX, "record": 1}
        )
        self.assertIs(reply["result"], True)
        self.assertEqual(len((yield store.listUsers(SN, 100, None))), 1)

    @inlineCallbacks
    def test_regWithUnstorableTextRefusedAlike(self) -> Any:
        """
        A C{reg} whose sn, cpusn or devinfo column holds a NUL is refused by the parser on both
        stores (SQLite used to take it; PostgreSQL failed the transaction, CRITICAL, each retry).
        """
        yield self.start()
        client = yield connectRaw(self, self.running)
        for frame in (
            {"cmd": "reg", "sn": "NUL\x00SN", "devinfo": {"modelname": "tfs30"}},
            {"cmd": "reg", "sn": "NULMODEL", "devinfo": {"modelname": "tfs\x0030"}},
        ):
            reply = yield client.request(frame)
            self.assertEqual((reply["ret"], reply["result"]), ("reg", False))
        self.assertEqual((yield self.running.context.store.listTerminals(None)), [])
        self.assertEqual([e for e in self.events if e.get("log_level") is LogLevel.critical], [])

    @inlineCallbacks
    def test_quarantineRoutesPageAndValidate(self) -> Any:
        """Paged with limit and cursor; an unknown terminal is 404, a bad cursor 400."""
        yield self.start()
        client = yield registeredClient(self, self.running, SN)
        other = yield registeredClient(self, self.running, "OTHER1")
        for i in range(5):
            reply = yield client.request(sendlog([f"[{i}]"], 1, i))
            self.assertIs(reply["result"], True)
        reply = yield other.request({"cmd": "sendlog", "sn": "OTHER1", "count": 1, "record": [[9]]})
        self.assertIs(reply["result"], True)
        seen: list[str] = []
        path = f"/api/terminals/{SN}/quarantine/?limit=2"
        while path:
            r = yield self.call("GET", path)
            self.assertEqual(r.status, 200)
            seen.extend(i["raw"] for i in r.json["items"])
            nxt = r.json["next"]
            path = f"/api/terminals/{SN}/quarantine/?limit=2&cursor={nxt}" if nxt else ""
        self.assertEqual(seen, ["[4]", "[3]", "[2]", "[1]", "[0]"])
        r = yield self.call("GET", "/api/logs/quarantine/?limit=10")
        self.assertEqual([i["sn"] for i in r.json["items"]], ["OTHER1"] + [SN] * 5)
        r = yield self.call("GET", "/api/logs/quarantine/?terminal=OTHER1")
        self.assertEqual([i["record"] for i in r.json["items"]], [[9]])
        r = yield self.call("GET", "/api/terminals/NOPE/quarantine/")
        self.assertEqual((r.status, r.json["error"]), (404, "not_found"))
        r = yield self.call("GET", "/api/logs/quarantine/?cursor=bogus")
        self.assertEqual((r.status, r.json["field"]), (400, "cursor"))
        r = yield self.call("GET", "/api/logs/quarantine/?limit=0")
        self.assertEqual((r.status, r.json["field"]), (400, "limit"))
        r = yield self.call("GET", f"/api/terminals/{SN}/quarantine/", token=None)
        self.assertEqual(r.status, 401)


class QuarantinePostgresTests(QuarantineTests):
    """The same on PostgreSQL, where these values used to fail every retry of the batch."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_quarantine")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store


class QuarantineFailureTests(ApiTestCase):
    """When the quarantine cannot be written, the batch is not acknowledged (SQLite)."""

    @inlineCallbacks
    def test_quarantineFailureRefusesTheBatch(self) -> Any:
        yield self.start()
        client = yield registeredClient(self, self.running, SN)
        store = self.running.context.store

        def dropQuarantine(conn: Any) -> None:
            conn.execute("DROP TABLE quarantined_records")

        yield store.runInTransaction(dropQuarantine)
        reply = yield client.request(sendlog([GOOD1, UNSTORABLE[0]], 2))
        self.assertEqual(reply, {"ret": "sendlog", "result": False, "reason": 1})
        logs = yield store.queryLogs(LogQuery(sn=SN))
        self.assertEqual(logs, [])
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 1)
        # a batch without unstorable records is not concerned
        reply = yield client.request(sendlog([GOOD2], 1))
        self.assertIs(reply["result"], True)
