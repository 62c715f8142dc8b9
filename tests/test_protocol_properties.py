"""Property tests: whatever a terminal sends, the parser answers a Message or a ProtocolError."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tm20.protocol.commands import COMMANDS, buildCommand
from tm20.protocol.messages import CommandReply, ProtocolError, SendLog, TerminalCommand
from tm20.protocol.parser import parseFrame
from tm20.protocol.replies import encodeFrame
from tm20.protocol.storable import checkLogRecord, storableText

_SETTINGS = settings(max_examples=200, deadline=None)

_keys = st.one_of(
    st.sampled_from(
        [
            "cmd", "ret", "sn", "record", "enrollid", "time", "mode", "count", "logindex",
            "backupnum", "admin", "name", "image", "temp", "devinfo", "result", "reason",
            "enrollid ", " count", "attmode",
        ]
    ),
    st.text(max_size=8),
)  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["2018-11-1 8:5:3", "101072", "data:image/jpeg;base64,AA", "sendlog"]),
)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_keys, children, max_size=6)
    ),
    max_leaves=25,
)
_commands = st.one_of(
    st.sampled_from(["reg", "sendlog", "senduser", "sendqrcode", " SendLog ", "getuserinfo"]),
    st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != ""),
)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _parse(data: bytes | str) -> Any:
    try:
        return parseFrame(data)
    except ProtocolError as e:
        return e


_logValues = st.one_of(
    st.integers(min_value=-(2**66), max_value=2**66),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, "12", " 7 ", "x", None, 1.5]),
)
_records = st.one_of(
    st.fixed_dictionaries(
        {
            "enrollid": _logValues,
            "time": st.sampled_from(["2024-01-01 00:00:00", "2024-2-30 1:1:1"]),
        },
        optional={
            "mode": _logValues,
            "inout": _logValues,
            "event": _logValues,
            "verifymode": _logValues,
            "image": st.text(max_size=3),
            "note": _json,
        },
    ),
    _json,
)


class PropertyTests(SynchronousTestCase):
    @_SETTINGS
    @given(_json)
    def test_anyJsonValue(self, value: Any) -> None:
        outcome = _parse(_dump(value))
        assert isinstance(outcome, ProtocolError) or hasattr(outcome, "sn")

    @_SETTINGS
    @given(st.binary(max_size=200))
    def test_anyBytes(self, data: bytes) -> None:
        outcome = _parse(data)
        assert isinstance(outcome, ProtocolError) or hasattr(outcome, "sn")

    @_SETTINGS
    @given(st.text(alphabet='{}[],:"\\ 01aeflnrstucmd', max_size=60))
    def test_jsonishText(self, text: str) -> None:
        outcome = _parse(text)
        assert isinstance(outcome, ProtocolError) or hasattr(outcome, "sn")

    @_SETTINGS
    @given(_commands, st.dictionaries(_keys, _json, max_size=6))
    def test_commandAlwaysAnswerable(self, cmd: str, rest: dict[str, Any]) -> None:
        """Any object with a string cmd parses, or fails with that cmd: the server can reply."""
        frame = {k: v for k, v in rest.items() if k.strip() != "cmd"}
        frame["cmd"] = cmd
        outcome = _parse(_dump(frame))
        expected = cmd.strip().lower()
        if isinstance(outcome, ProtocolError):
            assert outcome.cmd == expected
        else:
            assert outcome.cmd == expected
            assert not isinstance(outcome, CommandReply)
            if isinstance(outcome, TerminalCommand):
                encodeFrame({"ret": outcome.cmd, **outcome.fields})

    @_SETTINGS
    @given(st.dictionaries(_keys, _json, max_size=6), st.integers(min_value=0, max_value=40))
    def test_brokenJsonAfterCmdStillNamesIt(self, rest: dict[str, Any], cut: int) -> None:
        text = json.dumps(
            {"cmd": "sendlog", **{k: v for k, v in rest.items() if k.strip() != "cmd"}}
        )
        broken = text[: max(len('{"cmd": "sendlog"'), len(text) - 1 - cut)]
        outcome = _parse(broken + ",")
        assert isinstance(outcome, ProtocolError)
        assert outcome.cmd == "sendlog"

    @_SETTINGS
    @given(st.sampled_from(sorted(COMMANDS)), st.dictionaries(_keys, _json, max_size=4))
    def test_buildCommandOnlyRaisesProtocolError(self, name: str, params: dict[str, Any]) -> None:
        try:
            frame = buildCommand(name, params)
        except ProtocolError as e:
            assert e.cmd == name
            assert e.field
        else:
            assert frame["cmd"] == name
            encodeFrame(frame)

    @_SETTINGS
    @given(st.lists(_records, max_size=6), st.integers(min_value=0, max_value=3))
    def test_sendlogHoldsEveryRecordOnce(self, records: list[Any], pad: int) -> None:
        """
        Whatever the records, a sendlog with a list of them is never refused for a record: each is
        either stored (and storable in both stores) or rejected with its exact source text.
        """
        texts = [json.dumps(r, ensure_ascii=False) for r in records]
        frame = '{"cmd":"sendlog","sn":"T1","record":[' + (" " * pad + ",").join(texts) + "]}"
        outcome = _parse(frame.encode("utf-8", "surrogatepass"))
        assert isinstance(outcome, SendLog), outcome
        assert len(outcome.records) + len(outcome.rejected) == len(records)
        for record in outcome.records:
            assert (
                checkLogRecord(
                    record.enrollid,
                    record.mode,
                    record.inout,
                    record.event,
                    record.verifymode,
                    record.image,
                )
                is None
            )
        rawTexts = iter(texts)
        for rejected in outcome.rejected:
            assert any(rejected.raw == storableText(t) for t in rawTexts)
