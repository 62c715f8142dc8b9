"""
The REST API over real HTTP (treq) against a real server on loopback, with simulated terminals.

L{ApiEndpointTests} runs on SQLite; L{ApiEndpointPostgresTests} runs the same tests on
PostgreSQL (tests/pgharness.py).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import fail, inlineCallbacks

from tests.serverfixture import registeredClient
from tests.test_api_support import ADMIN, ApiTestCase, simulated
from tm20.errors import StoreUnavailable
from tm20.interfaces import IStore
from tm20.protocol.timefmt import cloudTime, parseTime


class BreakableStore:
    """A store whose every call fails with C{error} while C{error} is set."""

    def __init__(self, store: IStore) -> None:
        self._store = store
        self.error: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name in ("start", "stop") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.error is not None:
                return fail(self.error)
            return attribute(*args, **kwargs)

        return call


class ApiEndpointTests(ApiTestCase):
    """Every endpoint, on the store L{makeStore} gives."""

    # -- terminals ---------------------------------------------------------------------------

    @inlineCallbacks
    def test_terminalsListDetailAndConnected(self) -> Any:
        yield self.start()
        yield self.connect(simulated("SIM1"))
        r = yield self.call("POST", "/api/terminals/", {"sn": "PRE1", "name": "Door B"})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.headers["location"], "/api/terminals/PRE1/")
        r = yield self.call("GET", "/api/terminals/")
        self.assertEqual(r.status, 200)
        self.assertEqual([t["sn"] for t in r.json["items"]], ["PRE1", "SIM1"])
        r = yield self.call("GET", "/api/terminals/?connected=true")
        self.assertEqual([t["sn"] for t in r.json["items"]], ["SIM1"])
        r = yield self.call("GET", "/api/terminals/?connected=false")
        self.assertEqual([t["sn"] for t in r.json["items"]], ["PRE1"])
        r = yield self.call("GET", "/api/terminals/SIM1/")
        self.assertEqual(r.status, 200)
        detail = r.json
        self.assertIs(detail["connected"], True)
        self.assertEqual(detail["status"], "approved")
        self.assertEqual(detail["modelname"], "tfs30")
        self.assertEqual(detail["firmware"], "TH900_click V5.0")
        self.assertEqual(detail["devinfo"]["usersize"], 3000)
        self.assertIn("logsize", detail["devinfo"])
        self.assertIsNotNone(detail["lastSeen"])
        # without the trailing slash too
        r = yield self.call("GET", "/api/terminals/SIM1")
        self.assertEqual(r.status, 200)
        r = yield self.call("GET", "/api/connected/")
        self.assertEqual(r.status, 200)
        self.assertEqual([t["sn"] for t in r.json["items"]], ["SIM1"])
        self.assertEqual(r.json["count"], 1)
        r = yield self.call("GET", "/api/terminals/NOPE/")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json["error"], "not_found")

    @inlineCallbacks
    def test_createTerminalConflictsAndValidation(self) -> Any:
        yield self.start()
        r = yield self.call(
            "POST", "/api/terminals/", {"sn": "PRE1", "approved": False, "timezone": "Asia/Tokyo"}
        )
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json["status"], "pending")
        self.assertEqual(r.json["timezone"], "Asia/Tokyo")
        r = yield self.call("POST", "/api/terminals/", {"sn": "PRE1"})
        self.assertEqual(r.status, 409)
        self.assertEqual(r.json["error"], "conflict")
        r = yield self.call("POST", "/api/terminals/", {"sn": "PRE2", "timezone": "Mars/Base"})
        self.assertEqual((r.status, r.json["field"]), (400, "timezone"))
        r = yield self.call("POST", "/api/terminals/", {"sn": "PRE2", "colour": "red"})
        self.assertEqual((r.status, r.json["field"]), (400, "colour"))
        r = yield self.call("POST", "/api/terminals/", raw=b"{not json")
        self.assertEqual((r.status, r.json["error"]), (400, "invalid_json"))
        r = yield self.call("POST", "/api/terminals/", {"sn": "X\u0000Y"})
        self.assertEqual(r.status, 400)
        r = yield self.call("GET", "/api/terminals/?status=pending")
        self.assertEqual([t["sn"] for t in r.json["items"]], ["PRE1"])
        r = yield self.call("GET", "/api/terminals/?status=approved")
        self.assertEqual(r.json["items"], [])

    @inlineCallbacks
    def test_approvingAPendingTerminalLetsItRegister(self) -> Any:
        yield self.start(requireWhitelist=True)
        terminal = simulated("NEW1")
        from tm20.simulator.client import TerminalConnection

        connection = TerminalConnection(
            terminal,
            self.running.wsURL(),
            reactor=reactor,
            regRetry=0.1,
            retryPolicy=lambda attempt: 0.05,
        )
        connection.start()
        self.addCleanup(connection.disconnect)
        r = yield self.until(
            lambda: self.call("GET", "/api/terminals/?status=pending").addCallback(
                lambda r: r.json["items"]
            ),
            "the terminal shows up as pending",
        )
        self.assertEqual([t["sn"] for t in r], ["NEW1"])
        self.assertIs(r[0]["connected"], False)
        self.assertFalse(connection.registered)
        r = yield self.call("PATCH", "/api/terminals/NEW1/", {"whitelisted": True, "name": "Hall"})
        self.assertEqual(r.status, 200)
        self.assertIs(r.json["approved"], True)
        self.assertEqual(r.json["name"], "Hall")
        yield connection.whenRegistered()
        r = yield self.call("GET", "/api/terminals/NEW1/")
        self.assertIs(r.json["connected"], True)

    @inlineCallbacks
    def test_patchTerminal(self) -> Any:
        yield self.start()
        yield self.connect(simulated("SIM1"))
        r = yield self.call("PATCH", "/api/terminals/SIM1/", {"timezone": "Europe/Paris"})
        self.assertEqual((r.status, r.json["timezone"]), (200, "Europe/Paris"))
        r = yield self.call("PATCH", "/api/terminals/SIM1/", {"timezone": None})
        self.assertIsNone(r.json["timezone"])
        r = yield self.call("PATCH", "/api/terminals/SIM1/", {})
        self.assertEqual(r.status, 400)
        r = yield self.call(
            "PATCH", "/api/terminals/SIM1/", {"approved": True, "whitelisted": False}
        )
        self.assertEqual((r.status, r.json["field"]), (400, "whitelisted"))
        r = yield self.call("PATCH", "/api/terminals/SIM1/", {"active": "no"})
        self.assertEqual((r.status, r.json["field"]), (400, "active"))
        r = yield self.call("PATCH", "/api/terminals/NOPE/", {"active": False})
        self.assertEqual(r.status, 404)
        # deactivating a connected terminal disconnects it
        r = yield self.call("PATCH", "/api/terminals/SIM1/", {"active": False})
        self.assertIs(r.json["active"], False)
        yield self.until(
            lambda: self.call("GET", "/api/connected/").addCallback(lambda r: r.json["count"] == 0),
            "the deactivated terminal is disconnected",
        )

    @inlineCallbacks
    def test_deleteTerminal(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": "PRE1"})
        r = yield self.call("DELETE", "/api/terminals/PRE1/")
        self.assertEqual((r.status, r.raw), (204, b""))
        r = yield self.call("GET", "/api/terminals/PRE1/")
        self.assertEqual(r.status, 404)
        r = yield self.call("DELETE", "/api/terminals/PRE1/")
        self.assertEqual(r.status, 404)

    # -- commands ----------------------------------------------------------------------------

    @inlineCallbacks
    def test_commandWaitsForTheReply(self) -> Any:
        yield self.start()
        connection = yield self.connect(simulated("SIM1", doors=4))
        r = yield self.call(
            "POST",
            "/api/terminals/SIM1/command/",
            {"command": "opendoor", "params": {"doornum": 2}},
        )
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "succeeded")
        self.assertEqual(r.json["reply"]["ret"], "opendoor")
        self.assertIs(r.json["reply"]["result"], True)
        self.assertEqual(r.json["payload"], {"cmd": "opendoor", "doornum": 2})
        self.assertEqual(r.json["actor"], "admin")
        self.assertEqual(connection.terminal.doorOpens[-1][1], [2])
        r2 = yield self.call("GET", f"/api/commands/{r.json['id']}")
        self.assertEqual(r2.status, 200)
        self.assertEqual(r2.json["status"], "succeeded")
        self.assertIsNotNone(r2.json["finishedAt"])
        r2 = yield self.call("GET", "/api/commands/999999")
        self.assertEqual(r2.status, 404)
        # a reply result:false is a failed command
        r = yield self.call(
            "POST",
            "/api/terminals/SIM1/command/",
            {"command": "getuserinfo", "params": {"enrollid": 42}},
        )
        self.assertEqual((r.status, r.json["status"]), (200, "failed"))
        self.assertIs(r.json["reply"]["result"], False)

    @inlineCallbacks
    def test_seedReadmeExamples(self) -> Any:
        """The original README's curl examples (with a token)."""
        yield self.start()
        connection = yield self.connect(simulated("ZX0006827500"))
        r = yield self.call(
            "POST",
            "/api/terminals/ZX0006827500/command/",
            {"command": "opendoor", "params": {"doornum": 1}},
        )
        self.assertEqual((r.status, r.json["status"]), (200, "succeeded"))
        connection.terminal.setClock(datetime(2001, 1, 1, 0, 0, 0))
        r = yield self.call("POST", "/api/terminals/ZX0006827500/command/", {"command": "settime"})
        self.assertEqual((r.status, r.json["status"]), (200, "succeeded"))
        self.assertGreater(connection.terminal.now().year, 2020)
        r = yield self.call("GET", "/api/terminals/ZX0006827500/logs/?limit=50")
        self.assertEqual(r.status, 200)
        r = yield self.call("GET", "/api/terminals/ZX0006827500/users/")
        self.assertEqual(r.status, 200)

    @inlineCallbacks
    def test_settimeSendsTheTerminalsLocalTime(self) -> Any:
        yield self.start()
        yield self.connect(simulated("SIM1"))
        yield self.call("PATCH", "/api/terminals/SIM1/", {"timezone": "Pacific/Kiritimati"})
        r = yield self.call(
            "POST", "/api/terminals/SIM1/command/", {"command": "settime", "wait": False}
        )
        self.assertEqual(r.status, 202)
        sent = parseTime(r.json["payload"]["cloudtime"])
        expected = parseTime(cloudTime(reactor.seconds(), "Pacific/Kiritimati"))
        self.assertLess(abs((expected - sent).total_seconds()), 120)

    @inlineCallbacks
    def test_commandValidationAndConfirmation(self) -> Any:
        yield self.start()
        yield self.connect(simulated("SIM1"))
        path = "/api/terminals/SIM1/command/"
        r = yield self.call("POST", path, {"command": "opendoor", "params": {"doornum": 9}})
        self.assertEqual(
            (r.status, r.json["error"], r.json["field"]), (400, "invalid_params", "params.doornum")
        )
        r = yield self.call("POST", path, {"command": "opendoor", "params": {"dorrnum": 1}})
        self.assertEqual((r.status, r.json["field"]), (400, "params.dorrnum"))
        r = yield self.call("POST", path, {"command": "setuserinfo", "params": {}})
        self.assertEqual((r.status, r.json["field"]), (400, "params.enrollid"))
        r = yield self.call("POST", path, {"command": "launchmissiles"})
        self.assertEqual((r.status, r.json["field"]), (400, "command"))
        r = yield self.call("POST", path, {"params": {}})
        self.assertEqual((r.status, r.json["field"]), (400, "command"))
        for name, params in (
            ("cleanuser", {}),
            ("cleanlog", {}),
            ("initsys", {}),
            ("cleanadmin", {}),
            ("reboot", {}),
            ("opendoor", {}),
        ):
            r = yield self.call("POST", path, {"command": name, "params": params})
            self.assertEqual(
                (r.status, r.json["error"], r.json["field"]),
                (400, "confirmation_required", "confirm"),
                name,
            )
        r = yield self.call("POST", path, {"command": "opendoor", "confirm": True})
        self.assertEqual((r.status, r.json["status"]), (200, "succeeded"))
        r = yield self.call("POST", "/api/terminals/NOPE/command/", {"command": "gettime"})
        self.assertEqual(r.status, 404)
        pending = yield self.running.context.store.pendingCommands("SIM1")
        self.assertEqual(pending, [])

    @inlineCallbacks
    def test_everyCommandIsAccepted(self) -> Any:
        """Every section 6 command with valid parameters reaches the simulated terminal."""
        yield self.start()
        connection = yield self.connect(simulated("SIM1", users=3, doors=4), rebootDelay=0.05)
        examples: dict[str, dict[str, Any]] = {
            "getuserlist": {},
            "getuserinfo": {"enrollid": 1, "backupnum": 0},
            "setuserinfo": {"enrollid": 9, "name": "Neo", "backupnum": 11, "record": 12345},
            "deleteuser": {"enrollid": 9, "backupnum": 13},
            "getusername": {"enrollid": 1},
            "setusername": {"record": [{"enrollid": 1, "name": "Ann"}]},
            "enableuser": {"enrollid": 1, "enflag": 0},
            "setuserprofile": {"enrollid": 0, "profile": "Welcome"},
            "getuserprofile": {"enrollid": 0},
            "getallusers": {},
            "disabledevice": {},
            "enabledevice": {},
            "getnewlog": {},
            "getalllog": {"from": "2020-01-01", "to": "2030-12-31"},
            "cleanlogphoto": {},
            "settime": {"cloudtime": "2024-01-15 10:30:00"},
            "gettime": {},
            "setdevinfo": {"volume": 8},
            "getdevinfo": {},
            "opendoor": {"doornum": 3},
            "setdevlock": {"opendelay": 5},
            "getdevlock": {},
            "getuserlock": {"enrollid": 1},
            "setuserlock": {"record": [{"enrollid": 1, "group": 1}]},
            "deleteuserlock": {"enrollid": 1},
            "getquestionnaire": {},
            "setquestionnaire": {"title": "How are you?"},
            "getholiday": {},
            "setholiday": {"holidays": [{"name": "ny", "startday": "01-01", "endday": "01-01"}]},
            "deleteholiday": {"index": 0},
        }
        destructive = {
            "cleanuser",
            "cleanlog",
            "initsys",
            "cleanadmin",
            "cleanuserlock",
            "cleanholiday",
            "reboot",
        }
        from tm20.protocol.commands import COMMANDS

        for name in sorted(COMMANDS):
            if name in ("adduser", "reboot"):
                continue  # adduser waits for a person at the terminal; reboot is tested below
            params = examples.get(name, {})
            r = yield self.call(
                "POST",
                "/api/terminals/SIM1/command/",
                {
                    "command": name,
                    "params": params,
                    "confirm": name in destructive or name == "cleanlogphoto",
                },
            )
            self.assertIn(r.status, (200,), f"{name}: {r.text}")
            self.assertEqual(r.json["reply"]["ret"], name, name)
        self.assertEqual(connection.terminal.devinfo["volume"], 8)
        # reboot: no reply; the command succeeds once sent and the terminal comes back
        before = connection.stats.reboots
        r = yield self.call(
            "POST", "/api/terminals/SIM1/command/", {"command": "reboot", "confirm": True}
        )
        self.assertEqual((r.status, r.json["status"], r.json["reply"]), (200, "succeeded", None))
        # let it come back before the test ends (no connection left half-open)
        yield self.until(
            lambda: connection.stats.reconnects > 0 and connection.registered,
            "the terminal rebooted and registered again",
        )
        self.assertEqual(connection.stats.reboots, before + 1)
        # and the server has let go of the connection the reboot dropped
        yield self.until(
            lambda: len(self.running.context.registry.sessions()) == 1,
            "the dropped connection is closed",
            attempts=1000,
        )

    @inlineCallbacks
    def test_offlineCommandsAreDeliveredInOrderAfterReg(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": "SIM1"})
        ids = []
        for volume in (3, 7):
            r = yield self.call(
                "POST",
                "/api/terminals/SIM1/command/",
                {"command": "setdevinfo", "params": {"volume": volume}},
            )
            # waiting for an offline terminal is not an error: the command is queued
            self.assertEqual((r.status, r.json["status"]), (202, "queued"))
            self.assertEqual(r.headers["location"], f"/api/commands/{r.json['id']}")
            ids.append(r.json["id"])
        r = yield self.call(
            "POST", "/api/terminals/SIM1/command/", {"command": "gettime", "wait": False}
        )
        self.assertEqual(r.status, 202)
        ids.append(r.json["id"])
        r = yield self.call("GET", "/api/terminals/SIM1/commands/")
        self.assertEqual([c["id"] for c in r.json["items"]], ids)
        connection = yield self.connect(simulated("SIM1"))
        for commandId in ids:
            yield self.until(
                lambda i=commandId: self.commandStatus(i).addCallback(lambda s: s == "succeeded"),
                f"command {commandId} delivered",
            )
        commands = yield self.running.context.store.getCommand(ids[0])
        self.assertEqual(commands.attempts, 1)
        self.assertEqual(connection.terminal.devinfo["volume"], 7)
        sentAt = []
        for commandId in ids:
            r = yield self.call("GET", f"/api/commands/{commandId}")
            sentAt.append(r.json["sentAt"])
        self.assertEqual(sentAt, sorted(sentAt))
        r = yield self.call("GET", "/api/terminals/SIM1/commands/")
        self.assertEqual(r.json["items"], [])

    @inlineCallbacks
    def test_commandTimesOut(self) -> Any:
        yield self.start(commandTimeout=0.2)
        client = yield registeredClient(self, self.running, sn="MUTE1")
        r = yield self.call("POST", "/api/terminals/MUTE1/command/", {"command": "gettime"})
        self.assertEqual(r.status, 504)
        self.assertEqual(r.json["error"], "timeout")
        commandId = r.json["commandId"]
        self.assertEqual(r.json["command"]["id"], commandId)
        # the terminal got it three times (maxAttempts), then the command gave up
        for _ in range(3):
            frame = yield client.next()
            self.assertEqual(frame["cmd"], "gettime")
        yield self.until(
            lambda: self.commandStatus(commandId).addCallback(lambda s: s == "timed_out"),
            "the command timed out for good",
        )
        r = yield self.call("GET", f"/api/commands/{commandId}")
        self.assertEqual((r.json["status"], r.json["attempts"]), ("timed_out", 3))
        self.assertIsNotNone(r.json["finishedAt"])

    @inlineCallbacks
    def test_commandCutByADisconnectIsRetriedAfterReconnect(self) -> Any:
        yield self.start()
        client = yield registeredClient(self, self.running, sn="SIM1")
        d = self.call("POST", "/api/terminals/SIM1/command/", {"command": "getdevinfo"})
        frame = yield client.next()
        self.assertEqual(frame["cmd"], "getdevinfo")
        client.sendClose(1000)
        yield client.closed
        r = yield d
        self.assertEqual((r.status, r.json["status"], r.json["attempts"]), (202, "queued", 1))
        # the same terminal (same cpusn as the raw client's reg) comes back
        yield self.connect(simulated("SIM1", cpusn="123456789"))
        yield self.until(
            lambda: self.commandStatus(r.json["id"]).addCallback(lambda s: s == "succeeded"),
            "the command delivered after the reconnection",
        )
        r = yield self.call("GET", f"/api/commands/{r.json['id']}")
        self.assertEqual(r.json["attempts"], 2)
        self.assertEqual(r.json["reply"]["volume"], 6)

    # -- users -------------------------------------------------------------------------------

    @inlineCallbacks
    def test_usersCreateUpdateDeletePushToTheTerminal(self) -> Any:
        yield self.start()
        connection = yield self.connect(simulated("SIM1"))
        terminal = connection.terminal
        r = yield self.call(
            "POST",
            "/api/terminals/SIM1/users/",
            {
                "enrollid": 7,
                "name": "Ada",
                "admin": 1,
                "credentials": [
                    {"backupnum": 0, "record": "data:image/jpeg;base64,QUJDRA=="},
                    {"backupnum": 11, "record": 123456},
                ],
            },
        )
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.headers["location"], "/api/terminals/SIM1/users/7/")
        self.assertEqual(r.json["user"]["name"], "Ada")
        self.assertEqual(
            {(c["backupnum"], c["record"]) for c in r.json["user"]["credentials"]},
            {(0, "QUJDRA=="), (11, 123456)},
        )
        commandIds = [c["id"] for c in r.json["commands"]]
        self.assertEqual([c["command"] for c in r.json["commands"]], ["setuserinfo", "setuserinfo"])
        for commandId in commandIds:
            yield self.until(
                lambda i=commandId: self.commandStatus(i).addCallback(lambda s: s == "succeeded"),
                "setuserinfo delivered",
            )
        self.assertEqual(terminal.users[7].name, "Ada")
        self.assertEqual(terminal.users[7].credentials[11], 123456)
        r = yield self.call("POST", "/api/terminals/SIM1/users/", {"enrollid": 7})
        self.assertEqual(r.status, 409)
        r = yield self.call(
            "POST",
            "/api/terminals/SIM1/users/",
            {"enrollid": 8, "credentials": [{"backupnum": 10, "record": "123456789"}]},
        )
        self.assertEqual((r.status, r.json["field"]), (400, "credentials[0].record"))
        # update: rename and disable
        r = yield self.call(
            "PATCH", "/api/terminals/SIM1/users/7/", {"name": "Ada L.", "enabled": False}
        )
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual((r.json["user"]["name"], r.json["user"]["enabled"]), ("Ada L.", False))
        self.assertEqual(
            [c["command"] for c in r.json["commands"]], ["setuserinfo", "enableuser", "setuserinfo"]
        )
        for c in r.json["commands"]:
            yield self.until(
                lambda i=c["id"]: self.commandStatus(i).addCallback(lambda s: s == "succeeded"),
                "update delivered",
            )
        self.assertEqual(terminal.users[7].name, "Ada L.")
        self.assertFalse(terminal.users[7].enabled)
        r = yield self.call("GET", "/api/terminals/SIM1/users/7/")
        self.assertEqual((r.status, r.json["enabled"]), (200, False))
        # delete one slot, then the user
        r = yield self.call("DELETE", "/api/terminals/SIM1/users/7/?backupnum=11")
        self.assertEqual((r.status, r.json["deleted"]), (200, 1))
        yield self.until(
            lambda: self.commandStatus(r.json["commands"][0]["id"]).addCallback(
                lambda s: s == "succeeded"
            ),
            "deleteuser 11 delivered",
        )
        self.assertNotIn(11, terminal.users[7].credentials)
        r = yield self.call("DELETE", "/api/terminals/SIM1/users/7/")
        self.assertEqual((r.status, r.json["deleted"]), (200, 1))
        yield self.until(
            lambda: self.commandStatus(r.json["commands"][0]["id"]).addCallback(
                lambda s: s == "succeeded"
            ),
            "deleteuser 13 delivered",
        )
        self.assertNotIn(7, terminal.users)
        r = yield self.call("GET", "/api/terminals/SIM1/users/7/")
        self.assertEqual(r.status, 404)
        r = yield self.call("DELETE", "/api/terminals/SIM1/users/7/")
        self.assertEqual(r.status, 404)

    @inlineCallbacks
    def test_usersPullAndPagination(self) -> Any:
        yield self.start()
        yield self.connect(simulated("SIM1", users=12))
        r = yield self.call("POST", "/api/terminals/SIM1/users/pull/")
        self.assertEqual(r.status, 200, r.text)
        # 12 fingerprints, cards for 3, 6, 9, 12, passwords for 5, 10
        self.assertEqual(r.json, {"listed": 18, "stored": 18, "missing": 0, "users": 12})
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            path = "/api/terminals/SIM1/users/?limit=5" + (f"&cursor={cursor}" if cursor else "")
            r = yield self.call("GET", path)
            self.assertEqual(r.status, 200)
            seen.extend(u["enrollid"] for u in r.json["items"])
            self.assertTrue(
                all("record" not in c for u in r.json["items"] for c in u["credentials"])
            )
            pages += 1
            cursor = r.json["next"]
            if cursor is None:
                break
        self.assertEqual(seen, list(range(1, 13)))
        self.assertEqual(pages, 3)
        r = yield self.call("GET", "/api/terminals/SIM1/users/3/")
        self.assertEqual(sorted(c["backupnum"] for c in r.json["credentials"]), [0, 11])
        self.assertTrue(all(c["record"] is not None for c in r.json["credentials"]))
        r = yield self.call("GET", "/api/terminals/SIM1/users/?cursor=garbage")
        self.assertEqual((r.status, r.json["field"]), (400, "cursor"))
        r = yield self.call("GET", "/api/terminals/SIM1/users/?limit=0")
        self.assertEqual((r.status, r.json["field"]), (400, "limit"))

    @inlineCallbacks
    def test_pullNeedsAConnectedTerminal(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": "OFF1"})
        r = yield self.call("POST", "/api/terminals/OFF1/users/pull/")
        self.assertEqual((r.status, r.json["error"]), (409, "terminal_offline"))
        r = yield self.call("POST", "/api/terminals/OFF1/logs/pull/", {"source": "all"})
        self.assertEqual((r.status, r.json["error"]), (409, "terminal_offline"))
        r = yield self.call("POST", "/api/terminals/NOPE/logs/pull/")
        self.assertEqual(r.status, 404)

    # -- logs --------------------------------------------------------------------------------

    @inlineCallbacks
    def test_logsPullPaginationFiltersAndCSV(self) -> Any:
        yield self.start()
        connection = yield self.connect(simulated("SIM1", users=5, logs=130))
        r = yield self.call("POST", "/api/terminals/SIM1/logs/pull/", {"source": "new"})
        self.assertEqual(r.json["received"], 0)  # already uploaded: nothing new
        r = yield self.call("POST", "/api/terminals/SIM1/logs/pull/", {"source": "all"})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json, {"received": 130, "inserted": 130, "duplicates": 0, "invalid": 0})
        r = yield self.call("POST", "/api/terminals/SIM1/logs/pull/", {"source": "all"})
        self.assertEqual((r.json["inserted"], r.json["duplicates"]), (0, 130))
        r = yield self.call("POST", "/api/terminals/SIM1/logs/pull/", {"from": "2024-01-01"})
        self.assertEqual((r.status, r.json["field"]), (400, "from"))
        r = yield self.call(
            "POST", "/api/terminals/SIM1/logs/pull/", {"source": "all", "from": "2024-13-01"}
        )
        self.assertEqual((r.status, r.json["field"]), (400, "from"))
        # cursor pagination, newest first, no row twice
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            path = "/api/terminals/SIM1/logs/?limit=40" + (f"&cursor={cursor}" if cursor else "")
            r = yield self.call("GET", path)
            rows.extend(r.json["items"])
            cursor = r.json["next"]
            if cursor is None:
                break
        self.assertEqual(len(rows), 130)
        self.assertEqual(len({row["id"] for row in rows}), 130)
        keys = [(row["time"], row["id"]) for row in rows]
        self.assertEqual(keys, sorted(keys, reverse=True))
        expected = sorted(((e.time, e.enrollid) for e in connection.terminal.logs), reverse=True)
        self.assertEqual([(row["time"], row["enrollid"]) for row in rows][:1], expected[:1])
        # filters
        middle = rows[65]["time"]
        r = yield self.call("GET", f"/api/terminals/SIM1/logs/?limit=1000&since={middle}")
        self.assertEqual(len(r.json["items"]), sum(1 for row in rows if row["time"] >= middle))
        r = yield self.call("GET", f"/api/terminals/SIM1/logs/?limit=1000&until={middle}")
        self.assertEqual(len(r.json["items"]), sum(1 for row in rows if row["time"] <= middle))
        day = middle[:10]
        r = yield self.call("GET", f"/api/terminals/SIM1/logs/?limit=1000&until={day}")
        self.assertEqual(len(r.json["items"]), sum(1 for row in rows if row["time"][:10] <= day))
        r = yield self.call("GET", "/api/terminals/SIM1/logs/?limit=1000&enrollid=2")
        self.assertEqual(len(r.json["items"]), sum(1 for row in rows if row["enrollid"] == 2))
        self.assertTrue(all(row["enrollid"] == 2 for row in r.json["items"]))
        r = yield self.call("GET", "/api/terminals/SIM1/logs/?since=yesterday")
        self.assertEqual((r.status, r.json["field"]), (400, "since"))
        # global logs, with the terminal filter
        r = yield self.call("GET", "/api/logs/?limit=1000&terminal=SIM1")
        self.assertEqual(len(r.json["items"]), 130)
        r = yield self.call("GET", "/api/logs/?terminal=OTHER")
        self.assertEqual(r.json, {"items": [], "next": None})
        # CSV: by Accept header and by format=csv
        for path, headers in (
            ("/api/terminals/SIM1/logs/", {"Accept": "text/csv"}),
            ("/api/logs/?format=csv", {}),
        ):
            r = yield self.call("GET", path, headers=headers)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/csv"))
            self.assertIn("attachment", r.headers["content-disposition"])
            table = list(csv.DictReader(io.StringIO(r.text)))
            self.assertEqual(len(table), 130)
            self.assertEqual([int(t["id"]) for t in table], [row["id"] for row in rows])
            self.assertEqual(table[0]["sn"], "SIM1")
        r = yield self.call("GET", "/api/logs/?format=csv&limit=7&enrollid=2")
        table = list(csv.DictReader(io.StringIO(r.text)))
        self.assertEqual(len(table), min(7, sum(1 for row in rows if row["enrollid"] == 2)))
        r = yield self.call("GET", "/api/logs/?format=csv&terminal=%C3%A9%0A%22x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-disposition"], 'attachment; filename="___x-logs.csv"')
        r = yield self.call("GET", "/api/logs/?format=json", headers={"Accept": "text/csv"})
        self.assertEqual(r.headers["content-type"], "application/json")

    @inlineCallbacks
    def test_doorEvents(self) -> Any:
        yield self.start()
        connection = yield self.connect(simulated("SIM1"))
        connection.punch(0, time="2024-01-15 10:00:00", event=2)
        connection.punch(0, time="2024-01-15 11:00:00", event=3)
        connection.punch(5, time="2024-01-15 12:00:00")
        yield self.until(
            lambda: self.call("GET", "/api/terminals/SIM1/door-events/").addCallback(
                lambda r: len(r.json["items"]) == 2
            ),
            "door events stored",
        )
        r = yield self.call("GET", "/api/terminals/SIM1/door-events/")
        self.assertEqual([e["event"] for e in r.json["items"]], [3, 2])
        r = yield self.call("GET", "/api/terminals/SIM1/door-events/?format=csv")
        self.assertEqual(len(list(csv.DictReader(io.StringIO(r.text)))), 2)
        r = yield self.call("GET", "/api/terminals/SIM1/logs/")
        self.assertEqual([e["enrollid"] for e in r.json["items"]], [5])

    # -- audit, errors -----------------------------------------------------------------------

    @inlineCallbacks
    def test_auditRecordsEveryChangeWithTheTokenName(self) -> Any:
        from tests.test_api_support import WRITER

        yield self.start(apiTokens=(f"ops:{ADMIN}",))
        yield self.call("POST", "/api/terminals/", {"sn": "PRE1"})
        yield self.call("PATCH", "/api/terminals/PRE1/", {"name": "Gate"}, token=WRITER)
        yield self.call("POST", "/api/terminals/PRE1/command/", {"command": "gettime"})
        yield self.call(
            "POST",
            "/api/terminals/PRE1/users/",
            {"enrollid": 3, "credentials": [{"backupnum": 10, "record": 1234}]},
        )
        yield self.call("DELETE", "/api/terminals/PRE1/")
        r = yield self.call("GET", "/api/audit/?limit=3")
        self.assertEqual(r.status, 200)
        first = r.json["items"]
        r = yield self.call("GET", f"/api/audit/?limit=3&cursor={r.json['next']}")
        entries = first + r.json["items"]
        self.assertEqual(
            [(e["actor"], e["action"], e["target"]) for e in entries],
            [
                ("ops", "terminal.delete", "PRE1"),
                ("ops", "user.create", "PRE1"),
                ("ops", "command.submit", "PRE1"),
                ("writer", "terminal.update", "PRE1"),
                ("ops", "terminal.create", "PRE1"),
            ],
        )
        self.assertEqual(entries[1]["detail"]["credentials"], [{"backupnum": 10}])
        self.assertEqual(entries[2]["detail"], {"command": "gettime", "params": {}})

    @inlineCallbacks
    def test_storeUnavailableIs503AndOtherErrorsAre500WithoutDetails(self) -> Any:
        wrapped: list[BreakableStore] = []

        original = self.makeStore

        def makeStore() -> Any:
            store = BreakableStore(original())
            wrapped.append(store)
            return store

        self.makeStore = makeStore  # type: ignore[method-assign]
        yield self.start()
        store = wrapped[0]
        for error in (
            StoreUnavailable("down"),
            sqlite3.OperationalError("unable to open database file"),
        ):
            store.error = error
            for method, path in (
                ("GET", "/api/terminals/"),
                ("GET", "/api/logs/"),
                ("POST", "/api/terminals/"),
            ):
                r = yield self.call(method, path, {"sn": "X"} if method == "POST" else None)
                self.assertEqual((r.status, r.json["error"]), (503, "store_unavailable"), path)
        store.error = RuntimeError("secret internals /etc/passwd")
        r = yield self.call("GET", "/api/terminals/")
        self.assertEqual(r.status, 500)
        self.assertEqual(r.json, {"error": "internal_error", "detail": "internal server error"})
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        store.error = None
        r = yield self.call("GET", "/api/terminals/")
        self.assertEqual(r.status, 200)

    @inlineCallbacks
    def test_unknownRouteAndMethod(self) -> Any:
        yield self.start()
        r = yield self.call("GET", "/api/nothing/")
        self.assertEqual((r.status, r.json["error"]), (404, "not_found"))
        r = yield self.call("GET", "/api/nothing/", token=None)
        self.assertEqual(r.status, 401)
        r = yield self.call("PUT", "/api/terminals/")
        self.assertEqual((r.status, r.json["error"]), (405, "method_not_allowed"))
        self.assertIn("GET", r.headers["allow"])
        r = yield self.call("GET", "/api/commands/notanumber")
        self.assertEqual(r.status, 404)
        r = yield self.call("GET", f"/api/commands/{2**70}")
        self.assertEqual(r.status, 404)
        r = yield self.call("GET", f"/api/terminals/SIM1/users/{10**15}/")
        self.assertEqual(r.status, 404)
        # /health needs no token
        r = yield self.call("GET", "/health", token=None)
        self.assertEqual(r.status, 200)


class ApiEndpointPostgresTests(ApiEndpointTests):
    """The same tests on PostgreSQL."""

    def makeStore(self) -> IStore:
        from tests import pgharness
        from tm20.store.postgres import PostgresStore

        url = pgharness.createDatabase("tm20_api")
        self.addCleanup(pgharness.dropDatabase, url)
        store: IStore = PostgresStore.fromURL(url, reactor)
        return store
