"""The one-in-flight command channel, on a Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tm20.errors import CommandTimeout, TerminalGone
from tm20.protocol.messages import CommandReply
from tm20.terminal.channel import CommandChannel


class CommandChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.sent: list[dict[str, Any]] = []
        self.channel = CommandChannel(self.clock, lambda p: self.sent.append(dict(p)), 30.0)

    def reply(self, ret: str, **fields: Any) -> bool:
        return self.channel.replyReceived(
            CommandReply(ret=ret, sn="S1", result=True, fields=fields)
        )

    def test_oneInFlightMatchedByName(self) -> None:
        d1 = self.channel.execute({"cmd": "getuserinfo", "enrollid": 1})
        d2 = self.channel.execute({"cmd": "opendoor"})
        self.assertEqual(self.sent, [{"cmd": "getuserinfo", "enrollid": 1}])
        self.assertTrue(self.channel.busy)
        self.assertEqual(self.channel.queued, 1)
        # A reply to something else does not resolve the command in flight.
        self.assertFalse(self.reply("opendoor"))
        self.assertNoResult(d1)
        self.assertTrue(self.reply("getuserinfo", name="Ben"))
        self.assertEqual(self.successResultOf(d1).fields["name"], "Ben")
        self.assertEqual(self.sent[-1], {"cmd": "opendoor"})
        self.assertTrue(self.reply("opendoor"))
        self.assertTrue(self.successResultOf(d2).result)
        self.assertFalse(self.channel.busy)

    def test_timeoutMovesOn(self) -> None:
        d1 = self.channel.execute({"cmd": "gettime"}, timeout=5)
        d2 = self.channel.execute({"cmd": "getdevinfo"})
        self.clock.advance(4.9)
        self.assertNoResult(d1)
        self.clock.advance(0.2)
        self.failureResultOf(d1, CommandTimeout)
        self.assertEqual(self.sent[-1], {"cmd": "getdevinfo"})
        # The late reply to the timed-out command is not taken for the next one.
        self.assertFalse(self.reply("gettime"))
        self.assertNoResult(d2)

    def test_rebootHasNoReply(self) -> None:
        d = self.channel.execute({"cmd": "reboot"})
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.channel.busy)
        d2 = self.channel.execute({"cmd": "gettime"})
        self.assertEqual(self.sent[-1], {"cmd": "gettime"})
        self.assertNoResult(d2)

    def test_closeFailsEverything(self) -> None:
        d1 = self.channel.execute({"cmd": "gettime"})
        d2 = self.channel.execute({"cmd": "getdevinfo"})
        self.channel.close()
        self.failureResultOf(d1, TerminalGone)
        self.failureResultOf(d2, TerminalGone)
        self.failureResultOf(self.channel.execute({"cmd": "gettime"}), TerminalGone)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelQueuedAndInFlight(self) -> None:
        d1 = self.channel.execute({"cmd": "gettime"})
        d2 = self.channel.execute({"cmd": "getdevinfo"})
        d3 = self.channel.execute({"cmd": "getdevlock"})
        d2.cancel()
        self.failureResultOf(d2, CancelledError)
        d1.cancel()
        self.failureResultOf(d1, CancelledError)
        self.assertEqual([p["cmd"] for p in self.sent], ["gettime", "getdevlock"])
        self.assertTrue(self.reply("getdevlock"))
        self.successResultOf(d3)

    def test_sendFailureFailsThatCommandOnly(self) -> None:
        calls: list[str] = []

        def send(p: Any) -> None:
            calls.append(p["cmd"])
            if p["cmd"] == "bad":
                raise RuntimeError("socket gone")

        channel = CommandChannel(self.clock, send, 30.0)
        d1 = channel.execute({"cmd": "bad"})
        d2 = channel.execute({"cmd": "gettime"})
        self.failureResultOf(d1, TerminalGone)
        self.assertNoResult(d2)
        self.assertEqual(calls, ["bad", "gettime"])
