"""
Tests for L{tm20.protocol.storable} and L{tm20.protocol.rawjson}, as the parser applies them:
a value no store can hold is found while parsing, and the record is kept verbatim for the
quarantine.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tm20.protocol.messages import (
    LogRecord,
    ProtocolError,
    Register,
    SendLog,
    SendUser,
    SendUserRejected,
)
from tm20.protocol.parser import parseFrame, parseLogRecord
from tm20.protocol.rawjson import arrayElementsOf
from tm20.protocol.storable import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    checkLogRecord,
    checkUserFields,
)

_GOOD = {"enrollid": 1, "time": "2024-01-01 00:00:00"}


def _sendlog(*records: Any) -> SendLog:
    message = parseFrame(json.dumps({"cmd": "sendlog", "sn": "T1", "record": list(records)}))
    assert isinstance(message, SendLog)
    return message


class LogRangesTests(SynchronousTestCase):
    def test_outOfRangeQuarantined(self) -> None:
        for field in ["enrollid", "mode", "attmode", "inout", "event", "verifymode"]:
            for value in [2**63, 10**30, -(2**63) - 1, "9223372036854775808"]:
                negativeId = field == "enrollid" and not isinstance(value, str) and value < 0
                bad = {**_GOOD, field: value}
                message = _sendlog(_GOOD, bad)
                assert message.records == (LogRecord(enrollid=1, time="2024-01-01 00:00:00"),)
                (rejected,) = message.rejected
                assert rejected.field == f"record[1].{field}"
                assert (
                    (rejected.problem == "must be >= 0")
                    if negativeId
                    else ("out of range" in rejected.problem)
                )
                assert json.loads(rejected.raw) == bad

    def test_edgesAccepted(self) -> None:
        for field in ["mode", "inout", "event", "verifymode"]:
            message = _sendlog(
                {**_GOOD, field: INT64_MAX}, {**_GOOD, field: INT64_MIN, "enrollid": 2}
            )
            assert message.rejected == ()
            assert [getattr(r, field) for r in message.records] == [INT64_MAX, INT64_MIN]
            assert _sendlog({**_GOOD, "enrollid": INT64_MAX}).records[0].enrollid == INT64_MAX

    def test_nulInImage(self) -> None:
        message = _sendlog({**_GOOD, "image": "AB\x00CD"})
        assert message.records == ()
        assert message.rejected[0].field == "record[0].image"
        assert "NUL" in message.rejected[0].problem

    def test_nulInExtraIsStorable(self) -> None:
        """extra is JSON text in both stores, where a NUL is the escape \\u0000."""
        (record,) = _sendlog({**_GOOD, "name": "a\x00b", "n": 10**30}).records
        assert record.extra == {"name": "a\x00b", "n": 10**30}

    @given(st.integers(min_value=-(2**70), max_value=2**70))
    @settings(max_examples=300, deadline=None)
    def test_acceptedExactlyInInt64(self, value: int) -> None:
        """The parser keeps a log field exactly when both stores can hold it."""
        inRange = INT64_MIN <= value <= INT64_MAX
        message = _sendlog({**_GOOD, "event": value})
        assert (len(message.records), len(message.rejected)) == (int(inRange), int(not inRange))
        assert (checkLogRecord(1, 0, 0, value, None, None) is None) == inRange

    def test_pulledRecordsChecked(self) -> None:
        """Records read by a pull (getnewlog) follow the same rules."""
        with self.assertRaisesRegex(ValueError, "out of range"):
            parseLogRecord({**_GOOD, "inout": 2**63})


class UserRangesTests(SynchronousTestCase):
    def test_unstorableQuarantined(self) -> None:
        for field, value in [
            ("enrollid", 2**63),
            ("backupnum", INT32_MAX + 1),
            ("admin", INT32_MAX + 1),
            ("admin", INT32_MIN - 1),
            ("name", "Ann\x00"),
        ]:
            frame = json.dumps({"cmd": "senduser", "sn": "T1", "enrollid": 1, field: value})
            message = parseFrame(frame)
            assert isinstance(message, SendUserRejected)
            assert message.rejected.field == field
            assert message.rejected.raw == frame

    def test_edgesAccepted(self) -> None:
        message = parseFrame(
            json.dumps(
                {
                    "cmd": "senduser",
                    "enrollid": INT64_MAX,
                    "backupnum": INT32_MAX,
                    "admin": INT32_MIN,
                    "record": 2**70,
                }
            )
        )
        assert isinstance(message, SendUser)
        assert (message.enrollid, message.backupnum, message.admin) == (
            INT64_MAX,
            INT32_MAX,
            INT32_MIN,
        )
        assert message.record == 2**70

    def test_checkUserFields(self) -> None:
        assert checkUserFields(1, "x", 0, 0) is None
        assert checkUserFields(1, None, None, None) is None
        assert checkUserFields(1, None, 2**31, None) == (
            "backupnum",
            f"out of range: must be between {INT32_MIN} and {INT32_MAX}",
        )


class RegisterTextTests(SynchronousTestCase):
    def test_nulInStoredTextRefused(self) -> None:
        for frame, field in [
            ({"cmd": "reg", "sn": "A", "cpusn": "1\x002"}, "cpusn"),
            ({"cmd": "reg", "sn": "A", "devinfo": {"mac": "00:11\x00"}}, "devinfo.mac"),
            ({"cmd": "reg", "sn": "A", "devinfo": {"modelname": "\x00"}}, "devinfo.modelname"),
            ({"cmd": "reg", "sn": "A", "devinfo": {"firmware": "v\x00"}}, "devinfo.firmware"),
        ]:
            with self.assertRaises(ProtocolError) as info:
                parseFrame(json.dumps(frame))
            assert (info.exception.cmd, info.exception.field) == ("reg", field)
            assert "NUL" in info.exception.problem

    def test_nulInSnRefusedByTheSnRule(self) -> None:
        """The sn rule (L{tm20.protocol.serial}) refuses a NUL before the stored-text check."""
        with self.assertRaises(ProtocolError) as info:
            parseFrame(json.dumps({"cmd": "reg", "sn": "A\x00"}))
        assert (info.exception.cmd, info.exception.field) == ("reg", "sn")
        assert "U+0000" in info.exception.problem

    def test_nulElsewhereInDevinfoKept(self) -> None:
        """The rest of devinfo is stored as JSON, where a NUL is an escape."""
        message = parseFrame(json.dumps({"cmd": "reg", "sn": "A", "devinfo": {"x": "\x00"}}))
        assert isinstance(message, Register)
        assert message.devinfo == {"x": "\x00"}


class VerbatimTests(SynchronousTestCase):
    def test_rawIsTheSourceText(self) -> None:
        """Spacing, key order, number spelling and escapes are kept as the terminal sent them."""
        bad = '{ "time" : "2024-13-01 00:00:00",\n "enrollid":1E0, "x":"\\u00e9", "n":1.50 }'
        frame = '{"cmd":"sendlog","record":[' + json.dumps(_GOOD) + "," + bad + "]}"
        message = parseFrame(frame)
        assert isinstance(message, SendLog)
        assert [r.raw for r in message.rejected] == [bad]

    def test_hugeNumberAndSurrogateInARecord(self) -> None:
        """What the parser refuses anywhere in a record refuses only that record."""
        huge = '{"enrollid":1,"time":"2024-01-01 00:00:00","n":' + "9" * 60 + "}"
        lone = '{"enrollid":2,"time":"2024-01-01 00:00:00","name":"\\ud800"}'
        notObject = "[1, 2]"
        frame = f'{{"cmd":"sendlog","count":4,"record":[{huge},{lone},{notObject},{json.dumps(_GOOD)}]}}'
        message = parseFrame(frame)
        assert isinstance(message, SendLog)
        assert len(message.records) == 1
        assert [(r.raw, r.field) for r in message.rejected] == [
            (huge, "record[0].n"),
            (lone, "record[1].name"),
            (notObject, "record[2]"),
        ]

    def test_paddedKeyAndTrailingComma(self) -> None:
        frame = '{"cmd":"sendlog"," record ":[{"enrollid":1,"time":"x"},],}'
        message = parseFrame(frame)
        assert isinstance(message, SendLog)
        assert [r.raw for r in message.rejected] == ['{"enrollid":1,"time":"x"}']

    def test_arrayElementsOf(self) -> None:
        for text, expected in [
            ('{"record":[1, "a" ,{"b":[2]}], "x":0}', ["1", '"a"', '{"b":[2]}']),
            ('{"record":[]}', []),
            ('{"x":1,"record":[NaN],"record":[3]}', ["3"]),
            ('{"record ":[1],"record":[2]}', ["2"]),
            ('{"record":{}}', None),
            ('{"x":1}', None),
            ("[1]", None),
            ('{"record":[1,]}', None),
        ]:
            assert arrayElementsOf(text, "record") == expected
