"""
Clock drift (L{tm20.services.clockdrift}): measured in the terminal's time zone, recorded,
flagged past the threshold, corrected with C{--auto-settime-drift}; end to end, a simulated
terminal ten minutes off is flagged and corrected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.watchsupport import WatchTestCase, postgresStore
from tm20.interfaces import IStore
from tm20.model import TerminalWatch
from tm20.services.clockdrift import ClockDrift, driftSeconds
from tm20.simulator.device import SimulatedTerminal

T0 = 1_777_550_377.0  # 2026-04-30 11:59:37 UTC


def localTime(posix: float, tz: str) -> str:
    return datetime.fromtimestamp(posix, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")


class DriftSecondsTests(SynchronousTestCase):
    def test_inTheTerminalsZone(self) -> None:
        self.assertEqual(driftSeconds(localTime(T0 + 600, "Europe/Paris"), T0, "Europe/Paris"), 600)
        self.assertEqual(driftSeconds(localTime(T0 - 90, "Asia/Tokyo"), T0, "Asia/Tokyo"), -90)
        # The same wall time read in another zone is hours off.
        self.assertEqual(driftSeconds(localTime(T0, "Europe/Paris"), T0, "UTC"), 7200)

    def test_badInput(self) -> None:
        self.assertRaises(ValueError, driftSeconds, "2026-04-30T12:00:00Z", T0, None)
        self.assertRaises(ValueError, driftSeconds, "2026-04-30 12:00:00", T0, "Nowhere/City")


class _Store:
    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []
        self.watch = TerminalWatch(sn="A")
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def updateWatch(
        self, sn: str, changes: dict[str, Any], events: Any = ()
    ) -> Deferred[TerminalWatch]:
        self.events.extend((e.type, e.sn, dict(e.payload)) for e in events)
        self.writes.append(changes)
        self.watch = attrs.evolve(self.watch, **changes)
        return succeed(self.watch)

    def updateWatches(self, changes: Any) -> Deferred[list[bool]]:
        for sn, fields, events in changes:
            self.updateWatch(sn, fields, events)
        return succeed([True] * len(changes))


class ClockDriftTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = _Store()
        self.events = self.store.events
        self.settimes: list[str] = []

        def settime(sn: str) -> Deferred[None]:
            self.settimes.append(sn)
            return succeed(None)

        self.drift = ClockDrift(
            self.store,
            self.clock,
            threshold=60,
            autoSettime=0,
            defaultTimezone="Europe/Paris",
            settime=settime,
        )

    def observe(self, offset: float, tz: str | None = None) -> None:
        now = self.clock.seconds()
        self.drift.observe("A", tz, localTime(now + offset, tz or "Europe/Paris"), "reg")

    def test_recordedFlaggedOnceAndUnflagged(self) -> None:
        self.observe(5)
        self.assertEqual(self.store.watch.clockDrift, 5)
        self.assertEqual(self.events, [])
        self.observe(600)  # crosses the threshold: written and announced at once
        self.assertEqual(self.store.watch.clockDrift, 600)
        self.assertEqual(
            self.events,
            [
                (
                    "terminal.clock_drift",
                    "A",
                    {
                        "sn": "A",
                        "drift": 600,
                        "source": "reg",
                        "threshold": 60,
                        "correcting": False,
                    },
                )
            ],
        )
        self.observe(601)  # still flagged: not written again so soon
        self.assertEqual(len(self.store.writes), 2)
        self.assertEqual(self.drift.drift["A"], 601)
        self.observe(0)  # back within: written
        self.assertEqual(self.store.watch.clockDrift, 0)
        self.assertEqual(len(self.events), 1)

    def test_rewrittenAfterTheRecordInterval(self) -> None:
        self.observe(3)
        self.clock.advance(self.drift.recordInterval)
        self.observe(4)
        self.assertEqual([w["clockDrift"] for w in self.store.writes], [3, 4])

    def test_terminalsOwnZone(self) -> None:
        self.observe(0, tz="America/New_York")
        self.assertEqual(self.store.watch.clockDrift, 0)

    def test_autoSettimePastItsThresholdAtMostHourly(self) -> None:
        self.drift.autoSettime = 300
        self.observe(200)
        self.assertEqual(self.settimes, [])
        self.observe(600)
        self.assertEqual(self.settimes, ["A"])
        self.assertIsNotNone(self.store.watch.clockCorrectedAt)
        self.observe(600)
        self.clock.advance(self.drift.correctionInterval - 1)
        self.observe(600)
        self.assertEqual(self.settimes, ["A"])
        self.clock.advance(1)
        self.observe(600)
        self.assertEqual(self.settimes, ["A", "A"])

    def test_thresholdZeroNeverFlags(self) -> None:
        self.drift.threshold = 0
        self.observe(100_000)
        self.assertEqual(self.events, [])
        self.assertFalse(self.drift.flagged(100_000))

    def test_unreadableTimeIgnored(self) -> None:
        self.drift.observe("A", None, "soon", "reg")
        self.drift.observe("A", None, None, "gettime")
        self.assertEqual(self.store.writes, [])


class ClockDriftEndToEndTests(WatchTestCase):
    """A simulated terminal ten minutes ahead, whose firmware ignores cloudtime."""

    @inlineCallbacks
    def test_tenMinutesOffIsFlaggedAndCorrected(self) -> Any:
        yield self.start(clockDriftThreshold=60.0, autoSettimeDrift=30.0)
        terminal = SimulatedTerminal("DRIFT1", clockOffset=600, followCloudTime=False)
        connection = yield self.connect(terminal, heartbeat=0.2)

        def flagged() -> Any:
            return self.terminalWatch("DRIFT1").addCallback(
                lambda w: w if w["clock"]["correctedAt"] else None
            )

        watch = yield self.until(flagged, "drift flagged and corrected")
        self.assertTrue(watch["clock"]["flagged"])
        self.assertLess(abs(watch["clock"]["drift"] - 600), 3)

        def corrected() -> bool:
            return abs(terminal.clockOffset) < 3

        yield self.until(corrected, "terminal clock set by settime")
        store = self.running.context.store

        def delivered() -> Any:  # the settime's success is recorded just after the reply
            return store.pendingCommands("DRIFT1").addCallback(lambda pending: pending == [])

        yield self.until(delivered, "settime recorded as delivered")

        def unflagged() -> Any:  # the next heartbeat reg shows the clock right
            return self.terminalWatch("DRIFT1").addCallback(
                lambda w: w if not w["clock"]["flagged"] else None
            )

        watch = yield self.until(unflagged, "drift back within the threshold")
        self.assertLess(abs(watch["clock"]["drift"]), 3)
        self.assertEqual(self.running.context.metrics.clockCorrections._value.get(), 1)
        self.assertEqual(
            (yield self.eventTypes("DRIFT1", "terminal.clock_drift")), ["terminal.clock_drift"]
        )
        self.assertTrue(connection.registered)

    @inlineCallbacks
    def test_flaggedButLeftAloneWithoutAutoSettime(self) -> Any:
        yield self.start(clockDriftThreshold=60.0)
        terminal = SimulatedTerminal("DRIFT2", clockOffset=-600, followCloudTime=False)
        yield self.connect(terminal)

        def flagged() -> Any:
            return self.terminalWatch("DRIFT2").addCallback(
                lambda w: w if w["clock"]["flagged"] else None
            )

        watch = yield self.until(flagged, "drift flagged")
        self.assertLess(abs(watch["clock"]["drift"] - (-600)), 3)
        self.assertIsNone(watch["clock"]["correctedAt"])
        r = yield self.call("GET", "/api/terminals/?state=clock_drift")
        self.assertEqual([t["sn"] for t in r.json["items"]], ["DRIFT2"])
        self.assertEqual((yield self.running.context.store.pendingCommands("DRIFT2")), [])
        self.assertLess(abs(terminal.clockOffset - (-600)), 0.001)

    @inlineCallbacks
    def test_keepAliveProbeRepliesAreCompared(self) -> Any:
        """The gettime of the keep-alive probe is a clock reading too."""
        yield self.start(clockDriftThreshold=20.0, heartbeatInterval=30.0)
        yield self.connect(SimulatedTerminal("PROBED1"))
        watch = yield self.terminalWatch("PROBED1")
        self.assertFalse(watch["clock"]["flagged"])
        self.clock.advance(31)  # the server's clock alone moves: probed, 31 s behind

        def flagged() -> Any:
            return self.terminalWatch("PROBED1").addCallback(
                lambda w: w if w["clock"]["flagged"] else None
            )

        watch = yield self.until(flagged, "drift seen in the gettime reply")
        self.assertLess(abs(watch["clock"]["drift"] + 31), 3)

    @inlineCallbacks
    def test_deletedTerminalIsForgotten(self) -> Any:
        yield self.start(clockDriftThreshold=60.0)
        connection = yield self.connect(
            SimulatedTerminal("GONE1", clockOffset=600, followCloudTime=False)
        )
        yield self.until(lambda: "GONE1" in self.watch.drift.drift, "drift seen")
        yield connection.disconnect()  # (it would reconnect and register again)
        r = yield self.call("DELETE", "/api/terminals/GONE1/")
        self.assertEqual(r.status, 204)
        self.assertNotIn("GONE1", self.watch.drift.drift)
        self.assertIsNone((yield self.running.context.store.getWatch("GONE1")))


class ClockDriftEndToEndPostgresTests(ClockDriftEndToEndTests):
    """The same on PostgreSQL."""

    def makeStore(self) -> IStore:
        return postgresStore(self, "tm20_clock")
