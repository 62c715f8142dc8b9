"""Tests for L{tm20.protocol.commands} and L{tm20.protocol.replies}."""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tm20.protocol.commands import COMMANDS, CommandSpec, buildCommand, pageRequest
from tm20.protocol.messages import ProtocolError
from tm20.protocol.replies import (
    encodeFrame,
    failure,
    regAccepted,
    regRefused,
    sendlogAck,
    sendqrcodeReply,
    senduserAck,
    success,
)

_TIME = "2016-03-25 13:49:30"


def _invalid(name: str, params: dict[str, Any]) -> ProtocolError:
    try:
        buildCommand(name, params)
    except ProtocolError as error:
        assert error.cmd == name
        assert error.problem
        return error
    raise AssertionError(f"{name} {params!r}: no ProtocolError")


#: Every command of section 6, with valid parameters and the frame expected.
VALID: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("getuserlist", {}, {"stn": True}),
    ("getuserlist", {"stn": False}, {"stn": False}),
    ("getuserinfo", {"enrollid": 1, "backupnum": 0}, {"enrollid": 1, "backupnum": 0}),
    ("getuserinfo", {"enrollid": 999_999_999_999}, {"enrollid": 999_999_999_999}),
    (
        "setuserinfo",
        {"enrollid": 1, "name": "chingzou", "backupnum": 0, "admin": 0, "record": "ab(3)cd"},
        {"enrollid": 1, "name": "chingzou", "backupnum": 0, "admin": 0, "record": "ab(3)cd"},
    ),
    (
        "setuserinfo",
        {"enrollid": 1, "backupnum": 50, "record": "data:image/jpeg;base64,/9j/"},
        {"enrollid": 1, "backupnum": 50, "record": "/9j/"},
    ),
    (
        "setuserinfo",
        {"enrollid": 1, "backupnum": 10, "record": 12345678},
        {"enrollid": 1, "backupnum": 10, "record": 12345678},
    ),
    (
        "setuserinfo",
        {"enrollid": 1, "backupnum": 10, "record": "0012"},
        {"enrollid": 1, "backupnum": 10, "record": "0012"},
    ),
    (
        "setuserinfo",
        {"enrollid": 1, "backupnum": 11, "record": 2**63 - 1},
        {"enrollid": 1, "backupnum": 11, "record": 2**63 - 1},
    ),
    (
        "setuserinfo",
        {
            "enrollid": 2,
            "enable": 0,
            "verifymode": 4,
            "card": "123",
            "pwd": 1234,
            "shiftid": 1,
            "zoneid": 2,
            "groupid": 3,
            "birthday": "2-29",
            "starttime": "2024-1-1 0:0:0",
            "endtime": "2099-12-31 23:59:59",
            "department": "R&D",
            "aliasid": "A-7",
        },
        {
            "enrollid": 2,
            "enable": 0,
            "verifymode": 4,
            "card": "123",
            "pwd": 1234,
            "shiftid": 1,
            "zoneid": 2,
            "groupid": 3,
            "birthday": "02-29",
            "starttime": "2024-01-01 00:00:00",
            "endtime": "2099-12-31 23:59:59",
            "department": "R&D",
            "aliasid": "A-7",
        },
    ),
    ("deleteuser", {"enrollid": 1, "backupnum": 13}, {"enrollid": 1, "backupnum": 13}),
    ("deleteuser", {"enrollid": 1, "backupnum": 12}, {"enrollid": 1, "backupnum": 12}),
    ("getusername", {"enrollid": 1}, {"enrollid": 1}),
    (
        "setusername",
        {"record": [{"enrollid": 1, "name": "a"}, {"enrollid": 2, "name": "ب"}]},
        {"count": 2, "record": [{"enrollid": 1, "name": "a"}, {"enrollid": 2, "name": "ب"}]},
    ),
    ("enableuser", {"enrollid": 1, "enflag": 0}, {"enrollid": 1, "enflag": 0}),
    ("cleanuser", {}, {}),
    (
        "setuserprofile",
        {"enrollid": 0, "profile": "é" * 100},
        {"enrollid": 0, "profile": "é" * 100},
    ),
    ("getuserprofile", {"enrollid": 1}, {"enrollid": 1}),
    (
        "adduser",
        {"enrollid": 1, "backupnum": 50, "admin": 0, "name": "TEST", "flag": 10},
        {"enrollid": 1, "backupnum": 50, "admin": 0, "name": "TEST", "flag": 10},
    ),
    ("getallusers", {}, {"stn": True}),
    ("disabledevice", {}, {}),
    ("enabledevice", {}, {}),
    ("getnewlog", {}, {"stn": True}),
    (
        "getalllog",
        {"from": "2018-11-1", "to": "2018-12-30"},
        {"stn": True, "from": "2018-11-01", "to": "2018-12-30"},
    ),
    ("getalllog", {}, {"stn": True}),
    ("cleanlog", {}, {}),
    ("cleanlogphoto", {}, {}),
    ("initsys", {}, {}),
    ("reboot", {}, {}),
    ("cleanadmin", {}, {}),
    ("settime", {"cloudtime": "2016-3-25 13:49:30"}, {"cloudtime": _TIME}),
    ("gettime", {}, {}),
    (
        "setdevinfo",
        {
            "deviceid": 1,
            "language": 18,
            "volume": 10,
            "screensaver": 255,
            "verifymode": 0,
            "sleep": True,
            "userfpnum": 10,
            "loghint": 1000,
            "reverifytime": 0,
            "disablemenu": 1,
            "use_logphoto": 0,
            "stranger_photo": 0,
            "server_verify": 1,
        },
        {
            "deviceid": 1,
            "language": 18,
            "volume": 10,
            "screensaver": 255,
            "verifymode": 0,
            "sleep": True,
            "userfpnum": 10,
            "loghint": 1000,
            "reverifytime": 0,
            "disablemenu": 1,
            "use_logphoto": 0,
            "stranger_photo": 0,
            "server_verify": 1,
        },
    ),
    ("setdevinfo", {"sleep": 1, "volume": 8}, {"volume": 8, "sleep": 1}),
    ("getdevinfo", {}, {}),
    ("opendoor", {}, {}),
    ("opendoor", {"doornum": 4}, {"doornum": 4}),
    (
        "setdevlock",
        {
            "opendelay": 5,
            "doorsensor": 2,
            "alarmdelay": 255,
            "threat": 3,
            "InputAlarm": 2,
            "antpass": 2,
            "interlock": 1,
            "mutiopen": 4,
            "tryalarm": 10,
            "tamper": 1,
            "wgformat": 1,
            "wgoutput": 2,
            "cardoutput": 1,
            "dayzone": [{"day": [{"section": "07:00~18:00"}, {"section": "00:00~00:00"}]}],
            "weekzone": [{"week": [{"day": 1}] * 7}],
            "lockgroup": [{"group": 129}],
            "nopentime": [{"day": 0}] * 7,
        },
        {
            "opendelay": 5,
            "doorsensor": 2,
            "alarmdelay": 255,
            "threat": 3,
            "InputAlarm": 2,
            "antpass": 2,
            "interlock": 1,
            "mutiopen": 4,
            "tryalarm": 10,
            "tamper": 1,
            "wgformat": 1,
            "wgoutput": 2,
            "cardoutput": 1,
            "dayzone": [{"day": [{"section": "07:00~18:00"}, {"section": "00:00~00:00"}]}],
            "weekzone": [{"week": [{"day": 1}] * 7}],
            "lockgroup": [{"group": 129}],
            "nopentime": [{"day": 0}] * 7,
        },
    ),
    ("setdevlock", {"inputalarm": 1}, {"InputAlarm": 1}),
    ("getdevlock", {}, {}),
    ("getuserlock", {"enrollid": 1}, {"enrollid": 1}),
    (
        "setuserlock",
        {
            "count": 2,
            "record": [
                {
                    "enrollid": 1,
                    "weekzone": 1,
                    "weekzone2": 1,
                    "weekzone3": 1,
                    "weekzone4": 1,
                    "group": 1,
                    "starttime": "2016-03-25 01:00:00",
                    "endtime": "2099-03-25 23:59:00",
                },
                {"enrollid": 3, "group": 1},
            ],
        },
        {
            "count": 2,
            "record": [
                {
                    "enrollid": 1,
                    "weekzone": 1,
                    "weekzone2": 1,
                    "weekzone3": 1,
                    "weekzone4": 1,
                    "group": 1,
                    "starttime": "2016-03-25 01:00:00",
                    "endtime": "2099-03-25 23:59:00",
                },
                {"enrollid": 3, "group": 1},
            ],
        },
    ),
    ("deleteuserlock", {"enrollid": 1}, {"enrollid": 1}),
    ("cleanuserlock", {}, {}),
    ("getquestionnaire", {}, {"stn": True}),
    (
        "setquestionnaire",
        {
            "title": "Lunch?",
            "radio": True,
            "items": ["yes", "no"],
            "schedules": ["11:00-14:00*1"],
            "usequestion": 1,
        },
        {
            "title": "Lunch?",
            "radio": True,
            "usequestion": 1,
            "items": ["yes", "no"],
            "schedules": ["11:00-14:00*1"],
        },
    ),
    ("getholiday", {}, {}),
    ("getholiday", {"index": 0, "stn": True}, {"index": 0, "stn": True}),
    (
        "setholiday",
        {"holidays": [{"name": "holiday1", "startday": "1-1", "endday": "01-01", "shift": 0}]},
        {"holidays": [{"name": "holiday1", "startday": "01-01", "endday": "01-01", "shift": 0}]},
    ),
    (
        "setholiday",
        {
            "index": 1,
            "stn": True,
            "startdate": "2018-09-19",
            "enddate": "2018-9-19",
            "name": "nation day",
            "count": 2,
            "accessid": [1, 2],
        },
        {
            "index": 1,
            "stn": True,
            "startdate": "2018-09-19",
            "enddate": "2018-09-19",
            "name": "nation day",
            "count": 2,
            "accessid": [1, 2],
        },
    ),
    ("deleteholiday", {"index": 3}, {"index": 3}),
    ("cleanholiday", {}, {}),
]


INVALID: list[tuple[str, dict[str, Any], str]] = [
    # unknown / extra / null parameters
    ("getuserinfo", {"enrollid": 1, "backupnun": 0}, "backupnun"),
    ("opendoor", {"doorno": 1}, "doorno"),
    ("opendoor", {"doornum": None}, "doornum"),
    ("cleanuser", {"all": True}, "all"),
    ("reboot", {"sn": "x"}, "sn"),
    # enrollid
    ("getuserinfo", {}, "enrollid"),
    ("getuserinfo", {"enrollid": 0}, "enrollid"),
    ("getuserinfo", {"enrollid": 1_000_000_000_000}, "enrollid"),
    ("getuserinfo", {"enrollid": "1"}, "enrollid"),
    ("getuserinfo", {"enrollid": 1.0}, "enrollid"),
    ("getuserinfo", {"enrollid": True}, "enrollid"),
    ("setuserprofile", {"enrollid": -1, "profile": "x"}, "enrollid"),
    # backupnum
    ("getuserinfo", {"enrollid": 1, "backupnum": 12}, "backupnum"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 13, "record": "x"}, "backupnum"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 28, "record": "x"}, "backupnum"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 51, "record": "x"}, "backupnum"),
    ("deleteuser", {"enrollid": 1, "backupnum": 14}, "backupnum"),
    ("deleteuser", {"enrollid": 1}, "backupnum"),
    # setuserinfo credentials
    ("setuserinfo", {"enrollid": 1, "record": "x"}, "backupnum"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 0}, "record"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 0, "record": 5}, "record"),
    (
        "setuserinfo",
        {"enrollid": 1, "backupnum": 50, "record": "data:image/jpeg;base64,"},
        "record",
    ),
    ("setuserinfo", {"enrollid": 1, "backupnum": 10, "record": 123456789}, "record"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 10, "record": "12a"}, "record"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 10, "record": -1}, "record"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 11, "record": 2**63}, "record"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 11, "record": -5}, "record"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 11, "record": "12 34"}, "record"),
    ("setuserinfo", {"enrollid": 1, "backupnum": 11, "record": True}, "record"),
    ("setuserinfo", {"enrollid": 1, "admin": 3}, "admin"),
    ("setuserinfo", {"enrollid": 1, "enable": 2}, "enable"),
    ("setuserinfo", {"enrollid": 1, "verifymode": 5}, "verifymode"),
    ("setuserinfo", {"enrollid": 1, "pwd": "123456789"}, "pwd"),
    ("setuserinfo", {"enrollid": 1, "card": 1.5}, "card"),
    ("setuserinfo", {"enrollid": 1, "birthday": "02-30"}, "birthday"),
    ("setuserinfo", {"enrollid": 1, "starttime": "2024-01-01T00:00:00"}, "starttime"),
    (
        "setuserinfo",
        {"enrollid": 1, "starttime": "2024-01-02 00:00:00", "endtime": "2024-01-01 00:00:00"},
        "endtime",
    ),
    ("setuserinfo", {"enrollid": 1, "name": 5}, "name"),
    ("setuserinfo", {"enrollid": 1, "name": "x" * 101}, "name"),
    # setusername
    ("setusername", {"record": []}, "record"),
    ("setusername", {"record": [{"enrollid": i, "name": "n"} for i in range(1, 52)]}, "record"),
    (
        "setusername",
        {"record": [{"enrollid": 1, "name": "a"}, {"enrollid": 0, "name": "b"}]},
        "record[1].enrollid",
    ),
    ("setusername", {"record": [{"enrollid": 1}]}, "record[0].name"),
    ("setusername", {"record": [{"enrollid": 1, "name": "a", "x": 1}]}, "record[0].x"),
    ("setusername", {"record": ["a"]}, "record[0]"),
    ("setusername", {"count": 2, "record": [{"enrollid": 1, "name": "a"}]}, "count"),
    ("setusername", {"record": {"enrollid": 1}}, "record"),
    # enableuser
    ("enableuser", {"enrollid": 1, "enflag": 2}, "enflag"),
    ("enableuser", {"enrollid": 1, "enflag": True}, "enflag"),
    ("enableuser", {"enrollid": 1}, "enflag"),
    # profile
    ("setuserprofile", {"enrollid": 1, "profile": "é" * 101}, "profile"),
    ("setuserprofile", {"enrollid": 1}, "profile"),
    # adduser
    ("adduser", {"enrollid": 1, "flag": 256}, "flag"),
    # paging stn
    ("getuserlist", {"stn": 1}, "stn"),
    ("getnewlog", {"stn": "true"}, "stn"),
    # getalllog dates
    ("getalllog", {"from": "2018-11-31"}, "from"),
    ("getalllog", {"to": "2018/12/30"}, "to"),
    ("getalllog", {"from": "2018-12-30", "to": "2018-11-1"}, "to"),
    ("getalllog", {"from": 20181101}, "from"),
    # settime
    ("settime", {}, "cloudtime"),
    ("settime", {"cloudtime": "2016-03-25T13:49:30Z"}, "cloudtime"),
    ("settime", {"time": _TIME}, "time"),
    # setdevinfo
    ("setdevinfo", {}, "params"),
    ("setdevinfo", {"volume": 11}, "volume"),
    ("setdevinfo", {"volume": -1}, "volume"),
    ("setdevinfo", {"screensaver": 256}, "screensaver"),
    ("setdevinfo", {"userfpnum": 0}, "userfpnum"),
    ("setdevinfo", {"userfpnum": 11}, "userfpnum"),
    ("setdevinfo", {"reverifytime": 256}, "reverifytime"),
    ("setdevinfo", {"language": 19}, "language"),
    ("setdevinfo", {"verifymode": 5}, "verifymode"),
    ("setdevinfo", {"sleep": 2}, "sleep"),
    ("setdevinfo", {"devinfo": {"volume": 1}}, "devinfo"),
    # opendoor
    ("opendoor", {"doornum": 0}, "doornum"),
    ("opendoor", {"doornum": 5}, "doornum"),
    ("opendoor", {"doornum": "1"}, "doornum"),
    # setdevlock
    ("setdevlock", {}, "params"),
    ("setdevlock", {"doorsensor": 3}, "doorsensor"),
    ("setdevlock", {"InputAlarm": 3}, "InputAlarm"),
    ("setdevlock", {"inputalarm": 3}, "inputalarm"),
    ("setdevlock", {"InputAlarm": 1, "inputalarm": 1}, "inputalarm"),
    ("setdevlock", {"tryalarm": 11}, "tryalarm"),
    (
        "setdevlock",
        {"dayzone": [{"day": [{"section": "7:00~18:00"}]}]},
        "dayzone[0].day[0].section",
    ),
    (
        "setdevlock",
        {"dayzone": [{"day": [{"section": "07:00~24:00"}]}]},
        "dayzone[0].day[0].section",
    ),
    ("setdevlock", {"dayzone": [{"day": [{"section": "07:00~08:00"}] * 6}]}, "dayzone[0].day"),
    ("setdevlock", {"dayzone": [{"day": []}]}, "dayzone[0].day"),
    ("setdevlock", {"dayzone": [{"day": [{"section": "07:00~08:00"}]}] * 9}, "dayzone"),
    ("setdevlock", {"weekzone": [{"week": [{"day": 1}] * 8}]}, "weekzone[0].week"),
    ("setdevlock", {"weekzone": [{"week": [{"day": 9}]}]}, "weekzone[0].week[0].day"),
    ("setdevlock", {"lockgroup": [{"group": 109}]}, "lockgroup[0].group"),
    ("setdevlock", {"lockgroup": [{"group": 0}]}, "lockgroup[0].group"),
    ("setdevlock", {"nopentime": [{"day": 1}] * 8}, "nopentime"),
    # user locks
    ("getuserlock", {}, "enrollid"),
    ("deleteuserlock", {"enrollid": 0}, "enrollid"),
    ("setuserlock", {"record": [{"group": 1}]}, "record[0].enrollid"),
    ("setuserlock", {"record": [{"enrollid": 1, "group": 10}]}, "record[0].group"),
    ("setuserlock", {"record": [{"enrollid": 1, "weekzone5": 1}]}, "record[0].weekzone5"),
    (
        "setuserlock",
        {"record": [{"enrollid": 1, "starttime": "2016-03-25"}]},
        "record[0].starttime",
    ),
    ("setuserlock", {"record": [{"enrollid": i} for i in range(1, 52)]}, "record"),
    # questionnaire / holidays
    ("setquestionnaire", {}, "params"),
    ("setquestionnaire", {"items": ["x"] * 17}, "items"),
    ("setquestionnaire", {"schedules": ["11:00~14:00"]}, "schedules[0]"),
    ("setquestionnaire", {"radio": 1}, "radio"),
    ("setholiday", {"holidays": [{"startday": "01-01"}]}, "holidays[0].endday"),
    ("setholiday", {"holidays": [{"startday": "01-01", "endday": "1-32"}]}, "holidays[0].endday"),
    ("setholiday", {"holidays": [{"startday": "01-01", "endday": "01-02"}] * 31}, "holidays"),
    ("setholiday", {"holidays": [], "index": 1}, "index"),
    ("setholiday", {"name": "x"}, "index"),
    ("setholiday", {"index": 1, "accessid": list(range(1, 202))}, "accessid"),
    ("setholiday", {"index": 1, "startdate": "2018-09-20", "enddate": "2018-09-19"}, "enddate"),
    ("deleteholiday", {}, "index"),
]


class RegistryTests(SynchronousTestCase):
    def test_unknownCommand(self) -> None:
        with self.assertRaises(ProtocolError) as info:
            buildCommand("getuserlst", {})
        assert info.exception.field == "cmd"

    def test_namesAreExact(self) -> None:
        with self.assertRaises(ProtocolError):
            buildCommand("GetUserList", {})

    def test_paramsMustBeAMapping(self) -> None:
        with self.assertRaises(ProtocolError) as info:
            buildCommand("gettime", [])  # type: ignore[arg-type]
        assert (info.exception.cmd, info.exception.field) == ("gettime", "params")

    def test_nonStringKey(self) -> None:
        with self.assertRaises(ProtocolError) as info:
            buildCommand("gettime", {1: 2})  # type: ignore[dict-item]
        assert info.exception.field == "params"

    def test_specsAreConsistent(self) -> None:
        for name, spec in COMMANDS.items():
            assert isinstance(spec, CommandSpec)
            assert spec.name == name
            assert spec.summary

    def test_expectsReply(self) -> None:
        assert [n for n, s in COMMANDS.items() if not s.expectsReply] == ["reboot"]

    def test_paged(self) -> None:
        assert {n for n, s in COMMANDS.items() if s.paged} == {
            "getuserlist",
            "getnewlog",
            "getalllog",
            "getallusers",
        }

    def test_destructive(self) -> None:
        for name in ["cleanuser", "cleanlog", "initsys", "cleanadmin", "reboot", "cleanuserlock"]:
            assert COMMANDS[name].isDestructive({})

    def test_opendoorDestructiveOnlyWithoutDoornum(self) -> None:
        spec = COMMANDS["opendoor"]
        assert spec.isDestructive({})
        assert not spec.isDestructive({"doornum": 1})

    def test_notDestructive(self) -> None:
        for name in ["getuserinfo", "setuserinfo", "deleteuser", "settime"]:
            assert not COMMANDS[name].isDestructive({"enrollid": 1, "backupnum": 13})

    def test_paramsListed(self) -> None:
        assert COMMANDS["getalllog"].params == ("stn", "from", "to")
        assert "InputAlarm" in COMMANDS["setdevlock"].params

    def test_inputDictNotMutated(self) -> None:
        params = {"enrollid": 1, "backupnum": 50, "record": "data:image/jpeg;base64,AA"}
        buildCommand("setuserinfo", params)
        assert params["record"] == "data:image/jpeg;base64,AA"


class PageRequestTests(SynchronousTestCase):
    def test_firstPage(self) -> None:
        assert pageRequest("getalllog", True, {"from": "2018-11-1"}) == {
            "cmd": "getalllog",
            "stn": True,
            "from": "2018-11-01",
        }

    def test_firstPageWithoutParams(self) -> None:
        assert pageRequest("getuserlist", True) == {"cmd": "getuserlist", "stn": True}

    def test_nextPage(self) -> None:
        assert pageRequest("getalllog", False, {"from": "2018-11-1"}) == {
            "cmd": "getalllog",
            "stn": False,
        }

    def test_firstPageForcesStn(self) -> None:
        assert pageRequest("getnewlog", True, {"stn": False})["stn"] is True

    def test_firstPageValidates(self) -> None:
        with self.assertRaises(ProtocolError) as info:
            pageRequest("getalllog", True, {"from": "x"})
        assert info.exception.field == "from"

    def test_notPaged(self) -> None:
        with self.assertRaises(ProtocolError) as info:
            pageRequest("gettime", True)
        assert (info.exception.cmd, info.exception.field) == ("gettime", "cmd")

    def test_unknown(self) -> None:
        with self.assertRaises(ProtocolError):
            pageRequest("nope", False)


class RepliesTests(SynchronousTestCase):
    def test_regAccepted(self) -> None:
        assert regAccepted(_TIME) == {"ret": "reg", "result": True, "cloudtime": _TIME}
        assert regAccepted(_TIME, nosenduser=False, extra={"nosendlog": False}) == {
            "ret": "reg",
            "result": True,
            "cloudtime": _TIME,
            "nosenduser": False,
            "nosendlog": False,
        }

    def test_regAcceptedExtraCannotOverride(self) -> None:
        with self.assertRaises(ValueError):
            regAccepted(_TIME, extra={"result": False})

    def test_regRefused(self) -> None:
        assert regRefused("did not reg") == {"ret": "reg", "result": False, "reason": "did not reg"}

    def test_sendlogAck(self) -> None:
        assert sendlogAck(2, 10, _TIME) == {
            "ret": "sendlog",
            "result": True,
            "count": 2,
            "logindex": 10,
            "cloudtime": _TIME,
        }

    def test_sendlogAckWithoutEcho(self) -> None:
        assert sendlogAck(None, None, _TIME, access=0, message="denied") == {
            "ret": "sendlog",
            "result": True,
            "cloudtime": _TIME,
            "access": 0,
            "message": "denied",
        }

    def test_senduserAck(self) -> None:
        assert senduserAck(_TIME) == {"ret": "senduser", "result": True, "cloudtime": _TIME}

    def test_sendqrcodeReply(self) -> None:
        assert sendqrcodeReply(1, enrollid=10, username="tom", message="ok", voice="ok") == {
            "ret": "sendqrcode",
            "result": True,
            "access": 1,
            "enrollid": 10,
            "username": "tom",
            "message": "ok",
            "voice": "ok",
        }
        assert sendqrcodeReply(0) == {"ret": "sendqrcode", "result": True, "access": 0}

    def test_failure(self) -> None:
        assert failure("sendlog") == {"ret": "sendlog", "result": False, "reason": 1}
        assert failure("x", reason=5)["reason"] == 5

    def test_success(self) -> None:
        assert success("checklive", cloudtime=_TIME) == {
            "ret": "checklive",
            "result": True,
            "cloudtime": _TIME,
        }
        with self.assertRaises(ValueError):
            success("x", ret="y")

    def test_encodeFrame(self) -> None:
        frame = encodeFrame({"ret": "senduser", "name": "Zoë 张"})
        assert frame == '{"ret":"senduser","name":"Zoë 张"}'.encode()

    def test_encodeFrameRejectsNaN(self) -> None:
        with self.assertRaises(ValueError):
            encodeFrame({"temp": float("nan")})

    def test_encodeFrameRejectsLoneSurrogate(self) -> None:
        with self.assertRaises(ValueError):
            encodeFrame({"name": "\udc00"})


class CommandTests(SynchronousTestCase):
    def test_valid(self) -> None:
        for name, params, expected in VALID:
            frame = buildCommand(name, params)
            assert frame == {"cmd": name, **expected}
            assert list(frame)[0] == "cmd"
            json.loads(encodeFrame(frame))

    def test_everyCommandHasAValidExample(self) -> None:
        assert {name for name, _, _ in VALID} == set(COMMANDS)

    def test_section6Commands(self) -> None:
        required = {
            "getuserlist", "getuserinfo", "setuserinfo", "deleteuser", "getusername",
            "setusername", "enableuser", "cleanuser", "setuserprofile", "getuserprofile",
            "adduser", "getallusers", "disabledevice", "enabledevice", "getnewlog", "getalllog",
            "cleanlog", "initsys", "reboot", "cleanadmin", "settime", "gettime", "setdevinfo",
            "getdevinfo", "opendoor", "setdevlock", "getdevlock", "getuserlock", "setuserlock",
            "deleteuserlock", "cleanuserlock", "getquestionnaire", "setquestionnaire",
            "getholiday", "setholiday",
        }  # fmt: skip
        assert required <= set(COMMANDS)

    def test_invalid(self) -> None:
        for name, params, field in INVALID:
            assert _invalid(name, params).field == field
