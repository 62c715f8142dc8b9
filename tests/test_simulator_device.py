"""
Tests for L{tm20.simulator.device}: the simulated terminal as a pure state machine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tm20.simulator.device import (
    LOG_PAGE_SIZE,
    USER_PAGE_SIZE,
    PagingStyle,
    SimulatedTerminal,
    knownCommands,
)

#: 2026-04-30 12:00:00 UTC, the injected "now".
NOW = datetime(2026, 4, 30, 12, 0, 0, tzinfo=UTC).timestamp()

#: Fingerprint template of enrollid 1 ("Ben") captured from a TH900_click V5.0.
CAPTURED_TEMPLATE_1 = (
    "c5236a01eb87aaa6ff34384480b9bb110005c805e0b6a34aff383a4361b5cb7507c3cb0266b6eb76ef47b984"
    "10ba537def74288468b7a3bdef4bb984dbb6fbd9ef38498258848c19efc3fdc18aba4c25100788855eb6f45d"
    "e745b94258b4e475e7c3f94355b56c92e844094159b73491e007b803ceb5d4da0eb81982ce84c4e5fefe0ac2"
    "ceb76cfa0eb43a4650b874f6b8d7b8ca39b95d15c9a2386232b9d50dd1a6490e4ab60d25e889dac5c0b7460d"
    "e8be1d86d7b5ebc1ff781b0376b953ad108b980807b92bcd062e48ca868b2a7607c5dac3868b9b011047dc03"
    "188c8b15f839fec2198c6419f879f9c2908cbc191fffda41288ca4b9f835fa04c5b8ae49e87faa442c8ce56e"
    "f8f9fec5388cadeef8b7fb864d8abe25ff6ffc46(200)9535f5f3554f24318521340253335f16284bf324727"
    "2136a744853721453751234255262f325435a251664679422c65b83a4ab43525b5382916a322f54365fd4176"
    "87149866408(41)1e6aca147281aa8264574304ca82763423d37982ac4c3351d680ef5a185665880d0310446"
    "1912d6d3345a181445232e3c9902a4f3271eea1045f373565938e502041d690414f22e4dd819b505261d8917"
    "41725e3be81a376241134a06f540340c69042532220d0b0946803e387a10e570140c290bd531520dcb06e445"
    "6640681e24e3626e3d15c28637687909122110095904d1d6833a1a15a501274dac0dc2e935355a1626d67038"
    "0a0514f2114e0a00a2186858dc11118170d1206090a101307050401020e16140c0300151c0b1f1a1e1d0f221"
    "8fe"
)

#: Fingerprint template of enrollid 2 ("Lw") captured from a TH900_click V5.0.
CAPTURED_TEMPLATE_2 = (
    "c51762036df8f33d088da88684fb0b690089b885e2e803a1e73e39065ef85409270bc78980faac0100899747"
    "d4e76425ff7e3803d6f7f45ee73e47c403f9a481ed6e460966f9ccd16853958f87fafccd388995463caa1579"
    "c11ff96829ba5d91dfe1f8543a893db9c7d1f8482bba4dc1e7ddf94b81eb2ae117fe080611fb230607382786"
    "56e733f917c7f8c31d6a5545efe3f7a430aa355dc9a3f7e90a79e22aff3e1a027938da46e7c7f9436c77cab5"
    "efc9fb48204c44a5ff77f581(296)752466726345496142641f72352c445a32b78742545953f6d47f432d43d"
    "e5457fffbff85188ff3ff6f(71)1162164c62b3ed71ce4c0353e262f06c1124a572300b4214e1813b1d1632b"
    "281297220c2bd53d17412222391b0234120a071bb5c3212c8511c2d1b7662717b5b107250793c5b2142327a1"
    "d571023219a775902c48d8541182305aa908c04756214a0162202d99b92(78)0407030001080206090f11120"
    "a0b14130d(13)ea9a"
)


def makeTerminal(**kwargs: Any) -> SimulatedTerminal:
    """
    A terminal with a fixed clock in UTC.
    """
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("tz", UTC)
    kwargs.setdefault("sn", "SIM000001")
    return SimulatedTerminal(**kwargs)


def failure(name: str, sn: str = "SIM000001") -> dict[str, Any]:
    return {"ret": name, "sn": sn, "result": False, "reason": 1}


def expectedCredentials(users: int) -> list[dict[str, Any]]:
    """
    The C{getuserlist} records of C{users} generated users, in order.
    """
    records = []
    for enrollid in range(1, users + 1):
        admin = 1 if enrollid == 1 else 0
        slots = [0]
        if enrollid % 5 == 0:
            slots.append(10)
        if enrollid % 3 == 0:
            slots.append(11)
        for backupnum in slots:
            records.append({"enrollid": enrollid, "admin": admin, "backupnum": backupnum})
    return records


class RegisterTests(SynchronousTestCase):
    def test_registerFrameShape(self) -> None:
        terminal = makeTerminal(users=10, logs=5)
        frame = terminal.registerFrame()
        self.assertEqual(["cmd", "sn", "devinfo"], list(frame))
        self.assertEqual("reg", frame["cmd"])
        self.assertEqual("SIM000001", frame["sn"])
        self.assertEqual(
            {
                "modelname": "tfs30",
                "usersize": 3000,
                "fpsize": 3000,
                "cardsize": 3000,
                "pwdsize": 3000,
                "logsize": 100000,
                "useduser": 10,
                "usedfp": 10,
                "usedcard": 3,
                "usedpwd": 2,
                "usedlog": 5,
                "usednewlog": 5,
                "fpalgo": "thbio3.0",
                "firmware": "TH900_click V5.0",
                "time": "2026-04-30 12:00:00",
                "mac": terminal.mac,
            },
            frame["devinfo"],
        )
        self.assertRegex(terminal.mac, r"^00-01(-[0-9A-F]{2}){4}$")

    def test_registerFrameOptions(self) -> None:
        terminal = makeTerminal(
            cpusn="123456789",
            mac="00-01-F5-02-7D-5F",
            modelname="AI07F",
            firmware="ai806_f06v_v5.17",
            extraDevinfo={"usedface": 3},
        )
        frame = terminal.registerFrame()
        self.assertEqual("123456789", frame["cpusn"])
        self.assertEqual("00-01-F5-02-7D-5F", frame["devinfo"]["mac"])
        self.assertEqual("AI07F", frame["devinfo"]["modelname"])
        self.assertEqual("ai806_f06v_v5.17", frame["devinfo"]["firmware"])
        self.assertEqual(3, frame["devinfo"]["usedface"])

    def test_countersFollowContent(self) -> None:
        terminal = makeTerminal(users=3, logs=12)
        batch = terminal.nextLogBatch(10)
        assert batch is not None
        terminal.ackLogs({"ret": "sendlog", "result": True, "count": 10, "logindex": 0})
        terminal.handleCommand({"cmd": "deleteuser", "enrollid": 3, "backupnum": 13})
        devinfo = terminal.registerFrame()["devinfo"]
        self.assertEqual(
            (2, 2, 0, 0),
            (devinfo["useduser"], devinfo["usedfp"], devinfo["usedcard"], devinfo["usedpwd"]),
        )
        self.assertEqual((12, 2), (devinfo["usedlog"], devinfo["usednewlog"]))

    def test_regReplySetsClockAndSendUsers(self) -> None:
        terminal = makeTerminal()
        self.assertFalse(terminal.registered)
        accepted = terminal.handleReply(
            {"ret": "reg", "result": True, "cloudtime": "2027-01-02 03:04:05", "nosenduser": True}
        )
        self.assertTrue(accepted)
        self.assertTrue(terminal.registered)
        self.assertEqual("2027-01-02 03:04:05", terminal.timeString())
        self.assertFalse(terminal.sendUsers)
        self.assertFalse(
            terminal.handleReply({"ret": "reg", "result": False, "reason": "did not reg"})
        )
        self.assertFalse(terminal.registered)

    def test_minimalRegReply(self) -> None:
        terminal = makeTerminal()
        self.assertTrue(terminal.handleReply({"ret": "reg", "result": True}))
        self.assertEqual("2026-04-30 12:00:00", terminal.timeString())
        self.assertTrue(terminal.sendUsers)

    def test_oddCloudtimeTolerated(self) -> None:
        """
        The vendor Flask demo answers with C{str(datetime.now())} (microseconds).
        """
        terminal = makeTerminal()
        terminal.handleReply({"ret": "reg", "result": True, "cloudtime": "2026-5-1 8:09:10.123456"})
        self.assertEqual("2026-05-01 08:09:10", terminal.timeString())


class GenerationTests(SynchronousTestCase):
    def test_deterministic(self) -> None:
        a = makeTerminal(users=20, logs=50, seed=7)
        b = makeTerminal(users=20, logs=50, seed=7)
        c = makeTerminal(users=20, logs=50, seed=8)
        self.assertEqual(a.users, b.users)
        self.assertEqual(a.logs, b.logs)
        self.assertEqual(a.mac, b.mac)
        self.assertNotEqual(a.users[1].credentials[0], c.users[1].credentials[0])
        self.assertNotEqual([e.record() for e in a.logs], [e.record() for e in c.logs])

    def test_generatedLogs(self) -> None:
        terminal = makeTerminal(users=20, logs=200, seed=3)
        times = [entry.time for entry in terminal.logs]
        self.assertEqual(sorted(set(times)), times, "strictly increasing times")
        self.assertLessEqual(times[-1], "2026-04-30 12:00:00")
        self.assertEqual(list(range(200)), [entry.index for entry in terminal.logs])
        for entry in terminal.logs:
            self.assertIn(entry.enrollid, terminal.users)
            self.assertIn(entry.mode, (1, 2, 3))
            self.assertFalse(entry.uploaded)
            self.assertTrue(entry.new)

    def test_generatedTemplatesLookReal(self) -> None:
        terminal = makeTerminal(users=5)
        for user in terminal.users.values():
            template = user.credentials[0]
            assert isinstance(template, str)
            self.assertRegex(template, r"^[0-9a-f]+(\(\d+\)[0-9a-f]+)+$")
            self.assertLess(len(template), 1620)


class LogUploadTests(SynchronousTestCase):
    def test_batchesAndAcks(self) -> None:
        terminal = makeTerminal(users=5, logs=25)
        first = terminal.nextLogBatch(10)
        assert first is not None
        self.assertEqual(["cmd", "sn", "count", "logindex", "record"], list(first))
        self.assertEqual(
            ("sendlog", "SIM000001", 10, 0),
            (first["cmd"], first["sn"], first["count"], first["logindex"]),
        )
        self.assertEqual([e.record() for e in terminal.logs[:10]], first["record"])
        self.assertEqual({"enrollid", "time", "mode", "inout", "event"}, set(first["record"][0]))
        self.assertEqual(0, terminal.pendingBatchIndex())

        # unacknowledged: the very same batch again
        self.assertEqual(first, terminal.nextLogBatch(10))
        self.assertEqual(first, terminal.nextLogBatch(3))
        # a negative ack leaves it pending
        self.assertEqual(0, terminal.ackLogs({"ret": "sendlog", "result": False, "reason": 1}))
        self.assertEqual(first, terminal.nextLogBatch(10))
        # a stale ack (other logindex) is ignored
        self.assertEqual(
            0, terminal.ackLogs({"ret": "sendlog", "result": True, "count": 10, "logindex": 99})
        )
        self.assertEqual(25, terminal.pendingLogCount())
        # the right ack
        self.assertEqual(
            10, terminal.ackLogs({"ret": "sendlog", "result": True, "count": 10, "logindex": 0})
        )
        self.assertEqual(15, terminal.pendingLogCount())
        self.assertTrue(all(e.uploaded and not e.new for e in terminal.logs[:10]))
        self.assertFalse(any(e.uploaded for e in terminal.logs[10:]))

        second = terminal.nextLogBatch(10)
        assert second is not None
        self.assertEqual((10, 10), (second["count"], second["logindex"]))
        # a minimal ack without count/logindex is accepted
        self.assertEqual(10, terminal.ackLogs({"ret": "sendlog", "result": True}))
        third = terminal.nextLogBatch(10)
        assert third is not None
        self.assertEqual((5, 20), (third["count"], third["logindex"]))
        self.assertTrue(
            terminal.handleReply({"ret": "sendlog", "result": True, "count": 5, "logindex": 20})
        )
        self.assertIsNone(terminal.nextLogBatch(10))
        self.assertEqual(0, terminal.pendingLogCount())
        self.assertEqual(0, terminal.ackLogs({"ret": "sendlog", "result": True}))

    def test_everyLogUploadedExactlyOnce(self) -> None:
        terminal = makeTerminal(users=5, logs=1000)
        uploaded: list[dict[str, Any]] = []
        rejected = 0
        while (batch := terminal.nextLogBatch(7)) is not None:
            # reject every third ack: the batch must come back unchanged
            if batch["logindex"] % 3 == 0 and rejected < 50:
                rejected += 1
                self.assertEqual(batch, terminal.nextLogBatch(7))
                terminal.ackLogs({"ret": "sendlog", "result": False})
                continue
            uploaded.extend(batch["record"])
            terminal.ackLogs({"ret": "sendlog", "result": True, "logindex": batch["logindex"]})
        self.assertEqual([e.record() for e in terminal.logs], uploaded)
        self.assertEqual(50, rejected)

    def test_punch(self) -> None:
        terminal = makeTerminal(users=3, logs=2)
        pending = terminal.nextLogBatch(10)
        entry = terminal.punch(2, mode=8, inout=1)
        assert entry is not None
        self.assertEqual(
            {"enrollid": 2, "time": "2026-04-30 12:00:00", "mode": 8, "inout": 1, "event": 0},
            entry.record(),
        )
        self.assertEqual(2, entry.index)
        # the pending batch is not changed by the new log
        self.assertEqual(pending, terminal.nextLogBatch(10))
        terminal.ackLogs({"ret": "sendlog", "result": True})
        following = terminal.nextLogBatch(10)
        assert following is not None
        self.assertEqual([entry.record()], following["record"])
        self.assertEqual(2, following["logindex"])
        explicit = terminal.punch(1, time="2026-04-30 07:00:00")
        assert explicit is not None
        self.assertEqual("2026-04-30 07:00:00", explicit.time)

    def test_punchWhileDisabled(self) -> None:
        terminal = makeTerminal(users=1)
        terminal.handleCommand({"cmd": "disabledevice"})
        self.assertIsNone(terminal.punch(1))
        terminal.handleCommand({"cmd": "enabledevice"})
        self.assertIsNotNone(terminal.punch(1))


class SendUserTests(SynchronousTestCase):
    def test_enrollAndAck(self) -> None:
        terminal = makeTerminal()
        frame = terminal.enrollUser(7, name="Ann", backupnum=11, record=2352253)
        self.assertEqual(
            {
                "cmd": "senduser",
                "sn": "SIM000001",
                "enrollid": 7,
                "name": "Ann",
                "backupnum": 11,
                "admin": 0,
                "record": 2352253,
            },
            frame,
        )
        terminal.enrollUser(8, name="Bob", backupnum=0, record=CAPTURED_TEMPLATE_1)
        self.assertEqual(frame, terminal.nextSendUser())
        self.assertEqual(frame, terminal.nextSendUser())
        self.assertFalse(terminal.ackUser({"ret": "senduser", "result": False, "reason": 1}))
        self.assertTrue(
            terminal.handleReply(
                {"ret": "senduser", "result": True, "cloudtime": "2026-04-30 12:00:00"}
            )
        )
        second = terminal.nextSendUser()
        assert second is not None
        self.assertEqual((8, CAPTURED_TEMPLATE_1), (second["enrollid"], second["record"]))
        self.assertTrue(terminal.ackUser({"ret": "senduser", "result": True}))
        self.assertIsNone(terminal.nextSendUser())
        self.assertEqual(2352253, terminal.users[7].credentials[11])

    def test_generatedRecord(self) -> None:
        terminal = makeTerminal()
        frame = terminal.enrollUser(1, backupnum=10)
        self.assertIsInstance(frame["record"], int)
        frame = terminal.enrollUser(1, backupnum=3)
        self.assertIsInstance(frame["record"], str)
        self.assertRaises(ValueError, terminal.enrollUser, 1, backupnum=12)

    def test_nosenduser(self) -> None:
        terminal = makeTerminal()
        terminal.handleReply({"ret": "reg", "result": True, "nosenduser": True})
        terminal.enrollUser(1, backupnum=0)
        self.assertIsNone(terminal.nextSendUser())
        self.assertIn(0, terminal.users[1].credentials)


class UserListPagingTests(SynchronousTestCase):
    def pageThrough(self, terminal: SimulatedTerminal, command: str) -> list[dict[str, Any]]:
        pages = [terminal.handleCommand({"cmd": command, "stn": True})]
        while pages[-1] is not None and pages[-1]["record"]:
            pages.append(terminal.handleCommand({"cmd": command, "stn": False}))
            self.assertLess(len(pages), 1000)
        return [page for page in pages if page is not None]

    def check(self, style: PagingStyle) -> None:
        terminal = makeTerminal(users=1000, pagingStyle=style)
        expected = expectedCredentials(1000)
        self.assertEqual(1533, len(expected))
        pages = self.pageThrough(terminal, "getuserlist")
        self.assertEqual(40, len(pages))  # 38 full pages, 1 of 13, 1 empty
        records = []
        for number, page in enumerate(pages[:-1]):
            start = number * USER_PAGE_SIZE
            size = min(USER_PAGE_SIZE, 1533 - start)
            self.assertEqual(["ret", "sn", "result", "count", "from", "to", "record"], list(page))
            self.assertEqual(
                ("getuserlist", "SIM000001", True), (page["ret"], page["sn"], page["result"])
            )
            self.assertEqual(size, len(page["record"]))
            self.assertEqual(start, page["from"])
            if style == "doc":
                self.assertEqual((size, start + size - 1), (page["count"], page["to"]))
            else:
                self.assertEqual((1533, start + size), (page["count"], page["to"]))
            records.extend(page["record"])
        self.assertEqual(
            {
                "ret": "getuserlist",
                "sn": "SIM000001",
                "result": True,
                "count": 0,
                "from": 0,
                "to": 0,
                "record": [],
            },
            pages[-1],
        )
        self.assertEqual(expected, records)
        last = pages[-2]
        self.assertEqual(1520, last["from"])
        self.assertEqual(1532 if style == "doc" else 1533, last["to"])

    def test_docStyle(self) -> None:
        self.check("doc")

    def test_th900Style(self) -> None:
        self.check("th900")

    def test_stnTrueRestarts(self) -> None:
        terminal = makeTerminal(users=100)
        first = terminal.handleCommand({"cmd": "getuserlist", "stn": True})
        second = terminal.handleCommand({"cmd": "getuserlist", "stn": False})
        again = terminal.handleCommand({"cmd": "getuserlist", "stn": True})
        assert first is not None and second is not None
        self.assertEqual(first, again)
        self.assertEqual(40, second["from"])

    def test_empty(self) -> None:
        for style in ("doc", "th900"):
            terminal = makeTerminal(pagingStyle=style)
            self.assertEqual(
                {
                    "ret": "getuserlist",
                    "sn": "SIM000001",
                    "result": True,
                    "count": 0,
                    "from": 0,
                    "to": 0,
                    "record": [],
                },
                terminal.handleCommand({"cmd": "getuserlist", "stn": True}),
            )

    def test_getallusers(self) -> None:
        terminal = makeTerminal(users=3)
        replies = [terminal.handleCommand({"cmd": "getallusers", "stn": True})]
        for _ in range(4):
            replies.append(terminal.handleCommand({"cmd": "getallusers", "stn": False}))
        first = replies[0]
        assert first is not None
        self.assertEqual(
            {
                "ret": "getallusers",
                "sn": "SIM000001",
                "result": True,
                "count": 4,
                "index": 0,
                "enrollid": 1,
                "name": "User 1",
                "backupnum": 0,
                "admin": 1,
                "record": terminal.users[1].credentials[0],
            },
            first,
        )
        self.assertEqual(
            [(0, 1, 0), (1, 2, 0), (2, 3, 0), (3, 3, 11)],
            [(r["index"], r["enrollid"], r["backupnum"]) for r in replies[:4] if r is not None],
        )
        self.assertEqual(
            {"ret": "getallusers", "sn": "SIM000001", "result": True, "count": 0, "index": 0},
            replies[4],
        )


class PageSizeTests(SynchronousTestCase):
    """C{pageSize}, C{countIsTotal} and C{exclusiveTo} give every firmware convention."""

    def test_tenAtATime(self) -> None:
        for countIsTotal, exclusiveTo in ((False, False), (False, True), (True, False)):
            terminal = makeTerminal(
                logs=25, pageSize=10, countIsTotal=countIsTotal, exclusiveTo=exclusiveTo
            )
            pages = [terminal.handleCommand({"cmd": "getalllog", "stn": True})]
            for _ in range(3):
                pages.append(terminal.handleCommand({"cmd": "getalllog", "stn": False}))
            shapes = [(p["count"], p["from"], p["to"], len(p["record"])) for p in pages if p]
            shift = 0 if exclusiveTo else 1
            counts = (25, 25, 25) if countIsTotal else (10, 10, 5)
            self.assertEqual(
                shapes,
                [
                    (counts[0], 0, 10 - shift, 10),
                    (counts[1], 10, 20 - shift, 10),
                    (counts[2], 20, 25 - shift, 5),
                    (0, 0, 0, 0),
                ],
            )

    def test_usersToo(self) -> None:
        terminal = makeTerminal(users=30, pageSize=10, pagingStyle="th900")
        page = terminal.handleCommand({"cmd": "getuserlist", "stn": True})
        assert page is not None
        self.assertEqual((len(page["record"]), page["to"]), (10, 10))
        self.assertGreater(page["count"], 10)

    def test_badPageSize(self) -> None:
        self.assertRaises(ValueError, makeTerminal, pageSize=0)


class LogPagingTests(SynchronousTestCase):
    def check(self, style: PagingStyle, command: str) -> None:
        terminal = makeTerminal(users=10, logs=100, pagingStyle=style)
        first = terminal.handleCommand({"cmd": command, "stn": True})
        second = terminal.handleCommand({"cmd": command, "stn": False})
        third = terminal.handleCommand({"cmd": command, "stn": False})
        assert first is not None and second is not None
        end = 49 if style == "doc" else 50
        self.assertEqual((100, 0, end), (first["count"], first["from"], first["to"]))
        self.assertEqual((100, 50, end + 50), (second["count"], second["from"], second["to"]))
        self.assertEqual([e.record() for e in terminal.logs], first["record"] + second["record"])
        self.assertEqual(LOG_PAGE_SIZE, len(first["record"]))
        self.assertEqual(
            {
                "ret": command,
                "sn": "SIM000001",
                "result": True,
                "count": 0,
                "from": 0,
                "to": 0,
                "record": [],
            },
            third,
        )

    def test_getnewlogDoc(self) -> None:
        self.check("doc", "getnewlog")

    def test_getnewlogTh900(self) -> None:
        self.check("th900", "getnewlog")

    def test_getalllogDoc(self) -> None:
        self.check("doc", "getalllog")

    def test_getalllogTh900(self) -> None:
        self.check("th900", "getalllog")

    def test_getnewlogMarksRead(self) -> None:
        terminal = makeTerminal(users=10, logs=60)
        # the first 10 are uploaded by sendlog: no longer new
        terminal.nextLogBatch(10)
        terminal.ackLogs({"ret": "sendlog", "result": True})
        first = terminal.handleCommand({"cmd": "getnewlog", "stn": True})
        assert first is not None
        self.assertEqual((50, 0, 49), (first["count"], first["from"], first["to"]))
        self.assertEqual([e.record() for e in terminal.logs[10:]], first["record"])
        self.assertEqual(0, terminal.newLogCount())
        again = terminal.handleCommand({"cmd": "getnewlog", "stn": True})
        assert again is not None
        self.assertEqual(([], 0), (again["record"], again["count"]))
        # getnewlog does not upload: sendlog still pushes the rest
        self.assertEqual(50, terminal.pendingLogCount())
        # getalllog returns everything and marks nothing
        terminal.punch(1)
        everything = terminal.handleCommand({"cmd": "getalllog", "stn": True})
        assert everything is not None
        self.assertEqual(61, everything["count"])
        self.assertEqual(1, terminal.newLogCount())

    def test_getalllogDateRange(self) -> None:
        terminal = makeTerminal(users=2)
        for day in range(1, 6):
            for hour in (0, 12, 23):
                terminal.punch(1, time=f"2026-04-0{day} {hour:02d}:00:00")
        reply = terminal.handleCommand(
            {"cmd": "getalllog", "stn": True, "from": "2026-4-2", "to": "2026-4-3"}
        )
        assert reply is not None
        self.assertEqual(6, reply["count"])
        self.assertEqual(
            [
                "2026-04-02 00:00:00",
                "2026-04-02 12:00:00",
                "2026-04-02 23:00:00",
                "2026-04-03 00:00:00",
                "2026-04-03 12:00:00",
                "2026-04-03 23:00:00",
            ],
            [r["time"] for r in reply["record"]],
        )
        onlyFrom = terminal.handleCommand({"cmd": "getalllog", "stn": True, "from": "2026-04-05"})
        assert onlyFrom is not None
        self.assertEqual(3, onlyFrom["count"])
        onlyTo = terminal.handleCommand(
            {"cmd": "getalllog", "stn": True, "to": "2026-04-01 12:00:00"}
        )
        assert onlyTo is not None
        self.assertEqual(2, onlyTo["count"])
        self.assertEqual(
            failure("getalllog"),
            terminal.handleCommand({"cmd": "getalllog", "stn": True, "from": "yesterday"}),
        )


class UserCommandTests(SynchronousTestCase):
    def test_capturedTemplatesByteForByte(self) -> None:
        """
        A template read from one terminal is stored verbatim and returned byte for byte.
        """
        terminal = makeTerminal()
        for enrollid, name, template in (
            (1, "Ben", CAPTURED_TEMPLATE_1),
            (2, "Lw", CAPTURED_TEMPLATE_2),
        ):
            self.assertEqual(
                {"ret": "setuserinfo", "sn": "SIM000001", "result": True},
                terminal.handleCommand(
                    {
                        "cmd": "setuserinfo",
                        "enrollid": enrollid,
                        "name": name,
                        "backupnum": 0,
                        "admin": 0,
                        "record": template,
                    }
                ),
            )
        for enrollid, name, template in (
            (1, "Ben", CAPTURED_TEMPLATE_1),
            (2, "Lw", CAPTURED_TEMPLATE_2),
        ):
            reply = terminal.handleCommand(
                {"cmd": "getuserinfo", "enrollid": enrollid, "backupnum": 0}
            )
            self.assertEqual(
                {
                    "ret": "getuserinfo",
                    "sn": "SIM000001",
                    "result": True,
                    "enrollid": enrollid,
                    "name": name,
                    "backupnum": 0,
                    "admin": 0,
                    "record": template,
                },
                reply,
            )
            assert reply is not None
            self.assertEqual(template.encode("utf-8"), reply["record"].encode("utf-8"))
        self.assertIn("(200)9535", CAPTURED_TEMPLATE_1)

    def test_getuserinfo(self) -> None:
        terminal = makeTerminal(users=15)
        card = terminal.handleCommand({"cmd": "getuserinfo", "enrollid": 15, "backupnum": 11})
        pwd = terminal.handleCommand({"cmd": "getuserinfo", "enrollid": "15", "backupnum": "10"})
        assert card is not None and pwd is not None
        self.assertIsInstance(card["record"], int)
        self.assertIsInstance(pwd["record"], int)
        # no backupnum: slot 0, as the TH900 does
        slot0 = terminal.handleCommand({"cmd": "getuserinfo", "enrollid": 15})
        assert slot0 is not None
        self.assertEqual(terminal.users[15].credentials[0], slot0["record"])
        self.assertEqual(
            failure("getuserinfo"), terminal.handleCommand({"cmd": "getuserinfo", "enrollid": 99})
        )
        self.assertEqual(failure("getuserinfo"), terminal.handleCommand({"cmd": "getuserinfo"}))
        self.assertEqual(
            failure("getuserinfo"),
            terminal.handleCommand({"cmd": "getuserinfo", "enrollid": 1, "backupnum": 11}),
        )

    def test_trimmedKeys(self) -> None:
        terminal = makeTerminal(users=1)
        reply = terminal.handleCommand({"cmd": " getuserinfo ", "enrollid ": 1, "sn": "SIM000001"})
        assert reply is not None
        self.assertEqual(("getuserinfo", True), (reply["ret"], reply["result"]))

    def test_setuserinfoSlots(self) -> None:
        terminal = makeTerminal()
        ok = {"ret": "setuserinfo", "sn": "SIM000001", "result": True}
        self.assertEqual(
            ok,
            terminal.handleCommand(
                {
                    "cmd": "setuserinfo",
                    "enrollid": 5,
                    "name": "Eve",
                    "backupnum": 11,
                    "admin": 1,
                    "record": "2352253",
                }
            ),
        )
        self.assertEqual(
            ok,
            terminal.handleCommand(
                {"cmd": "setuserinfo", "enrollid": 5, "backupnum": 10, "record": 12345678}
            ),
        )
        self.assertEqual(
            ok,
            terminal.handleCommand(
                {"cmd": "setuserinfo", "enrollid": 5, "backupnum": 50, "record": "/9j/4AAQSkZJRg=="}
            ),
        )
        user = terminal.users[5]
        self.assertEqual(
            ({11: 2352253, 10: 12345678, 50: "/9j/4AAQSkZJRg=="}, "Eve", 1),
            (user.credentials, user.name, user.admin),
        )
        for bad in (
            {"backupnum": 12, "record": "x"},
            {"backupnum": 13, "record": "x"},
            {"backupnum": 11, "record": "not a number"},
            {"backupnum": 0, "record": 42},
            {"backupnum": 0, "admin": 7, "record": "ab"},
        ):
            self.assertEqual(
                failure("setuserinfo"),
                terminal.handleCommand({"cmd": "setuserinfo", "enrollid": 6, **bad}),
            )
        self.assertEqual(
            failure("setuserinfo"), terminal.handleCommand({"cmd": "setuserinfo", "name": "nobody"})
        )
        self.assertNotIn(6, terminal.users)

    def test_setuserinfoExtended(self) -> None:
        terminal = makeTerminal()
        reply = terminal.handleCommand(
            {
                "cmd": "setuserinfo",
                "enrollid": 9,
                "name": "Zoé",
                "backupnum": 0,
                "record": "0",
                "enable": 0,
                "card": 777,
                "pwd": "1234",
                "verifymode": 2,
                "starttime": "2026-01-01 00:00:00",
                "endtime": "2026-12-31 23:59:59",
            }
        )
        self.assertEqual(True, reply and reply["result"])
        user = terminal.users[9]
        self.assertEqual("Zoé", user.name)
        self.assertFalse(user.enabled)
        self.assertEqual({11: 777, 10: 1234}, user.credentials)
        self.assertEqual(2, user.extra["verifymode"])
        self.assertEqual("2026-12-31 23:59:59", user.extra["endtime"])

    def test_capacity(self) -> None:
        terminal = makeTerminal(users=2, usersize=2)
        self.assertEqual(
            failure("setuserinfo"),
            terminal.handleCommand({"cmd": "setuserinfo", "enrollid": 3, "name": "x"}),
        )
        self.assertEqual(
            True,
            (terminal.handleCommand({"cmd": "setuserinfo", "enrollid": 2, "name": "x"}) or {}).get(
                "result"
            ),
        )

    def test_deleteuser(self) -> None:
        terminal = makeTerminal(users=15)
        ok = {"ret": "deleteuser", "sn": "SIM000001", "result": True}
        for slot in (3, 4, 7):
            terminal.users[15].credentials[slot] = f"fp{slot}"
        self.assertEqual({0, 3, 4, 7, 10, 11}, set(terminal.users[15].credentials))
        self.assertEqual(
            ok, terminal.handleCommand({"cmd": "deleteuser", "enrollid": 15, "backupnum": 3})
        )
        self.assertEqual({0, 4, 7, 10, 11}, set(terminal.users[15].credentials))
        self.assertEqual(
            failure("deleteuser"),
            terminal.handleCommand({"cmd": "deleteuser", "enrollid": 15, "backupnum": 3}),
        )
        self.assertEqual(
            ok, terminal.handleCommand({"cmd": "deleteuser", "enrollid": 15, "backupnum": 10})
        )
        self.assertEqual(
            ok, terminal.handleCommand({"cmd": "deleteuser", "enrollid": 15, "backupnum": 12})
        )
        self.assertEqual({11}, set(terminal.users[15].credentials))
        self.assertEqual(
            ok, terminal.handleCommand({"cmd": "deleteuser", "enrollid": 15, "backupnum": 11})
        )
        self.assertEqual({}, terminal.users[15].credentials)
        self.assertEqual("User 15", terminal.users[15].name)
        terminal.handleCommand(
            {"cmd": "setuserlock", "count": 1, "record": [{"enrollid": 14, "group": 2}]}
        )
        terminal.handleCommand({"cmd": "setuserprofile", "enrollid": 14, "profile": "hi"})
        self.assertEqual(
            ok, terminal.handleCommand({"cmd": "deleteuser", "enrollid": 14, "backupnum": 13})
        )
        self.assertNotIn(14, terminal.users)
        self.assertNotIn(14, terminal.userlocks)
        self.assertNotIn(14, terminal.profiles)
        self.assertEqual(
            failure("deleteuser"),
            terminal.handleCommand({"cmd": "deleteuser", "enrollid": 14, "backupnum": 13}),
        )
        self.assertEqual(
            failure("deleteuser"), terminal.handleCommand({"cmd": "deleteuser", "enrollid": 1})
        )
        self.assertIn(1, terminal.users)

    def test_usernames(self) -> None:
        terminal = makeTerminal(users=2)
        self.assertEqual(
            {"ret": "getusername", "sn": "SIM000001", "result": True, "record": "User 2"},
            terminal.handleCommand({"cmd": "getusername", "enrollid": 2}),
        )
        self.assertEqual(
            failure("getusername"), terminal.handleCommand({"cmd": "getusername", "enrollid": 3})
        )
        self.assertEqual(
            {"ret": "setusername", "sn": "SIM000001", "result": True},
            terminal.handleCommand(
                {
                    "cmd": "setusername",
                    "count": 2,
                    "record": [{"enrollid": 2, "name": "ชื่อ"}, {"enrollid": 3, "name": "Özlem"}],
                }
            ),
        )
        self.assertEqual(("ชื่อ", "Özlem"), (terminal.users[2].name, terminal.users[3].name))
        tooMany = [{"enrollid": i, "name": "x"} for i in range(51)]
        self.assertEqual(
            failure("setusername"),
            terminal.handleCommand({"cmd": "setusername", "count": 51, "record": tooMany}),
        )
        self.assertEqual(
            failure("setusername"),
            terminal.handleCommand({"cmd": "setusername", "record": [{"name": "x"}]}),
        )

    def test_enableuser(self) -> None:
        terminal = makeTerminal(users=1)
        ok = {"ret": "enableuser", "sn": "SIM000001", "result": True}
        self.assertEqual(
            ok, terminal.handleCommand({"cmd": "enableuser", "enrollid": 1, "enflag": 0})
        )
        self.assertFalse(terminal.users[1].enabled)
        self.assertEqual(
            ok, terminal.handleCommand({"cmd": "enableuser", "enrollid": 1, "enflag": 1})
        )
        self.assertTrue(terminal.users[1].enabled)
        self.assertEqual(
            failure("enableuser"),
            terminal.handleCommand({"cmd": "enableuser", "enrollid": 2, "enflag": 1}),
        )
        self.assertEqual(
            failure("enableuser"),
            terminal.handleCommand({"cmd": "enableuser", "enrollid": 1, "enflag": 5}),
        )

    def test_cleanuserAndCleanadmin(self) -> None:
        terminal = makeTerminal(users=5, logs=3)
        terminal.handleCommand({"cmd": "setuserprofile", "enrollid": 0, "profile": "notice"})
        terminal.handleCommand({"cmd": "setuserprofile", "enrollid": 2, "profile": "p"})
        self.assertEqual(
            {"ret": "cleanadmin", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "cleanadmin"}),
        )
        self.assertEqual([0] * 5, [u.admin for u in terminal.users.values()])
        self.assertEqual(
            {"ret": "cleanuser", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "cleanuser"}),
        )
        self.assertEqual({}, terminal.users)
        self.assertEqual({0: "notice"}, terminal.profiles)
        self.assertEqual(3, len(terminal.logs))

    def test_profiles(self) -> None:
        terminal = makeTerminal(users=1)
        self.assertEqual(
            {"ret": "setuserprofile", "sn": "SIM000001", "result": True, "enrollid": 1},
            terminal.handleCommand({"cmd": "setuserprofile", "enrollid": 1, "profile": "Welcome"}),
        )
        self.assertEqual(
            {
                "ret": "getuserprofile",
                "sn": "SIM000001",
                "result": True,
                "enrollid": 1,
                "record": "Welcome",
            },
            terminal.handleCommand({"cmd": "getuserprofile", "enrollid": 1}),
        )
        self.assertEqual(
            {
                "ret": "getuserprofile",
                "sn": "SIM000001",
                "result": True,
                "enrollid": 0,
                "record": "",
            },
            terminal.handleCommand({"cmd": "getuserprofile", "enrollid": 0}),
        )
        self.assertEqual(
            failure("setuserprofile"),
            terminal.handleCommand({"cmd": "setuserprofile", "enrollid": 1, "profile": "é" * 101}),
        )
        self.assertEqual(
            failure("setuserprofile"),
            terminal.handleCommand({"cmd": "setuserprofile", "enrollid": 2, "profile": "x"}),
        )
        self.assertEqual(
            failure("getuserprofile"),
            terminal.handleCommand({"cmd": "getuserprofile", "enrollid": 2}),
        )

    def test_adduser(self) -> None:
        terminal = makeTerminal()
        reply = terminal.handleCommand(
            {
                "cmd": "adduser",
                "enrollid": 4,
                "backupnum": 50,
                "admin": 0,
                "name": "TEST",
                "flag": 10,
            }
        )
        self.assertEqual(
            {"ret": "adduser", "sn": "SIM000001", "result": True, "enrollid": 4, "backupnum": 50},
            reply,
        )
        self.assertEqual("TEST", terminal.users[4].name)
        self.assertIn(50, terminal.users[4].credentials)
        pushed = terminal.nextSendUser()
        assert pushed is not None
        self.assertEqual((4, 50), (pushed["enrollid"], pushed["backupnum"]))
        self.assertEqual(
            failure("adduser"),
            terminal.handleCommand({"cmd": "adduser", "enrollid": 4, "backupnum": 13}),
        )
        self.assertEqual(
            failure("adduser"), terminal.handleCommand({"cmd": "adduser", "backupnum": 0})
        )


class SystemCommandTests(SynchronousTestCase):
    def test_rebootReturnsNone(self) -> None:
        terminal = makeTerminal(users=2, logs=2)
        terminal.handleReply({"ret": "reg", "result": True})
        self.assertIsNone(terminal.handleCommand({"cmd": "reboot"}))
        self.assertEqual(1, terminal.reboots)
        self.assertFalse(terminal.registered)
        self.assertEqual(2, len(terminal.users))
        self.assertEqual(2, terminal.pendingLogCount())

    def test_cleanlog(self) -> None:
        terminal = makeTerminal(users=2, logs=30)
        terminal.nextLogBatch(10)
        self.assertEqual(
            {"ret": "cleanlog", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "cleanlog"}),
        )
        self.assertEqual([], terminal.logs)
        self.assertIsNone(terminal.pendingBatchIndex())
        self.assertIsNone(terminal.nextLogBatch(10))
        entry = terminal.punch(1)
        assert entry is not None
        self.assertEqual(30, entry.index, "log indexes are never reused")
        self.assertEqual(2, len(terminal.users))

    def test_initsys(self) -> None:
        terminal = makeTerminal(users=2, logs=30)
        terminal.handleCommand({"cmd": "setdevinfo", "volume": 9})
        self.assertEqual(
            {"ret": "initsys", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "initsys"}),
        )
        self.assertEqual(({}, []), (terminal.users, terminal.logs))
        self.assertEqual(9, terminal.devinfo["volume"])

    def test_time(self) -> None:
        terminal = makeTerminal()
        self.assertEqual(
            {"ret": "gettime", "sn": "SIM000001", "time": "2026-04-30 12:00:00"},
            terminal.handleCommand({"cmd": "gettime"}),
        )
        self.assertEqual(
            {"ret": "settime", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "settime", "cloudtime": "2016-03-25 13:49:30"}),
        )
        self.assertEqual(
            {"ret": "gettime", "sn": "SIM000001", "time": "2016-03-25 13:49:30"},
            terminal.handleCommand({"cmd": "gettime"}),
        )
        self.assertAlmostEqual(
            datetime(2016, 3, 25, 13, 49, 30, tzinfo=UTC).timestamp() - NOW, terminal.clockOffset
        )
        self.assertEqual(
            failure("settime"), terminal.handleCommand({"cmd": "settime", "cloudtime": "soon"})
        )
        self.assertEqual(failure("settime"), terminal.handleCommand({"cmd": "settime"}))

    def test_clockAdvances(self) -> None:
        now = [NOW]
        terminal = SimulatedTerminal(clock=lambda: now[0], tz=UTC)
        terminal.handleCommand({"cmd": "settime", "cloudtime": "2020-01-01 00:00:00"})
        now[0] += 61
        self.assertEqual("2020-01-01 00:01:01", terminal.timeString())

    def test_devinfo(self) -> None:
        terminal = makeTerminal()
        self.assertEqual(
            {
                "ret": "getdevinfo",
                "sn": "SIM000001",
                "result": True,
                "deviceid": 1,
                "language": 0,
                "volume": 6,
                "screensaver": 0,
                "verifymode": 0,
                "sleep": 0,
                "userfpnum": 3,
                "loghint": 1000,
                "reverifytime": 0,
            },
            terminal.handleCommand({"cmd": "getdevinfo"}),
        )
        self.assertEqual(
            {"ret": "setdevinfo", "sn": "SIM000001", "result": True},
            terminal.handleCommand(
                {"cmd": "setdevinfo", "volume": 8, "sleep": 1, "disablemenu": 1}
            ),
        )
        reply = terminal.handleCommand({"cmd": "getdevinfo"})
        assert reply is not None
        self.assertEqual(
            (8, 1, 1, 3),
            (reply["volume"], reply["sleep"], reply["disablemenu"], reply["userfpnum"]),
        )

    def test_disableEnableDevice(self) -> None:
        terminal = makeTerminal()
        self.assertEqual(
            {"ret": "disabledevice", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "disabledevice"}),
        )
        self.assertFalse(terminal.deviceEnabled)
        self.assertEqual(
            {"ret": "enabledevice", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "enabledevice"}),
        )
        self.assertTrue(terminal.deviceEnabled)

    def test_unknownCommand(self) -> None:
        terminal = makeTerminal()
        self.assertEqual(failure("frobnicate"), terminal.handleCommand({"cmd": "frobnicate"}))
        self.assertEqual(failure("__init__"), terminal.handleCommand({"cmd": "__init__"}))
        self.assertEqual(failure(""), terminal.handleCommand({"enrollid": 1}))


class AccessControlTests(SynchronousTestCase):
    def test_opendoor(self) -> None:
        terminal = makeTerminal(doors=4)
        ok = {"ret": "opendoor", "sn": "SIM000001", "result": True}
        self.assertEqual(ok, terminal.handleCommand({"cmd": "opendoor"}))
        self.assertEqual(ok, terminal.handleCommand({"cmd": "opendoor", "doornum": 2}))
        self.assertEqual(
            failure("opendoor"), terminal.handleCommand({"cmd": "opendoor", "doornum": 5})
        )
        self.assertEqual(
            [("2026-04-30 12:00:00", [1, 2, 3, 4]), ("2026-04-30 12:00:00", [2])],
            terminal.doorOpens,
        )

    def test_devlock(self) -> None:
        terminal = makeTerminal()
        dayzone = [{"day": [{"section": "07:00~18:00"}]}]
        self.assertEqual(
            {"ret": "setdevlock", "sn": "SIM000001", "result": True},
            terminal.handleCommand(
                {"cmd": "setdevlock", "opendelay": 3, "InputAlarm": 1, "dayzone": dayzone}
            ),
        )
        reply = terminal.handleCommand({"cmd": "getdevlock"})
        assert reply is not None
        self.assertEqual(
            ("getdevlock", "SIM000001", True), (reply["ret"], reply["sn"], reply["result"])
        )
        self.assertEqual(
            (3, 1, dayzone, 0),
            (reply["opendelay"], reply["InputAlarm"], reply["dayzone"], reply["threat"]),
        )

    def test_userlocks(self) -> None:
        terminal = makeTerminal(users=3)
        default = terminal.handleCommand({"cmd": "getuserlock", "enrollid": 1})
        self.assertEqual(
            {
                "ret": "getuserlock",
                "sn": "SIM000001",
                "result": True,
                "enrollid": 1,
                "weekzone": 1,
                "weekzone2": 1,
                "weekzone3": 1,
                "weekzone4": 1,
                "group": 0,
                "starttime": "2000-01-01 00:00:00",
                "endtime": "2099-12-31 23:59:59",
            },
            default,
        )
        self.assertEqual(
            {"ret": "setuserlock", "sn": "SIM000001", "result": True},
            terminal.handleCommand(
                {
                    "cmd": "setuserlock",
                    "count": 2,
                    "record": [
                        {"enrollid": 1, "group": 3, "endtime": "2030-01-01 00:00:00"},
                        {"enrollid": 2, "weekzone": 4},
                    ],
                }
            ),
        )
        reply = terminal.handleCommand({"cmd": "getuserlock", "enrollid": 1})
        assert reply is not None
        self.assertEqual(
            (3, "2030-01-01 00:00:00", 1), (reply["group"], reply["endtime"], reply["weekzone"])
        )
        self.assertEqual(
            {"ret": "deleteuserlock", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "deleteuserlock", "enrollid": 1}),
        )
        self.assertEqual(default, terminal.handleCommand({"cmd": "getuserlock", "enrollid": 1}))
        self.assertIn(2, terminal.userlocks)
        self.assertEqual(
            {"ret": "cleanuserlock", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "cleanuserlock"}),
        )
        self.assertEqual({}, terminal.userlocks)
        self.assertEqual(
            failure("getuserlock"), terminal.handleCommand({"cmd": "getuserlock", "enrollid": 9})
        )
        tooMany = [{"enrollid": 1}] * 51
        self.assertEqual(
            failure("setuserlock"),
            terminal.handleCommand({"cmd": "setuserlock", "count": 51, "record": tooMany}),
        )


class QuestionnaireHolidayTests(SynchronousTestCase):
    def test_questionnaire(self) -> None:
        terminal = makeTerminal()
        self.assertEqual(
            {
                "ret": "getquestionnaire",
                "sn": "SIM000001",
                "result": True,
                "title": "",
                "voice": "",
                "errmsg": "",
                "radio": False,
                "optionflag": 0,
                "usequestion": False,
                "useschedule": False,
                "card": False,
                "items": [],
                "schedules": [],
            },
            terminal.handleCommand({"cmd": "getquestionnaire", "stn": True}),
        )
        self.assertEqual(
            {"ret": "setquestionnaire", "sn": "SIM000001", "result": True},
            terminal.handleCommand(
                {
                    "cmd": "setquestionnaire",
                    "title": "Lunch?",
                    "radio": True,
                    "items": ["yes", "no"],
                    "schedules": ["11:00-14:00*1"],
                }
            ),
        )
        reply = terminal.handleCommand({"cmd": "getquestionnaire"})
        assert reply is not None
        self.assertEqual(
            ("Lunch?", True, ["yes", "no"], ["11:00-14:00*1"]),
            (reply["title"], reply["radio"], reply["items"], reply["schedules"]),
        )
        self.assertEqual(
            failure("setquestionnaire"),
            terminal.handleCommand({"cmd": "setquestionnaire", "items": ["x"] * 17}),
        )

    def test_holidays(self) -> None:
        terminal = makeTerminal()
        self.assertEqual(
            {"ret": "getholiday", "sn": "SIM000001", "result": True, "holidays": []},
            terminal.handleCommand({"cmd": "getholiday"}),
        )
        holidays = [
            {"name": "holiday1", "startday": "01-01", "endday": "01-01", "shift": 0, "dayzone": 0}
        ]
        self.assertEqual(
            {"ret": "setholiday", "sn": "SIM000001", "result": True},
            terminal.handleCommand({"cmd": "setholiday", "holidays": holidays}),
        )
        self.assertEqual(
            {"ret": "getholiday", "sn": "SIM000001", "result": True, "holidays": holidays},
            terminal.handleCommand({"cmd": "getholiday"}),
        )
        self.assertEqual(
            failure("setholiday"),
            terminal.handleCommand({"cmd": "setholiday", "holidays": holidays * 31}),
        )


class EveryCommandTests(SynchronousTestCase):
    #: A valid invocation of every server command of protocol section 6.
    COMMANDS: dict[str, dict[str, Any]] = {
        "getuserlist": {"stn": True},
        "getuserinfo": {"enrollid": 1, "backupnum": 0},
        "setuserinfo": {
            "enrollid": 2,
            "name": "n",
            "backupnum": 0,
            "admin": 0,
            "record": "ab(3)cd",
        },
        "deleteuser": {"enrollid": 3, "backupnum": 13},
        "getusername": {"enrollid": 1},
        "setusername": {"count": 1, "record": [{"enrollid": 1, "name": "x"}]},
        "enableuser": {"enrollid": 1, "enflag": 1},
        "cleanuser": {},
        "setuserprofile": {"enrollid": 0, "profile": "hello"},
        "getuserprofile": {"enrollid": 0},
        "adduser": {"enrollid": 9, "backupnum": 0, "admin": 0, "name": "T", "flag": 10},
        "getallusers": {"stn": True},
        "disabledevice": {},
        "enabledevice": {},
        "getnewlog": {"stn": True},
        "getalllog": {"stn": True, "from": "2018-11-1", "to": "2030-12-30"},
        "cleanlog": {},
        "initsys": {},
        "cleanadmin": {},
        "settime": {"cloudtime": "2026-04-30 12:00:00"},
        "gettime": {},
        "setdevinfo": {"volume": 5},
        "getdevinfo": {},
        "opendoor": {"doornum": 1},
        "setdevlock": {"opendelay": 2},
        "getdevlock": {},
        "getuserlock": {"enrollid": 1},
        "setuserlock": {"count": 1, "record": [{"enrollid": 1, "group": 1}]},
        "deleteuserlock": {"enrollid": 1},
        "cleanuserlock": {},
        "getquestionnaire": {"stn": True},
        "setquestionnaire": {"title": "t"},
        "getholiday": {},
        "setholiday": {"holidays": []},
    }

    def test_allCommandsCovered(self) -> None:
        self.assertEqual(sorted([*self.COMMANDS, "reboot"]), list(knownCommands()))

    def test_everyReplyCarriesSnAndRet(self) -> None:
        for name, params in self.COMMANDS.items():
            terminal = makeTerminal(users=5, logs=5, sn="ZX0006827500")
            reply = terminal.handleCommand({"cmd": name, "sn": "ZX0006827500", **params})
            assert reply is not None, name
            self.assertEqual((name, "ZX0006827500"), (reply["ret"], reply["sn"]), name)
            if name == "gettime":
                self.assertNotIn("result", reply)
            else:
                self.assertIs(True, reply["result"], name)
