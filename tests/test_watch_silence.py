"""
Silent terminals (L{tm20.services.silence}): marked silent past their threshold, connected or
not, back to normal when they send anything; the per-terminal override; the API's view.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.test_api_support import simulated
from tests.watchsupport import WatchTestCase, postgresStore
from tm20.events.model import EventQuery
from tm20.interfaces import IStore
from tm20.services.silence import SilenceWatch, sweepInterval
from tm20.store.sqlite import SQLiteStore

T0 = 1_777_550_377.0


class SweepIntervalTests(TestCase):
    def test_tenthOfTheThresholdBetweenOneSecondAndOneMinute(self) -> None:
        self.assertEqual(sweepInterval(60), 6)
        self.assertEqual(sweepInterval(3600), 60)
        self.assertEqual(sweepInterval(5), 1)
        self.assertEqual(sweepInterval(0), 60)


class SilenceWatchTests(TestCase):
    """The watch on a real SQLite store sharing its clock."""

    @inlineCallbacks
    def setUp(self) -> Any:
        self.clock = Clock()
        self.clock.advance(T0)
        folder = tempfile.mkdtemp(prefix="tm20-silence-")
        self.store = SQLiteStore(
            os.path.join(folder, "s.sqlite3"), reactor=reactor, clock=self.clock
        )
        yield self.store.start()
        self.addCleanup(self.store.stop)
        self.watch = SilenceWatch(self.store, self.clock, 60.0)

    @inlineCallbacks
    def events(self) -> Any:
        """The watch's events in the store's event log: C{(type, sn, data)}."""
        found = yield self.store.listEvents(
            EventQuery(types=("terminal.silent", "terminal.recovered"))
        )
        return [(e.type, e.sn, dict(e.payload)) for e in found]

    @inlineCallbacks
    def test_disconnectedTerminalGoesSilentFromItsLastRegistration(self) -> Any:
        """A terminal never heard of by this process: its stored lastSeen counts."""
        yield self.store.recordTerminalSeen("A", None, {}, True)
        self.clock.advance(59)
        yield self.watch.sweep()
        self.assertEqual(self.watch.silent, set())
        self.clock.advance(1)
        yield self.watch.sweep()
        self.assertEqual(self.watch.silent, {"A"})
        watch = yield self.store.getWatch("A")
        self.assertEqual(watch.silentSince.timestamp(), T0 + 60)
        events = yield self.events()
        self.assertEqual([e[:2] for e in events], [("terminal.silent", "A")])
        self.assertEqual(events[0][2]["silentAfter"], 60.0)
        self.assertEqual(events[0][2]["sn"], "A")
        # Swept again: no second event, no change.
        yield self.watch.sweep()
        self.assertEqual(len((yield self.events())), 1)

    @inlineCallbacks
    def test_heardRecoversAtOnce(self) -> Any:
        """Anything heard from a silent terminal ends its silence (stored and announced)."""
        yield self.store.recordTerminalSeen("A", None, {}, True)
        self.clock.advance(61)
        yield self.watch.sweep()
        self.watch.heard("A")
        self.assertEqual(self.watch.silent, set())
        yield self.watch.sweep()  # the sweep after it agrees
        watch = yield self.store.getWatch("A")
        self.assertIsNone(watch.silentSince)
        self.assertEqual(
            [e[:2] for e in (yield self.events())],
            [("terminal.silent", "A"), ("terminal.recovered", "A")],
        )

    @inlineCallbacks
    def test_heardInMemoryKeepsItFromSilence(self) -> Any:
        """What the terminal sent since its registration counts, without any write."""
        yield self.store.recordTerminalSeen("A", None, {}, True)
        self.clock.advance(50)
        self.watch.heard("A")
        self.clock.advance(50)
        yield self.watch.sweep()
        self.assertEqual(self.watch.silent, set())
        self.assertIsNone((yield self.store.getWatch("A")))

    @inlineCallbacks
    def test_overrideWinsAndZeroTurnsItOff(self) -> Any:
        """A terminal's own threshold wins over the default; 0 means never silent."""
        for sn in ("LONG", "OFF", "SHORT", "DEFAULT"):
            yield self.store.recordTerminalSeen(sn, None, {}, True)
        yield self.store.updateWatch("LONG", {"silentAfter": 3600.0})
        yield self.store.updateWatch("OFF", {"silentAfter": 0.0})
        yield self.store.updateWatch("SHORT", {"silentAfter": 10.0})
        self.clock.advance(11)
        yield self.watch.sweep()
        self.assertEqual(self.watch.silent, {"SHORT"})
        self.clock.advance(100)
        yield self.watch.sweep()
        self.assertEqual(self.watch.silent, {"SHORT", "DEFAULT"})

    @inlineCallbacks
    def test_pendingInactiveAndNeverSeenAreNeverSilent(self) -> Any:
        yield self.store.recordTerminalSeen("PENDING", None, {}, False)
        yield self.store.recordTerminalSeen("OFF", None, {}, True)
        yield self.store.updateTerminal("OFF", {"active": False})
        yield self.store.createTerminal("NEVER", None, True, None)
        self.clock.advance(1000)
        yield self.watch.sweep()
        self.assertEqual(self.watch.silent, set())

    @inlineCallbacks
    def test_raisingTheThresholdRecovers(self) -> Any:
        """A silent terminal given a longer threshold is no longer silent."""
        yield self.store.recordTerminalSeen("A", None, {}, True)
        self.clock.advance(61)
        yield self.watch.sweep()
        yield self.store.updateWatch("A", {"silentAfter": 3600.0})
        yield self.watch.sweep()
        self.assertEqual(self.watch.silent, set())
        self.assertEqual((yield self.events())[-1][:2], ("terminal.recovered", "A"))

    @inlineCallbacks
    def test_sweepReadsByPages(self) -> Any:
        """Every page is checked and handed on; the sweep ends after a short page."""
        for sn in ("A", "B", "C", "D", "E"):
            yield self.store.recordTerminalSeen(sn, None, {}, True)
        self.watch.pageSize = 2
        pages: list[list[str]] = []
        self.watch.onPage = lambda page: pages.append([t.sn for t in page])
        self.clock.advance(61)
        yield self.watch.sweep()
        self.assertEqual(pages, [["A", "B"], ["C", "D"], ["E"]])
        self.assertEqual(self.watch.silent, {"A", "B", "C", "D", "E"})

    @inlineCallbacks
    def test_sweepsRunOnTheClock(self) -> Any:
        """start() sweeps every interval on the injected clock, and stop() ends it."""
        yield self.store.recordTerminalSeen("A", None, {}, True)
        self.watch.start()
        self.addCleanup(self.watch.stop)
        self.clock.advance(60)
        yield self.watch._sweeping
        self.assertEqual(self.watch.silent, {"A"})
        self.watch.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SilentTerminalTests(WatchTestCase):
    """A simulated terminal that stops sending, over a real WebSocket, seen through the API."""

    @inlineCallbacks
    def test_terminalThatStopsSendingIsMarkedSilentAndRecovers(self) -> Any:
        # Only the server's clock jumps, so the terminals' clocks look off: not watched here.
        yield self.start(silentAfter=60.0, clockDriftThreshold=0.0)
        connection = yield self.connect(simulated("QUIET1"))
        yield self.connect(simulated("CHATTY1"))
        r = yield self.call("PATCH", "/api/terminals/CHATTY1/", {"silentAfter": 3600})
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["watch"]["silentAfterOverride"], 3600)
        self.assertEqual(r.json["watch"]["silentAfter"], 3600)
        watch = yield self.terminalWatch("QUIET1")
        self.assertEqual((watch["silent"], watch["silentAfter"]), (False, 60.0))
        self.assertIsNotNone(watch["lastHeard"])

        # nothing sent for a minute: the sweep marks it, connected or not (counted from when it
        # was last heard: the store stamps that on the wall clock, which ran on meanwhile)
        lastHeard = datetime.fromisoformat(watch["lastHeard"]).timestamp()
        self.clock.advance(max(lastHeard - self.clock.seconds(), 0.0) + 61)

        def silentOnes() -> Any:
            d = self.call("GET", "/api/terminals/?state=silent")
            return d.addCallback(lambda r: [t["sn"] for t in r.json["items"]])

        self.assertEqual((yield self.until(silentOnes, "QUIET1 silent")), ["QUIET1"])
        r = yield self.call("GET", "/api/terminals/QUIET1/")
        self.assertEqual(r.json["states"], ["connected", "silent"])
        self.assertTrue(r.json["watch"]["silent"])
        self.assertIsNotNone(r.json["watch"]["silentSince"])
        r = yield self.call("GET", "/api/terminals/?state=connected")
        self.assertEqual(sorted(t["sn"] for t in r.json["items"]), ["CHATTY1", "QUIET1"])

        connection.punch(1)  # it speaks again

        def recovered() -> Any:
            return self.terminalWatch("QUIET1").addCallback(lambda w: not w["silent"])

        yield self.until(recovered, "QUIET1 recovered")
        r = yield self.call("GET", "/api/terminals/?state=silent")
        self.assertEqual(r.json["items"], [])
        types = yield self.eventTypes("QUIET1", "terminal.silent,terminal.recovered")
        self.assertEqual(types, ["terminal.silent", "terminal.recovered"])
        self.assertEqual((yield self.eventTypes("CHATTY1", "terminal.silent")), [])

    @inlineCallbacks
    def test_silentAfterIsValidatedAndCanBeReset(self) -> Any:
        yield self.start()
        yield self.connect(simulated("T1"))
        r = yield self.call("PATCH", "/api/terminals/T1/", {"silentAfter": -1})
        self.assertEqual((r.status, r.json["field"]), (400, "silentAfter"))
        r = yield self.call("PATCH", "/api/terminals/T1/", {"silentAfter": "soon"})
        self.assertEqual((r.status, r.json["field"]), (400, "silentAfter"))
        r = yield self.call("PATCH", "/api/terminals/T1/", {"silentAfter": 120, "name": "Door"})
        self.assertEqual((r.status, r.json["name"]), (200, "Door"))
        self.assertEqual(r.json["watch"]["silentAfterOverride"], 120)
        r = yield self.call("PATCH", "/api/terminals/T1/", {"silentAfter": None})
        self.assertIsNone(r.json["watch"]["silentAfterOverride"])
        self.assertEqual(r.json["watch"]["silentAfter"], 3600.0)
        r = yield self.call("PATCH", "/api/terminals/NOPE/", {"silentAfter": 5})
        self.assertEqual(r.status, 404)
        r = yield self.call("GET", "/api/terminals/?state=bogus")
        self.assertEqual((r.status, r.json["field"]), (400, "state"))


class SilentTerminalPostgresTests(SilentTerminalTests):
    """The same on PostgreSQL."""

    def makeStore(self) -> IStore:
        # the timestamps it writes (lastSeen) on the test's Clock, as the sweep compares them
        # with it: a slow start (migrations on a loaded machine) must not shorten the silence
        return postgresStore(self, "tm20_silence", clock=self.clock)
