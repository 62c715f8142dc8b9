"""Tests for L{tm20.protocol.parser}."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests import captures
from tm20.protocol.messages import (
    CommandReply,
    LogRecord,
    ProtocolError,
    Register,
    SendLog,
    SendQrCode,
    SendUser,
    SendUserRejected,
    TerminalCommand,
    UserRecord,
)
from tm20.protocol.parser import (
    _clean,
    _Context,
    _logRecord,
    _plainLogRecord,
    logRecordsOf,
    parseFrame,
    parseLogRecord,
    parseUserRecord,
    stripDataPrefix,
    userRecordsOf,
)


def _frame(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _error(data: bytes | str, **kwargs: Any) -> ProtocolError:
    try:
        parseFrame(data, **kwargs)
    except ProtocolError as error:
        return error
    raise AssertionError(f"{data!r}: no ProtocolError")


class CapturesTests(SynchronousTestCase):
    """The real TH900_click V5.0 frames parse unchanged."""

    def setUp(self) -> None:
        self.frames = captures.frames()

    def test_reg(self) -> None:
        frames = self.frames
        raw = frames[0]
        message = parseFrame(_frame(raw))
        assert isinstance(message, Register)
        assert message.sn == "ZYTI25116685"
        assert message.cpusn is None
        assert message.devinfo == raw["devinfo"]
        assert message.devinfo["firmware"] == "TH900_click V5.0"

    def test_getuserinfoRepliesKeepTemplatesByteForByte(self) -> None:
        frames = self.frames
        for raw in frames[1:]:
            reply = parseFrame(_frame(raw))
            assert isinstance(reply, CommandReply)
            assert reply.ret == "getuserinfo"
            assert reply.sn == "ZYTI25116685"
            assert reply.result is True
            assert reply.fields["record"] == raw["record"]
            (user,) = userRecordsOf(reply)
            assert user == UserRecord(
                enrollid=raw["enrollid"],
                name=raw["name"],
                backupnum=0,
                admin=0,
                record=raw["record"],
            )

    def test_rawLineBytesAlsoParse(self) -> None:
        # The frames as the capture stores them (with spaces after separators).
        lines = captures.TH900.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 3
        for line in lines:
            text = line.split('"frame": ', 1)[1][:-1]
            parseFrame(text.encode("utf-8"))


class RegisterTests(SynchronousTestCase):
    def test_docExample(self) -> None:
        message = parseFrame(
            b'{"cmd":"reg","sn":"ZX0006827500","cpusn":"123456789",'
            b'"devinfo":{"modelname":"tfs30","usersize":3000,"time":"2016-03-25 13:49:30",'
            b'"newthing":[1,2]}}'
        )
        assert message == Register(
            sn="ZX0006827500",
            cpusn="123456789",
            devinfo={
                "modelname": "tfs30",
                "usersize": 3000,
                "time": "2016-03-25 13:49:30",
                "newthing": [1, 2],
            },
        )

    def test_snTrimmedAndDevinfoMissing(self) -> None:
        message = parseFrame(b'{"cmd":" REG ","sn":"  ZX1  "}')
        assert message == Register(sn="ZX1", cpusn=None, devinfo={})

    def test_snRequired(self) -> None:
        for sn in ['""', '"   "', "null"]:
            error = _error(f'{{"cmd":"reg","sn":{sn}}}')
            assert (error.cmd, error.field) == ("reg", "sn")

    def test_snMissing(self) -> None:
        error = _error(b'{"cmd":"reg"}')
        assert (error.cmd, error.field) == ("reg", "sn")

    def test_devinfoNotAnObject(self) -> None:
        error = _error(b'{"cmd":"reg","sn":"x","devinfo":[1]}')
        assert (error.cmd, error.field) == ("reg", "devinfo")

    def test_snAsNumber(self) -> None:
        message = parseFrame(b'{"cmd":"reg","sn":12345}')
        assert isinstance(message, Register)
        assert message.sn == "12345"


class SendLogTests(SynchronousTestCase):
    def test_docExample(self) -> None:
        message = parseFrame(
            _frame(
                {
                    "cmd": "sendlog",
                    "sn": "zx12345678",
                    "count": 2,
                    "logindex": 10,
                    "record": [
                        {
                            "enrollid": 1,
                            "time": "2016-03-25 13:49:30",
                            "mode": 0,
                            "inout": 0,
                            "event": 0,
                            "temp": 36.5,
                            "verifymode": 13,
                            "image": "QUJD",
                        },
                        {"enrollid": 0, "time": "2016-03-25 13:50:00", "inout": 1, "event": 2},
                    ],
                }
            )
        )
        assert message == SendLog(
            sn="zx12345678",
            count=2,
            logindex=10,
            records=(
                LogRecord(
                    enrollid=1,
                    time="2016-03-25 13:49:30",
                    temp=36.5,
                    verifymode=13,
                    image="QUJD",
                ),
                LogRecord(enrollid=0, time="2016-03-25 13:50:00", inout=1, event=2),
            ),
        )
        assert isinstance(message, SendLog)
        assert message.records[1].isDoorEvent

    def test_quirks(self) -> None:
        """Padded keys, string ints, unpadded time, attmode, data: prefix, trailing comma."""
        message = parseFrame(
            b'{"cmd":"sendlog","count ":"1",'
            b'"record":[{"enrollid ":"101072","time ":"2018-11-1 8:5:3","attmode":"8",'
            b'"temp":"365","image":"data:image/jpeg;base64,/9j/AA==","name":"A","aliasid":"7",'
            b'"note":{"location":"1,2"}},]}'
        )
        assert isinstance(message, SendLog)
        assert message.sn is None
        assert message.count == 1
        assert message.logindex is None
        (record,) = message.records
        assert record.enrollid == 101072
        assert record.time == "2018-11-01 08:05:03"
        assert record.mode == 8
        assert record.temp == 365.0
        assert record.image == "/9j/AA=="
        assert record.extra == {"name": "A", "aliasid": "7", "note": {"location": "1,2"}}

    def test_verifyAlias(self) -> None:
        message = parseFrame(
            b'{"cmd":"sendlog","record":[{"enrollid":1,"time":"2020-01-01 00:00:00","verify":3}]}'
        )
        assert isinstance(message, SendLog)
        assert message.records[0].mode == 3

    def test_modeWinsOverAlternatives(self) -> None:
        message = parseFrame(
            b'{"cmd":"sendlog","record":[{"enrollid":1,"time":"2020-01-01 00:00:00",'
            b'"mode":1,"attmode":2}]}'
        )
        assert isinstance(message, SendLog)
        assert message.records[0].mode == 1
        assert message.records[0].extra == {"attmode": 2}

    def test_emptyBatchWithoutCount(self) -> None:
        """An empty batch that claims nothing (count 0 or none) is a valid, empty batch."""
        assert parseFrame(b'{"cmd":"sendlog","record":[]}') == SendLog(
            sn=None, count=None, logindex=None, records=()
        )
        assert parseFrame(b'{"cmd":"sendlog","count":0,"record":[]}') == SendLog(
            sn=None, count=0, logindex=None, records=()
        )

    def test_batchWithoutRecordsRefused(self) -> None:
        """
        A batch whose records are missing, misnamed, null, not a list, or empty while count
        says otherwise is refused as a whole (it used to be acknowledged, storing nothing).
        """
        for frame, problem in [
            ('{"cmd":"sendlog","count":0}', "is required"),
            ('{"cmd":"sendlog","count":1,"records":[{}]}', "is required (found 'records' instead)"),
            ('{"cmd":"sendlog","count":1,"Record":[{}]}', "is required (found 'Record' instead)"),
            ('{"cmd":"sendlog","count":1,"data":[{}]}', "is required (found 'data' instead)"),
            ('{"cmd":"sendlog","count":1,"record":null}', "must be an array, got null"),
            ('{"cmd":"sendlog","count":1,"record":{}}', "must be an array, got an object"),
            (
                '{"cmd":"sendlog","count":1,"record":"x"}',
                "must be an array, got a non-numeric string",
            ),
            ('{"cmd":"sendlog","count":2,"record":[]}', "is empty but count is 2"),
            ('{"cmd":"sendlog","count":"3","record":[]}', "is empty but count is 3"),
        ]:
            error = _error(frame)
            assert (error.cmd, error.field, error.problem) == ("sendlog", "record", problem)

    def test_invalidRecordQuarantined(self) -> None:
        """A record that can never be stored is set aside, verbatim, without refusing the rest."""
        for record, field in [
            ('{"time":"2020-01-01 00:00:00"}', "record[1].enrollid"),
            ('{"enrollid":1}', "record[1].time"),
            ('{"enrollid":1,"time":"2020-01-01T00:00:00"}', "record[1].time"),
            ('{"enrollid":1,"time":"2020-02-30 00:00:00"}', "record[1].time"),
            ('{"enrollid":1.5,"time":"2020-01-01 00:00:00"}', "record[1].enrollid"),
            ('{"enrollid":true,"time":"2020-01-01 00:00:00"}', "record[1].enrollid"),
            ('{"enrollid":-1,"time":"2020-01-01 00:00:00"}', "record[1].enrollid"),
            ('{"enrollid":"abc","time":"2020-01-01 00:00:00"}', "record[1].enrollid"),
            ('{"enrollid":1,"time":"2020-01-01 00:00:00","mode":1.0}', "record[1].mode"),
            ('{"enrollid":1,"time":"2020-01-01 00:00:00","inout":false}', "record[1].inout"),
            ('{"enrollid":1,"time":"2020-01-01 00:00:00","temp":true}', "record[1].temp"),
            ('{"enrollid":1,"time":"2020-01-01 00:00:00","temp":"hot"}', "record[1].temp"),
            ('{"enrollid":1,"time":"2020-01-01 00:00:00","image":[1]}', "record[1].image"),
            ("[1]", "record[1]"),
        ]:
            good = '{"enrollid":1,"time":"2020-01-01 00:00:00"}'
            message = parseFrame(
                f'{{"cmd":"sendlog","sn":"x","record":[{good}, {record} ,{good}]}}'
            )
            assert isinstance(message, SendLog)
            assert message.records == (LogRecord(enrollid=1, time="2020-01-01 00:00:00"),) * 2
            (rejected,) = message.rejected
            assert (rejected.raw, rejected.field) == (record, field)
            assert rejected.problem
            assert rejected.reason == f"{field}: {rejected.problem}"

    def test_recordNotAList(self) -> None:
        error = _error(b'{"cmd":"sendlog","record":{"enrollid":1}}')
        assert (error.cmd, error.field) == ("sendlog", "record")

    def test_countFloat(self) -> None:
        error = _error(b'{"cmd":"sendlog","count":1.0,"record":[]}')
        assert (error.cmd, error.field) == ("sendlog", "count")


class CleaningFastPathsTests(SynchronousTestCase):
    """Frames with plain keys are cleaned in place; the quirks still go the careful way."""

    def test_nestedPrefixesStrippedAndKeysTrimmed(self) -> None:
        frame = _frame(
            {
                "cmd": "custom",
                "sn": "T1",
                "outer": {
                    "image": "data:image/jpeg;base64,QUJD",
                    "list": [{" record ": "data:image/png;base64,REVG"}, [1, "x", None, True]],
                    "plain": {"a": 1.5, "b": [{"image": "AAAA"}]},
                },
            }
        )
        message = parseFrame(frame)
        assert isinstance(message, TerminalCommand)
        assert message.fields == {
            "outer": {
                "image": "QUJD",
                "list": [{"record": "REVG"}, [1, "x", None, True]],
                "plain": {"a": 1.5, "b": [{"image": "AAAA"}]},
            }
        }

    def test_errorPathsStillNamed(self) -> None:
        for body, field in [
            ('{"cmd":"x","a":{"b":[1,{"c":NaN}]}}', "a.b[1].c"),
            ('{"cmd":"x","a":[[1e999]]}', "a[0][0]"),
            ('{"cmd":"x","a":{"b":"\\ud800"}}', "a.b"),
            ('{"cmd":"x","a":{" b ":{"c":"\\ud800"}}}', "a.b.c"),
            ('{"cmd":"x","a":[1,' + "9" * 50 + "]}", "a[1]"),
        ]:
            assert _error(body.encode()).field == field

    def test_sendlogErrorPathNamesTheRecord(self) -> None:
        records = [{"enrollid": 1, "time": "2024-01-01 00:00:00"}] * 3 + [
            {"enrollid": 1, "time": "2024-01-01 00:00:00", "inout": "in"}
        ]
        message = parseFrame(_frame({"cmd": "sendlog", "sn": "T1", "record": records}))
        assert isinstance(message, SendLog)
        assert [r.field for r in message.rejected] == ["record[3].inout"]

    def test_secondByteOrderMark(self) -> None:
        error = _error("\ufeff\ufeff{}".encode())
        assert "BOM" in str(error)


_RECORD_VALUES = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([2**40, 2**63, -(2**63) - 1, True, False, None, 1.0, "7", "", "x"]),
    st.sampled_from(
        [
            "2026-01-02 03:04:05",
            "2026-02-28 23:59:59",
            "2026-02-29 10:00:00",  # no such day: canonical in form only
            "2026-1-2 3:4:5",  # padded by the general path
            " 2026-01-02 03:04:05",
            "2026-13-01 00:00:00",
            "2026-01-02T03:04:05",
        ]
    ),
)
_RECORD_KEYS = st.sampled_from(
    ["enrollid", "time", "mode", "inout", "event", "verifymode", "temp", "attmode", " mode", "name"]
)


class PlainLogRecordTests(SynchronousTestCase):
    """
    The usual record is read at once (L{_plainLogRecord}); whatever it reads is what the
    general way (L{_clean} then L{_logRecord}) reads, and it leaves everything else to it.
    """

    @settings(max_examples=1500, deadline=None)
    @given(raw=st.dictionaries(_RECORD_KEYS, _RECORD_VALUES, max_size=7))
    def test_sameRecordAsTheGeneralWay(self, raw: dict[str, Any]) -> None:
        fast = _plainLogRecord(dict(raw))
        if fast is None:
            return
        ctx = _Context()
        general = _logRecord(ctx, _clean(ctx, dict(raw), ("record", 0), 2), ("record", 0))
        self.assertEqual(fast, general)
        self.assertEqual(type(fast.extra), type(general.extra))

    def test_theUsualRecords(self) -> None:
        for raw in [
            {"enrollid": 1, "time": "2026-01-02 03:04:05", "mode": 1, "inout": 0, "event": 0},
            {"enrollid": 0, "time": "2026-01-02 03:04:05", "event": 5},
            {"enrollid": 7, "time": "2026-01-02 03:04:05", "verifymode": 3},
        ]:
            ctx = _Context()
            general = _logRecord(ctx, _clean(ctx, dict(raw), ("record", 0), 2), ("record", 0))
            self.assertEqual(_plainLogRecord(raw), general)

    def test_othersGoTheGeneralWay(self) -> None:
        for raw in [
            {"enrollid": 1, "time": "2026-01-02 03:04:05", "name": "A"},
            {"enrollid": 1, "time": "2026-1-2 03:04:05"},
            {"enrollid": 1, "time": "2026-01-02 03:04:05", "mode": True},
            {"enrollid": 1, "time": "2026-01-02 03:04:05", "mode": None},
            {"enrollid": "1", "time": "2026-01-02 03:04:05"},
            {"enrollid": -1, "time": "2026-01-02 03:04:05"},
            {"enrollid": 2**63, "time": "2026-01-02 03:04:05"},
            {"time": "2026-01-02 03:04:05"},
        ]:
            self.assertIsNone(_plainLogRecord(raw), raw)

    def test_recordsDeeperThanTheLimitStillRefused(self) -> None:
        """
        Records are objects at depth 3: under C{maxDepth=2} a frame of plain ones is refused,
        as before they were read at once; under 3 they are read.
        """
        record = {"enrollid": 1, "time": "2026-01-02 03:04:05", "mode": 1}
        frame = _frame({"cmd": "sendlog", "sn": "T1", "record": [record, record]})
        error = _error(frame, maxDepth=2)
        self.assertIn("nesting deeper than 2", str(error))
        self.assertEqual(error.cmd, "sendlog")
        message = parseFrame(frame, maxDepth=3)
        assert isinstance(message, SendLog)
        self.assertEqual(len(message.records), 2)


class SendUserTests(SynchronousTestCase):
    def test_fingerprint(self) -> None:
        message = parseFrame(
            b'{"cmd":"senduser","sn":"zx1","enrollid":1,"name":"chingzou","backupnum":0,'
            b'"admin":0,"record":"ab(12)cd"}'
        )
        assert message == SendUser(
            sn="zx1", enrollid=1, name="chingzou", backupnum=0, admin=0, record="ab(12)cd"
        )

    def test_cardAndPasswordKeepTheirJsonType(self) -> None:
        card = parseFrame(b'{"cmd":"senduser","enrollid":1,"backupnum":11,"record":2352253}')
        pwd = parseFrame(b'{"cmd":"senduser","enrollid":1,"backupnum":10,"record":"0012"}')
        assert isinstance(card, SendUser) and isinstance(pwd, SendUser)
        assert card.record == 2352253
        assert pwd.record == "0012"

    def test_topDataPhotoWithoutBackupnum(self) -> None:
        message = parseFrame(
            b'{"cmd":"senduser","enrollid":"7","name":"J","record":"data:image/jpeg;base64,/9j/"}'
        )
        assert isinstance(message, SendUser)
        assert (message.enrollid, message.backupnum, message.admin) == (7, None, 0)
        assert message.record == "/9j/"

    def test_extraAndStringAdmin(self) -> None:
        message = parseFrame(
            b'{"cmd":"senduser","enrollid":1,"admin":"1","fpflag":1,"enable":1,"name":12}'
        )
        assert isinstance(message, SendUser)
        assert message.admin == 1
        assert message.name == "12"
        assert message.extra == {"fpflag": 1, "enable": 1}

    def test_invalidQuarantined(self) -> None:
        """The frame is the record: kept verbatim for the quarantine, never refused."""
        for body, field in [
            ('"name":"x"', "enrollid"),
            ('"enrollid":1,"record":1.5', "record"),
            ('"enrollid":1,"record":true', "record"),
            ('"enrollid":1,"record":{}', "record"),
            ('"enrollid":1,"admin":true', "admin"),
            ('"enrollid":1,"backupnum":"x"', "backupnum"),
            ('"enrollid":1,"name":[]', "name"),
        ]:
            frame = f'{{"cmd":"senduser", "sn":"T1",{body}}}'
            message = parseFrame(frame)
            assert isinstance(message, SendUserRejected)
            assert (message.cmd, message.sn) == ("senduser", "T1")
            assert (message.rejected.raw, message.rejected.field) == (frame, field)

    def test_badSnStillRefused(self) -> None:
        error = _error(b'{"cmd":"senduser","sn":{},"enrollid":1}')
        assert (error.cmd, error.field) == ("senduser", "sn")


class SendQrCodeTests(SynchronousTestCase):
    def test_docExample(self) -> None:
        message = parseFrame(b'{"cmd":"sendqrcode","sn":"AI07F123456","record":"123456"}')
        assert message == SendQrCode(sn="AI07F123456", record="123456")

    def test_numericRecord(self) -> None:
        message = parseFrame(b'{"cmd":"sendqrcode","record":123456}')
        assert isinstance(message, SendQrCode)
        assert message.record == "123456"

    def test_recordRequired(self) -> None:
        error = _error(b'{"cmd":"sendqrcode","sn":"x"}')
        assert (error.cmd, error.field) == ("sendqrcode", "record")


class TerminalCommandTests(SynchronousTestCase):
    def test_unknownCommandPassesFieldsThrough(self) -> None:
        message = parseFrame(
            b'{"cmd":" SendGPS ","sn":"x","satellites":5,"location ":"1,2","n":{"a ":1}}'
        )
        assert message == TerminalCommand(
            cmd="sendgps", sn="x", fields={"satellites": 5, "location": "1,2", "n": {"a": 1}}
        )

    def test_cmdWinsOverRet(self) -> None:
        message = parseFrame(b'{"cmd":"checklive","ret":"x"}')
        assert isinstance(message, TerminalCommand)
        assert message.fields == {"ret": "x"}


class RepliesTests(SynchronousTestCase):
    def test_gettimeWithoutResult(self) -> None:
        reply = parseFrame(b'{"ret":"gettime","sn":"S","time":"2022-11-09 19:31:49"}')
        assert reply == CommandReply(
            ret="gettime", sn="S", result=True, fields={"time": "2022-11-09 19:31:49"}
        )

    def test_reasonWithoutResultIsAFailure(self) -> None:
        reply = parseFrame(b'{"ret":"getuserinfo","reason":1}')
        assert isinstance(reply, CommandReply)
        assert (reply.result, reply.reason) == (False, 1)

    def test_topDataMsg(self) -> None:
        reply = parseFrame(b'{"ret":"deleteuser","result":false,"msg":"have no data"}')
        assert reply == CommandReply(
            ret="deleteuser", sn=None, result=False, reason=None, fields={"msg": "have no data"}
        )

    def test_docTypos(self) -> None:
        reply = parseFrame(
            b'{"ret":" getuserinfo ","result":true,"enrollid ":1,"record ":"x","time ":"t",}'
        )
        assert isinstance(reply, CommandReply)
        assert reply.ret == "getuserinfo"
        assert reply.fields == {"enrollid": 1, "record": "x", "time": "t"}

    def test_lenientResult(self) -> None:
        for raw, expected in [("1", True), ("0", False), ('"true"', True), ('"False"', False)]:
            reply = parseFrame(f'{{"ret":"settime","result":{raw}}}')
            assert isinstance(reply, CommandReply)
            assert reply.result is expected

    def test_badResult(self) -> None:
        error = _error(b'{"ret":"settime","result":"maybe"}')
        assert (error.cmd, error.ret, error.field) == (None, "settime", "result")

    def test_pageRecordsStayRawButCanBeTyped(self) -> None:
        reply = parseFrame(
            b'{"ret":"getnewlog","result":true,"count":1,"from":0,"to":1,'
            b'"record":[{"enrollid":1,"time":"2026-4-30 9:0:0","mode":1,"inout":0,"event":0}]}'
        )
        assert isinstance(reply, CommandReply)
        assert reply.fields["record"][0]["time"] == "2026-4-30 9:0:0"
        assert logRecordsOf(reply) == (LogRecord(enrollid=1, time="2026-04-30 09:00:00", mode=1),)

    def test_userlistStringAdmin(self) -> None:
        reply = parseFrame(
            b'{"ret":"getuserlist","result":true,"count":2,"from":0,"to":2,'
            b'"record":[{"enrollid":1,"admin":"0","backupnum":0},'
            b'{"enrollid":2,"admin":"1","backupnum":11}]}'
        )
        assert isinstance(reply, CommandReply)
        assert userRecordsOf(reply) == (
            UserRecord(enrollid=1, admin=0, backupnum=0),
            UserRecord(enrollid=2, admin=1, backupnum=11),
        )

    def test_getallusersReplyIsOneRecord(self) -> None:
        reply = parseFrame(
            b'{"ret":"getallusers","result":true,"count":3,"index":0,"enrollid":5,'
            b'"name":"n","backupnum":11,"admin":0,"record":123}'
        )
        assert isinstance(reply, CommandReply)
        assert userRecordsOf(reply) == (
            UserRecord(enrollid=5, name="n", backupnum=11, admin=0, record=123),
        )

    def test_userRecordsOfEmpty(self) -> None:
        reply = parseFrame(b'{"ret":"getuserinfo","result":false,"reason":1}')
        assert isinstance(reply, CommandReply)
        assert userRecordsOf(reply) == ()

    def test_logRecordsOfInvalid(self) -> None:
        reply = parseFrame(b'{"ret":"getalllog","result":true,"record":[{"enrollid":1}]}')
        assert isinstance(reply, CommandReply)
        with self.assertRaises(ProtocolError) as info:
            logRecordsOf(reply)
        assert (info.exception.ret, info.exception.field) == ("getalllog", "record[0].time")

    def test_logRecordsOfNotAList(self) -> None:
        reply = parseFrame(b'{"ret":"getalllog","result":true,"record":"x"}')
        assert isinstance(reply, CommandReply)
        with self.assertRaises(ProtocolError) as info:
            logRecordsOf(reply)
        assert info.exception.field == "record"

    def test_photoRecordPrefixStripped(self) -> None:
        reply = parseFrame(
            b'{"ret":"getuserinfo","result":true,"enrollid":1,"backupnum":50,'
            b'"record":"data:image/png;base64,iVBOR"}'
        )
        assert isinstance(reply, CommandReply)
        assert reply.fields["record"] == "iVBOR"


class PublicHelpersTests(SynchronousTestCase):
    def test_parseLogRecord(self) -> None:
        assert parseLogRecord({"enrollid": 3, "time": "2020-1-2 3:4:5"}) == LogRecord(
            enrollid=3, time="2020-01-02 03:04:05"
        )
        with self.assertRaises(ProtocolError) as info:
            parseLogRecord({"enrollid": 3}, "record[7]")
        assert info.exception.field == "record[7].time"

    def test_parseUserRecord(self) -> None:
        assert parseUserRecord({"enrollid": "4", "record": 99}) == UserRecord(enrollid=4, record=99)

    def test_stripDataPrefix(self) -> None:
        for value, expected in [
            ("data:image/jpeg;base64,AAA", "AAA"),
            ("data:image/jpeg;charset=x;base64,AAA", "AAA"),
            ("AAA", "AAA"),
            ("data:text/plain,hello", "data:text/plain,hello"),
            ("c5236a01eb(12)ff", "c5236a01eb(12)ff"),
        ]:
            assert stripDataPrefix(value) == expected


class RejectedTests(SynchronousTestCase):
    def test_invalidUtf8(self) -> None:
        error = _error(b'{"cmd":"reg","sn":"\xff"}')
        assert "UTF-8" in error.problem

    def test_bomAccepted(self) -> None:
        assert isinstance(parseFrame('\ufeff{"cmd":"x"}'.encode()), TerminalCommand)

    def test_notAnObject(self) -> None:
        for frame in [b"[]", b"1", b'"cmd"', b"null", b"true"]:
            error = _error(frame)
            assert error.cmd is None

    def test_neitherCmdNorRet(self) -> None:
        error = _error(b'{"sn":"x"}')
        assert error.problem == "neither cmd nor ret"

    def test_badName(self) -> None:
        for frame, field in [
            (b'{"cmd":1}', "cmd"),
            (b'{"cmd":"  "}', "cmd"),
            (b'{"ret":null}', "ret"),
        ]:
            error = _error(frame)
            assert (error.cmd, error.field) == (None, field)

    def test_loneSurrogateCmd(self) -> None:
        error = _error(b'{"cmd":"\\ud800"}')
        assert error.field == "cmd"

    def test_loneSurrogateValue(self) -> None:
        error = _error(b'{"cmd":"sendqrcode","record":"\\udc00"}')
        assert (error.cmd, error.field) == ("sendqrcode", "record")
        message = parseFrame(b'{"cmd":"senduser","enrollid":1,"name":"\\udc00"}')
        assert isinstance(message, SendUserRejected)
        assert message.rejected.field == "name"

    def test_invalidJsonStillNamesTheCommand(self) -> None:
        error = _error(b'{"cmd":"sendlog","sn":"x","record":[{"enrollid":1,}')
        assert error.cmd == "sendlog"
        assert error.problem.startswith("invalid JSON")

    def test_invalidJsonNestedCmdNotTaken(self) -> None:
        error = _error(b'{"x":{"cmd":"inner"}, broken')
        assert error.cmd is None

    def test_trailingCommaInsideStringUntouched(self) -> None:
        message = parseFrame(b'{"cmd":"x","a":",]","b":[1,2,],}')
        assert message == TerminalCommand(cmd="x", sn=None, fields={"a": ",]", "b": [1, 2]})

    def test_deepNestingRejectedCheaply(self) -> None:
        error = _error(b"[" * 1_000_000)
        assert "nesting" in error.problem

    def test_deepNestingKeepsCmd(self) -> None:
        body = "[" * 50 + "]" * 50
        error = _error(f'{{"cmd":"sendlog","x":{body}}}')
        assert error.cmd == "sendlog"

    def test_bracketsInStringsDoNotCount(self) -> None:
        message = parseFrame(_frame({"cmd": "x", "s": "[" * 100}))
        assert isinstance(message, TerminalCommand)

    def test_maxDepth(self) -> None:
        assert isinstance(parseFrame(b'{"cmd":"x","a":[[1]]}', maxDepth=3), TerminalCommand)
        error = _error(b'{"cmd":"x","a":[[1]]}', maxDepth=2)
        assert error.cmd == "x"

    def test_maxArrayLength(self) -> None:
        error = _error(b'{"cmd":"x","a":{"b":[1,2,3]}}', maxArrayLength=2)
        assert (error.cmd, error.field) == ("x", "a.b")
        assert isinstance(
            parseFrame(b'{"cmd":"x","a":{"b":[1,2]}}', maxArrayLength=2), TerminalCommand
        )

    def test_nonFiniteNumbers(self) -> None:
        for literal in ["NaN", "Infinity", "-Infinity", "1e400"]:
            error = _error(f'{{"cmd":"x","v":{literal}}}')
            assert (error.cmd, error.field) == ("x", "v")

    def test_hugeInteger(self) -> None:
        error = _error('{"cmd":"x","v":' + "9" * 5000 + "}")
        assert (error.cmd, error.field) == ("x", "v")

    def test_notBytes(self) -> None:
        with self.assertRaises(ProtocolError):
            parseFrame(12)  # type: ignore[arg-type]


class ValueBoundTests(SynchronousTestCase):
    """C{maxValues}: a frame's JSON values are counted on its bytes, before decoding."""

    def test_tooManyValuesRefusedWithTheirCommand(self) -> None:
        frame = b'{"cmd": "sendlog", "record": [' + b"{}," * 50 + b"{}]}"
        with self.assertRaises(ProtocolError) as caught:
            parseFrame(frame, maxValues=20)
        self.assertEqual(caught.exception.cmd, "sendlog")
        self.assertIn("more than 20 JSON values", str(caught.exception))

    def test_commasInStringsDoNotCount(self) -> None:
        frame = json.dumps({"cmd": "sendlog", "record": [], "note": "," * 100}).encode()
        message = parseFrame(frame, maxValues=5)
        self.assertEqual(message.cmd, "sendlog")

    def test_unboundedWithoutMaxValues(self) -> None:
        frame = b'{"cmd": "other", "x": [' + b"0," * 50 + b"0]}"
        self.assertEqual(parseFrame(frame).cmd, "other")
