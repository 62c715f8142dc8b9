"""
A terminal's time zone changed through another node: C{PATCH /api/terminals/{sn}/} posted to
node B while node A holds the terminal.  A re-reads the record at once (B wakes it with a
C{NOTIFY}): its next C{cloudtime} and the UTC time of the logs it stores are in the new zone.
Two real C{twistd tm20} nodes on one real PostgreSQL database, a raw WebSocket terminal on A.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet import threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import pgharness
from tests.clustersupport import Node, call
from tests.securitysupport import connectWS
from tests.serverfixture import sleep
from tests.test_twistd import waitForPort

#: UTC+14 and UTC-11: 25 hours apart, so no clock skew or slow machine can confuse them.
EAST, WEST = "Pacific/Kiritimati", "Pacific/Pago_Pago"
SN = "TZNODE01"


def localNow(zone: str) -> datetime:
    return datetime.now(ZoneInfo(zone)).replace(tzinfo=None)


def near(cloudtime: str, zone: str) -> bool:
    """Is C{cloudtime} (terminal-local) within 10 minutes of the time now in C{zone}?"""
    at = datetime.strptime(cloudtime, "%Y-%m-%d %H:%M:%S")
    return abs(at - localNow(zone)) < timedelta(minutes=10)


class TimezoneAcrossNodesTests(TestCase):
    timeout = 180

    @inlineCallbacks
    def setUp(self) -> Any:
        self.url = yield threads.deferToThread(pgharness.createDatabase, "tm20_cluster_tz")
        self.addCleanup(threads.deferToThread, pgharness.dropDatabase, self.url)
        workdir = Path(self.mktemp()).resolve()
        self.a, self.b = Node(workdir, self.url, "nodeA"), Node(workdir, self.url, "nodeB")
        self.addCleanup(lambda: [n.stop() for n in (self.a, self.b)])
        self.a.start()  # migrates first
        yield threads.deferToThread(waitForPort, self.a.port, self.a.proc)
        self.b.start()
        yield threads.deferToThread(waitForPort, self.b.port, self.b.proc)

    @inlineCallbacks
    def heartbeatIn(self, client: Any, zone: str) -> Any:
        """Send C{reg} heartbeats until the reply's C{cloudtime} is in C{zone} (bounded)."""
        cloudtime = ""
        for _ in range(100):
            reply = yield client.request({"cmd": "reg", "sn": SN, "devinfo": {}})
            cloudtime = reply["cloudtime"]
            if near(cloudtime, zone):
                return cloudtime
            yield sleep(0.1)
        self.fail(f"node A still answers {cloudtime}, not the time in {zone}\n{self.a.log()}")

    @inlineCallbacks
    def patchOnB(self, zone: str) -> Any:
        code, body = yield call("PATCH", f"{self.b.base}/api/terminals/{SN}/", {"timezone": zone})
        self.assertEqual((code, body["timezone"]), (200, zone), body)

    @inlineCallbacks
    def test_changeOnBReachesTheTerminalOnA(self) -> Any:
        client = yield connectWS(self, self.a.port)
        reply = yield client.request({"cmd": "reg", "sn": SN, "devinfo": {"modelname": "tfs30"}})
        self.assertIs(reply["result"], True, reply)
        for _ in range(100):  # B sees A holding it
            code, body = yield call("GET", f"{self.b.base}/api/connected/")
            if [t["node"] for t in body["items"]] == ["nodeA"]:
                break
            yield sleep(0.1)
        self.assertEqual([t["node"] for t in body["items"]], ["nodeA"], body)

        yield self.patchOnB(EAST)
        yield self.heartbeatIn(client, EAST)
        # a log sent now: its ack's cloudtime, and its UTC time, in the new zone
        local = localNow(EAST).replace(microsecond=0)
        ack = yield client.request(
            {
                "cmd": "sendlog",
                "sn": SN,
                "count": 1,
                "logindex": 0,
                "record": [{"enrollid": 7, "time": local.strftime("%Y-%m-%d %H:%M:%S")}],
            }
        )
        self.assertIs(ack["result"], True, ack)
        self.assertTrue(near(ack["cloudtime"], EAST), ack)
        code, body = yield call("GET", f"{self.b.base}/api/events/?sn={SN}&limit=100")
        self.assertEqual(code, 200, body)
        logs = [e for e in body["items"] if e["type"] == "log.created"]
        self.assertEqual(len(logs), 1, body)
        expected = local.replace(tzinfo=ZoneInfo(EAST)).astimezone(UTC)
        self.assertEqual(datetime.fromisoformat(logs[0]["data"]["timeUTC"]), expected)

        yield self.patchOnB(WEST)  # and again, the other way
        yield self.heartbeatIn(client, WEST)
        self.assertIn(f"{SN} changed on another node; record re-read", self.a.log())
