"""
A time-zone change (C{PATCH /api/terminals/{sn}/ {"timezone": ...}}) reaches a connected
terminal's very next C{cloudtime}: C{reg} heartbeat, C{sendlog} and C{senduser} acks and
C{settime} always agree.

A real server on loopback (real HTTP, real WebSockets, real SQLite) whose clock is an injected
L{Clock}, so every C{cloudtime} is known exactly.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock

from tests.serverfixture import RunningServer, connectRaw
from tests.test_api_support import ADMIN, ApiTestCase
from tests.test_terminal_one_socket import WrappedStore
from tm20.config import ServerConfig
from tm20.service import TM20Service, buildServer
from tm20.store.sqlite import SQLiteStore

#: 2023-11-14 22:13:20 UTC.
NOW = 1_700_000_000
UTC_TIME = "2023-11-14 22:13:20"
TOKYO_TIME = "2023-11-15 07:13:20"
NEW_YORK_TIME = "2023-11-14 17:13:20"


class TimezoneChangeTests(ApiTestCase):
    @inlineCallbacks
    def start(self, **changes: Any) -> Any:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = WrappedStore(SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor))
        config = ServerConfig(
            ports=("tcp:0:interface=127.0.0.1",),
            apiTokens=(f"admin:{ADMIN}",),
            defaultTimezone="Africa/Abidjan",  # UTC+0
            **changes,
        )
        service = TM20Service(buildServer(config, reactor, self.store, clock=self.clock))
        service.startService()
        ports = yield service.ready
        self.addCleanup(service.stopService)
        self.running = RunningServer(service, ports[0].getHost().port)
        return self.running

    @inlineCallbacks
    def settime(self, client: Any, sn: str) -> Any:
        """Ask the API for C{settime}; answer it; @return: the C{cloudtime} it carried."""
        pending = self.call("POST", f"/api/terminals/{sn}/command/", {"command": "settime"})
        frame = yield client.next()
        self.assertEqual(frame["cmd"], "settime")
        client.send({"ret": "settime", "sn": sn, "result": True})
        r = yield pending
        self.assertEqual((r.status, r.json["status"]), (200, "succeeded"))
        return frame["cloudtime"]

    @inlineCallbacks
    def cloudtimes(self, client: Any, sn: str, logindex: int) -> Any:
        """The C{cloudtime} of a C{reg} heartbeat, a C{sendlog} ack, a C{senduser} ack, C{settime}."""
        heartbeat = yield client.request({"cmd": "reg", "sn": sn, "devinfo": {}})
        ack = yield client.request(
            {
                "cmd": "sendlog",
                "sn": sn,
                "count": 1,
                "logindex": logindex,
                "record": [{"enrollid": 1, "time": f"2023-11-14 10:00:{logindex:02d}"}],
            }
        )
        user = yield client.request(
            {"cmd": "senduser", "sn": sn, "enrollid": 1, "backupnum": 10, "record": 1234}
        )
        settime = yield self.settime(client, sn)
        return [heartbeat["cloudtime"], ack["cloudtime"], user["cloudtime"], settime]

    @inlineCallbacks
    def test_patchReachesTheVeryNextCloudtime(self) -> Any:
        yield self.start()
        client = yield connectRaw(self, self.running)
        reply = yield client.request({"cmd": "reg", "sn": "TZ1", "devinfo": {}})
        self.assertEqual(reply["cloudtime"], UTC_TIME)
        self.assertEqual((yield self.cloudtimes(client, "TZ1", 1)), [UTC_TIME] * 4)

        r = yield self.call("PATCH", "/api/terminals/TZ1/", {"timezone": "Asia/Tokyo"})
        self.assertEqual((r.status, r.json["timezone"]), (200, "Asia/Tokyo"))
        self.assertEqual((yield self.cloudtimes(client, "TZ1", 2)), [TOKYO_TIME] * 4)

        r = yield self.call("PATCH", "/api/terminals/TZ1/", {"timezone": "America/New_York"})
        self.assertEqual(r.status, 200)
        self.assertEqual((yield self.cloudtimes(client, "TZ1", 3)), [NEW_YORK_TIME] * 4)

        r = yield self.call("PATCH", "/api/terminals/TZ1/", {"timezone": None})
        self.assertEqual(r.status, 200)
        self.assertEqual((yield self.cloudtimes(client, "TZ1", 4)), [UTC_TIME] * 4)

    @inlineCallbacks
    def test_patchDuringARegistrationIsNotLost(self) -> Any:
        """
        The registration's transaction read the terminal before the change committed: its
        answer, and every cloudtime after, is in the new zone all the same.
        """
        yield self.start()
        gate: Deferred[None] = Deferred()
        self.store.gate = gate
        client = yield connectRaw(self, self.running)
        client.send({"cmd": "reg", "sn": "TZ2", "devinfo": {}})
        yield self.until(lambda: self.store.registered == ["TZ2"], "the registration")
        self.store.gate = None
        r = yield self.call("PATCH", "/api/terminals/TZ2/", {"timezone": "Asia/Tokyo"})
        self.assertEqual(r.status, 200)
        gate.callback(None)
        reply = yield client.next()
        self.assertEqual((reply["result"], reply["cloudtime"]), (True, TOKYO_TIME))
        self.assertEqual((yield self.cloudtimes(client, "TZ2", 1)), [TOKYO_TIME] * 4)
