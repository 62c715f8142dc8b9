"""The terminal endpoint over real loopback WebSockets, with a real SQLite store."""

from __future__ import annotations

import re
from typing import Any

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests import captures
from tests.serverfixture import connectRaw, registeredClient, startServer
from tm20.model import LogQuery
from tm20.protocol.messages import CommandReply

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def record(enrollid: int, minute: int, **extra: Any) -> dict[str, Any]:
    return {
        "enrollid": enrollid,
        "time": f"2024-01-15 10:{minute:02d}:00",
        "mode": 1,
        "inout": 0,
        "event": 0,
        **extra,
    }


class TerminalEndpointTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_regOnAnyPath(self) -> Any:
        running = yield startServer(self)
        for i, path in enumerate(("/", "/ws/tm20/", "/pub/chat", "/some/other/path?x=1")):
            client = yield connectRaw(self, running, path)
            reply = yield client.request(
                {"cmd": "reg", "sn": f"SN{i}", "devinfo": {"modelname": "tfs30"}}
            )
            self.assertEqual(reply["ret"], "reg")
            self.assertIs(reply["result"], True)
            self.assertRegex(reply["cloudtime"], TIME_RE)
        terminals = yield running.context.store.listTerminals(None)
        self.assertEqual(len(terminals), 4)

    @inlineCallbacks
    def test_captureRegAndDevinfoStored(self) -> Any:
        running = yield startServer(self)
        frames = captures.frames()
        client = yield connectRaw(self, running)
        reply = yield client.request(frames[0])
        self.assertIs(reply["result"], True)
        terminal = yield running.context.store.getTerminal("ZYTI25116685")
        self.assertEqual(terminal.firmware, "TH900_click V5.0")
        self.assertEqual(terminal.mac, "00-01-F5-02-7D-5F")
        self.assertEqual(terminal.devinfo["logsize"], 193877)
        self.assertEqual(running.context.registry.connected(), ["ZYTI25116685"])

    @inlineCallbacks
    def test_sendlogAckedAfterCommitAndResendNotDuplicated(self) -> Any:
        running = yield startServer(self)
        store = running.context.store
        client = yield registeredClient(self, running)
        batch = {
            "cmd": "sendlog",
            "sn": "ZX0006827500",
            "count": 3,
            "logindex": 10,
            "record": [record(1, 1), record(2, 2), record(0, 3, event=2)],
        }
        reply = yield client.request(batch)
        self.assertEqual(reply["ret"], "sendlog")
        self.assertIs(reply["result"], True)
        self.assertEqual(reply["count"], 3)
        self.assertEqual(reply["logindex"], 10)
        self.assertRegex(reply["cloudtime"], TIME_RE)
        # Acknowledged means committed: the rows are there when the ack arrives.
        punches = yield store.queryLogs(LogQuery(sn="ZX0006827500"))
        self.assertEqual(sorted(p.enrollid for p in punches), [1, 2])
        doors = yield store.queryDoorEvents(LogQuery(sn="ZX0006827500"))
        self.assertEqual([(d.enrollid, d.event) for d in doors], [(0, 2)])
        # The terminal resends the same batch (lost ack): acknowledged again, stored once.
        again = yield client.request(batch)
        self.assertIs(again["result"], True)
        self.assertEqual((yield store.countLogs("ZX0006827500")), 2)

    @inlineCallbacks
    def test_storeFailureIsNotAcknowledged(self) -> Any:
        running = yield startServer(self)
        client = yield registeredClient(self, running)
        yield running.context.store.stop()  # the database goes away
        reply = yield client.request(
            {
                "cmd": "sendlog",
                "sn": "ZX0006827500",
                "count": 1,
                "logindex": 1,
                "record": [record(1, 1)],
            }
        )
        self.assertEqual(reply, {"ret": "sendlog", "result": False, "reason": 1})
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_beforeRegNothingIsStored(self) -> Any:
        running = yield startServer(self)
        client = yield connectRaw(self, running)
        reply = yield client.request(
            {"cmd": "sendlog", "sn": "X1", "count": 1, "logindex": 1, "record": [record(1, 1)]}
        )
        self.assertEqual(reply, {"ret": "sendlog", "result": False, "reason": 1})
        self.assertEqual((yield running.context.store.countLogs(None)), 0)

    @inlineCallbacks
    def test_badFramesGetAReplyAndConnectionLives(self) -> Any:
        running = yield startServer(self)
        client = yield registeredClient(self, running)
        unknown = yield client.request({"cmd": "fancything", "sn": "ZX0006827500", "x": 1})
        self.assertEqual(unknown, {"ret": "fancything", "result": False, "reason": 1})
        invalid = yield client.request({"cmd": "sendlog", "record": {"enrollid": "abc"}})
        self.assertEqual(invalid, {"ret": "sendlog", "result": False, "reason": 1})
        garbage = yield client.request(b"{not json at all")
        self.assertIs(garbage["result"], False)
        # Quirks: trailing comma, key with trailing space, string enrollid.
        quirky = b'{"cmd":"sendlog","sn":"ZX0006827500","count ":1,"logindex":7,"record":[{"enrollid":"5","time":"2024-01-15 10:30:00","mode":1,"inout":0,"event":0},]}'
        ok = yield client.request(quirky)
        self.assertIs(ok["result"], True)
        self.assertEqual(ok["count"], 1)
        self.assertEqual((yield running.context.store.countLogs("ZX0006827500")), 1)

    @inlineCallbacks
    def test_senduserStoresTemplateVerbatim(self) -> Any:
        running = yield startServer(self)
        frames = captures.frames()
        template = frames[1]["record"]
        client = yield registeredClient(self, running, sn="ZYTI25116685")
        reply = yield client.request(
            {
                "cmd": "senduser",
                "sn": "ZYTI25116685",
                "enrollid": 1,
                "name": "Ben",
                "backupnum": 0,
                "admin": 0,
                "record": template,
            }
        )
        self.assertEqual(reply["ret"], "senduser")
        self.assertIs(reply["result"], True)
        card = yield client.request(
            {
                "cmd": "senduser",
                "sn": "ZYTI25116685",
                "enrollid": 1,
                "backupnum": 11,
                "admin": 0,
                "record": 2352253,
            }
        )
        self.assertIs(card["result"], True)
        user = yield running.context.store.getUser("ZYTI25116685", 1)
        self.assertEqual(user.name, "Ben")
        records = {c.backupnum: c.record for c in user.credentials}
        self.assertEqual(records, {0: template, 11: 2352253})

    @inlineCallbacks
    def test_serverCommandRoundTrip(self) -> Any:
        running = yield startServer(self)
        client = yield registeredClient(self, running)
        pending = running.context.commands.execute(
            "ZX0006827500", {"cmd": "opendoor", "doornum": 1}
        )
        command = yield client.next()
        self.assertEqual(command, {"cmd": "opendoor", "doornum": 1})
        client.send({"ret": "opendoor", "sn": "ZX0006827500", "result": True})
        reply = yield pending
        self.assertIsInstance(reply, CommandReply)
        self.assertIs(reply.result, True)

    @inlineCallbacks
    def test_newestConnectionWins(self) -> Any:
        running = yield startServer(self)
        first = yield registeredClient(self, running)
        second = yield registeredClient(self, running)
        _, code, _ = yield first.closed
        self.assertEqual(code, 4002)
        registry = running.context.registry
        self.assertEqual(registry.connected(), ["ZX0006827500"])
        session = registry.get("ZX0006827500")
        self.assertIsNotNone(session)
        # Commands go to the newest connection.
        pending = running.context.commands.execute("ZX0006827500", {"cmd": "gettime"})
        frame = yield second.next()
        self.assertEqual(frame, {"cmd": "gettime"})
        second.send({"ret": "gettime", "sn": "ZX0006827500", "time": "2024-01-15 10:00:00"})
        yield pending

    @inlineCallbacks
    def test_whitelistRefusesThenApprovedTerminalRegisters(self) -> Any:
        running = yield startServer(self, requireWhitelist=True)
        store = running.context.store
        client = yield connectRaw(self, running)
        reply = yield client.request(
            {"cmd": "reg", "sn": "NEW1", "devinfo": {"modelname": "tfs30"}}
        )
        self.assertIs(reply["result"], False)
        self.assertIsInstance(reply["reason"], str)
        _, code, _ = yield client.closed
        self.assertEqual(code, 4003)
        pending = yield store.getTerminal("NEW1")
        self.assertFalse(pending.approved)
        yield store.updateTerminal("NEW1", {"approved": True})
        again = yield connectRaw(self, running)
        ok = yield again.request({"cmd": "reg", "sn": "NEW1", "devinfo": {"modelname": "tfs30"}})
        self.assertIs(ok["result"], True)

    @inlineCallbacks
    def test_oversizeMessageClosesWith1009(self) -> Any:
        running = yield startServer(self, maxMessageSize=64 * 1024)
        client = yield registeredClient(self, running)
        client.send({"cmd": "senduser", "enrollid": 1, "backupnum": 50, "record": "A" * 100_000})
        _, code, _ = yield client.closed
        self.assertEqual(code, 1009)

    @inlineCallbacks
    def test_noRegWithinDeadlineIsDropped(self) -> Any:
        running = yield startServer(self, regTimeout=0.3)
        client = yield connectRaw(self, running)
        _, code, _ = yield client.closed
        self.assertEqual(code, 4004)

    @inlineCallbacks
    def test_healthAndPlainHTTP(self) -> Any:
        running = yield startServer(self)
        response = yield treq.get(running.httpURL("/health"), persistent=False)
        self.assertEqual(response.code, 200)
        body = yield response.json()
        self.assertEqual(body["status"], "ok")
        response = yield treq.get(running.httpURL("/pub/chat"), persistent=False)
        self.assertEqual(response.code, 404)
        yield response.content()

    @inlineCallbacks
    def test_healthReports503WhenStoreIsDown(self) -> Any:
        running = yield startServer(self)
        yield running.context.store.stop()
        response = yield treq.get(running.httpURL("/health"), persistent=False)
        self.assertEqual(response.code, 503)
        yield response.content()

    @inlineCallbacks
    def test_shutdownClosesTerminalsWith4001(self) -> Any:
        running = yield startServer(self)
        client = yield registeredClient(self, running)
        yield running.service.stopService()
        _, code, _ = yield client.closed
        self.assertEqual(code, 4001)
