"""
Property: whatever a terminal sends, the connection answers every command with a C{ret} and lives
on; it never answers a reply.  In memory, unregistered session (no store involved).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.memoryws import OP_CLOSE, OP_TEXT, MemoryTerminal
from tm20.config import ServerConfig
from tm20.service import buildServer
from tm20.store.sqlite import SQLiteStore

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
commandNames = st.sampled_from(
    ["sendlog", "senduser", "sendqrcode", "checklive", "x", " SendLog "]
) | st.text(min_size=1, max_size=12).filter(
    lambda s: s.strip().lower() != "reg" and s.strip() != ""
)


class DispatchPropertyTests(SynchronousTestCase):
    def setUp(self) -> None:
        # Never started: an unregistered session's commands are refused before any store access.
        store = SQLiteStore(self.mktemp(), reactor=reactor)
        self.server = buildServer(ServerConfig(), reactor, store, clock=Clock())

    def exchange(self, frame: bytes) -> list[tuple[int, bytes]]:
        term = MemoryTerminal(self.server.factory)
        term.send(frame)
        return term.frames()

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cmd=commandNames, fields=st.dictionaries(st.text(max_size=10), values, max_size=6))
    def test_everyCommandGetsOneReply(self, cmd: str, fields: dict[str, Any]) -> None:
        frame = dict(fields)
        frame["cmd"] = cmd
        frames = self.exchange(json.dumps(frame).encode())
        texts = [json.loads(p) for op, p in frames if op == OP_TEXT]
        self.assertEqual(len(texts), 1, frames)
        self.assertEqual(texts[0]["ret"], cmd.strip().lower())
        self.assertIs(texts[0]["result"], False)
        self.assertNotIn(OP_CLOSE, [op for op, _ in frames])

    @settings(max_examples=200, deadline=None)
    @given(text=st.text(max_size=200))
    def test_arbitraryTextNeverKillsTheConnection(self, text: str) -> None:
        # (Invalid UTF-8 in a text frame is a WebSocket protocol error: RFC 6455 closes with 1007.)
        frames = self.exchange(text.encode("utf-8"))
        self.assertNotIn(OP_CLOSE, [op for op, _ in frames])
        self.assertLessEqual(len([1 for op, _ in frames if op == OP_TEXT]), 1)

    @settings(max_examples=100, deadline=None)
    @given(
        ret=st.text(min_size=1, max_size=12),
        fields=st.dictionaries(st.text(max_size=8), values, max_size=4),
    )
    def test_repliesAreNeverAnswered(self, ret: str, fields: dict[str, Any]) -> None:
        frame = {k: v for k, v in fields.items() if k.strip().lower() != "cmd"}
        frame["ret"] = ret
        self.assertEqual(self.exchange(json.dumps(frame).encode()), [])
