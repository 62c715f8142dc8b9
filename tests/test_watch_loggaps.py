"""
Missing logs (L{tm20.services.loggaps}): what the counters and the C{logindex} sequence are taken
to mean, and the fetches the server makes by itself, bounded and paced; end to end, simulated
terminals whose logs the server never got have them fetched without anyone asking.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.watchsupport import WatchTestCase, postgresStore
from tm20.interfaces import IStore
from tm20.model import TerminalWatch
from tm20.protocol.messages import LogRecord
from tm20.services.loggaps import Fetch, LogGaps, counterGap
from tm20.services.pulls import LogPullResult, PullBusyError
from tm20.simulator.device import SimulatedTerminal


class CounterGapTests(SynchronousTestCase):
    """C{usedlog - usednewlog - stored}, or nothing when the counters cannot be trusted."""

    def test_uploadedButNotStoredIsTheGap(self) -> None:
        self.assertEqual(counterGap({"usedlog": 500, "usednewlog": 0}, 0), 500)
        self.assertEqual(counterGap({"usedlog": 500, "usednewlog": 20}, 100), 380)
        self.assertEqual(counterGap({"usedlog": "500", "usednewlog": "0"}, 0), 500)

    def test_newLogsAreNotMissingYet(self) -> None:
        self.assertEqual(counterGap({"usedlog": 50, "usednewlog": 50}, 0), 0)

    def test_serverHoldingMoreIsNoGap(self) -> None:
        """A cleared or wrapped log memory holds fewer logs than the server: no gap."""
        self.assertEqual(counterGap({"usedlog": 10, "usednewlog": 0}, 5000), 0)

    def test_absentCountersSayNothing(self) -> None:
        self.assertIsNone(counterGap({}, 0))
        self.assertIsNone(counterGap({"usednewlog": 3}, 0))
        self.assertIsNone(counterGap({"usedlog": None}, 0))
        self.assertIsNone(counterGap({"usedlog": True}, 0))
        self.assertIsNone(counterGap({"usedlog": "many"}, 0))
        # usednewlog absent: taken as 0
        self.assertEqual(counterGap({"usedlog": 7}, 2), 5)

    def test_inconsistentCountersSayNothing(self) -> None:
        self.assertIsNone(counterGap({"usedlog": 10, "usednewlog": 11}, 0))
        self.assertIsNone(counterGap({"usedlog": -1, "usednewlog": 0}, 0))


class FetchTests(SynchronousTestCase):
    def test_widened(self) -> None:
        new = Fetch("A", False)
        window = Fetch("A", True, "2026-04-02", "2026-04-03")
        other = Fetch("A", True, "2026-04-01", "2026-04-02")
        self.assertEqual(new.widened(new), new)
        self.assertEqual(new.widened(window), Fetch("A", True))
        self.assertEqual(window.widened(other), Fetch("A", True, "2026-04-01", "2026-04-03"))
        self.assertEqual(window.widened(Fetch("A", True)), Fetch("A", True))


class _Store:
    """The few store methods the gap finder uses, in memory."""

    def __init__(self, stored: int = 0) -> None:
        self.stored = stored
        self.watches: dict[str, TerminalWatch] = {}
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def countTerminalLogs(self, sn: str) -> Deferred[int]:
        return succeed(self.stored)

    def countLogsOfTerminals(self, sns: list[str]) -> Deferred[dict[str, int]]:
        return succeed(dict.fromkeys(sns, self.stored))

    def getWatch(self, sn: str) -> Deferred[TerminalWatch | None]:
        return succeed(self.watches.get(sn))

    def updateWatch(
        self, sn: str, changes: dict[str, Any], events: Any = ()
    ) -> Deferred[TerminalWatch]:
        import attrs

        self.events.extend((e.type, e.sn, dict(e.payload)) for e in events)
        watch = attrs.evolve(self.watches.get(sn) or TerminalWatch(sn=sn), **changes)
        self.watches[sn] = watch
        return succeed(watch)


class _Pulls:
    """Records the pulls asked; each one waits until the test fires it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, str | None, str | None]] = []
        self.pending: list[Deferred[LogPullResult]] = []

    def pullLogs(
        self, sn: str, allLogs: bool = False, since: str | None = None, until: str | None = None
    ) -> Deferred[LogPullResult]:
        self.calls.append((sn, allLogs, since, until))
        d: Deferred[LogPullResult] = Deferred()
        self.pending.append(d)
        return d

    def finish(self, inserted: int) -> None:
        self.pending.pop(0).callback(LogPullResult(inserted, inserted, 0, 0))


def _rec(time: str) -> LogRecord:
    return LogRecord(enrollid=1, time=time, mode=1)


class LogGapsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_777_550_377)
        self.store = _Store()
        self.events = self.store.events
        self.pulls = _Pulls()
        self.connected = {"A", "B"}
        self.gaps = LogGaps(
            self.store,
            self.clock,
            self.pulls,
            lambda sn: sn in self.connected,
        )

    def test_counterGapFetchesAllAndRecordsRecovery(self) -> None:
        self.gaps.registered("A", {"usedlog": 500, "usednewlog": 0})
        self.assertEqual(self.pulls.calls, [("A", True, None, None)])
        watch = self.store.watches["A"]
        self.assertEqual((watch.logGap, watch.logGapSource), (500, "usedlog"))
        self.assertTrue(self.gaps.busy("A"))
        self.pulls.finish(500)
        watch = self.store.watches["A"]
        self.assertEqual((watch.logGap, watch.logsRecovered, watch.logGapSource), (0, 500, None))
        self.assertFalse(self.gaps.busy("A"))
        self.assertEqual(
            [e[0] for e in self.events], ["terminal.logs_missing", "terminal.logs_recovered"]
        )

    def test_whatCouldNotBeFoundStaysVisible(self) -> None:
        self.gaps.registered("A", {"usedlog": 500, "usednewlog": 0})
        self.pulls.finish(120)
        watch = self.store.watches["A"]
        self.assertEqual(
            (watch.logGap, watch.logsRecovered, watch.logGapSource), (380, 120, "usedlog")
        )

    def test_leftoverGapIsNotFetchedAgainUnlessItGrows(self) -> None:
        self.gaps.registered("A", {"usedlog": 500, "usednewlog": 0})
        self.pulls.finish(120)  # 380 cannot be found on the terminal
        self.store.stored = 120
        self.clock.advance(self.gaps.checkInterval)
        self.gaps.registered("A", {"usedlog": 500, "usednewlog": 0})
        self.assertEqual(len(self.pulls.calls), 1)
        self.assertEqual(self.store.watches["A"].logGap, 380)  # still visible
        self.clock.advance(self.gaps.checkInterval)
        self.gaps.registered("A", {"usedlog": 510, "usednewlog": 0})  # grew: fetched again
        self.assertEqual(len(self.pulls.calls), 2)
        self.assertEqual(self.store.watches["A"].logGap, 390)

    def test_countersComparedAtMostEveryCheckInterval(self) -> None:
        self.store.stored = 500
        self.gaps.registered("A", {"usedlog": 500, "usednewlog": 0})
        self.store.stored = 0
        self.gaps.registered("A", {"usedlog": 500, "usednewlog": 0})  # a heartbeat reg
        self.assertEqual(self.pulls.calls, [])
        self.clock.advance(self.gaps.checkInterval)
        self.gaps.registered("A", {"usedlog": 500, "usednewlog": 0})
        self.assertEqual(len(self.pulls.calls), 1)

    def test_newLogsFetchedOnlyIfNotPushedWithinTheGrace(self) -> None:
        self.gaps.registered("A", {"usedlog": 30, "usednewlog": 30})
        self.gaps.registered("B", {"usedlog": 30, "usednewlog": 30})
        self.clock.advance(1)
        self.gaps.sendlog("B", 0, 10, [_rec("2026-04-30 08:00:00")])  # B pushes them itself
        self.clock.advance(self.gaps.newLogGrace)
        self.assertEqual(self.pulls.calls, [("A", False, None, None)])
        self.assertEqual(self.store.watches["A"].logGapSource, "usednewlog")
        self.assertNotIn("B", self.store.watches)

    def test_logindexJumpFetchesTheWindow(self) -> None:
        self.gaps.sendlog("A", 0, 10, [_rec("2026-04-28 23:59:00"), _rec("2026-04-28 08:00:00")])
        self.gaps.sendlog("A", 10, 10, [_rec("2026-04-29 09:00:00")])
        self.assertEqual(self.pulls.calls, [])
        self.gaps.sendlog("A", 35, 5, [_rec("2026-04-30 10:00:00"), _rec("2026-04-30 07:00:00")])
        self.assertEqual(self.pulls.calls, [("A", True, "2026-04-29", "2026-04-30")])
        watch = self.store.watches["A"]
        self.assertEqual(
            (watch.logGap, watch.logGapSource, watch.logGapFrom, watch.logGapTo),
            (15, "logindex", "2026-04-29", "2026-04-30"),
        )

    def test_quarantinedRecordsCountInTheSequence(self) -> None:
        """Records held in quarantine were received: no gap, and the sequence goes on."""
        self.gaps.sendlog("A", 0, 10, [_rec("2026-04-29 09:00:00")] * 8, rejected=2)
        self.gaps.sendlog("A", 10, 3, [], rejected=3)  # a whole batch quarantined
        self.gaps.sendlog("A", 13, 2, [_rec("2026-04-30 09:00:00")] * 2)
        self.assertEqual(self.pulls.calls, [])
        self.gaps.sendlog("A", 20, 1, [_rec("2026-04-30 10:00:00")])
        self.assertEqual(self.pulls.calls, [("A", True, "2026-04-30", "2026-04-30")])

    def test_resendAndRestartAreNoGap(self) -> None:
        self.gaps.sendlog("A", 10, 10, [_rec("2026-04-29 09:00:00")])
        self.gaps.sendlog("A", 10, 10, [_rec("2026-04-29 09:00:00")])  # resent
        self.gaps.sendlog("A", 0, 5, [_rec("2026-04-30 09:00:00")])  # numbering restarted
        self.gaps.sendlog("A", 5, 5, [_rec("2026-04-30 10:00:00")])
        self.gaps.sendlog("A", 7, None, [_rec("2026-04-30 10:00:00")])  # overlapping
        self.gaps.sendlog("A", None, 3, [_rec("2026-04-30 11:00:00")])  # no logindex
        self.assertEqual(self.pulls.calls, [])

    def test_oneFetchAtATimePaced(self) -> None:
        self.gaps.registered("A", {"usedlog": 5})
        self.gaps.registered("B", {"usedlog": 5})
        self.assertEqual([c[0] for c in self.pulls.calls], ["A"])
        self.pulls.finish(5)
        self.assertEqual([c[0] for c in self.pulls.calls], ["A"])  # paced
        self.clock.advance(self.gaps.pace)
        self.assertEqual([c[0] for c in self.pulls.calls], ["A", "B"])

    def test_waitingFetchesOfOneTerminalMerge(self) -> None:
        self.gaps.registered("B", {"usedlog": 5})  # runs
        self.gaps.sendlog("A", 0, 10, [_rec("2026-04-28 08:00:00")])
        self.gaps.sendlog("A", 20, 10, [_rec("2026-04-29 08:00:00")])
        self.gaps.sendlog("A", 40, 10, [_rec("2026-04-30 08:00:00")])
        self.assertEqual(
            list(self.gaps.waiting.values()), [Fetch("A", True, "2026-04-28", "2026-04-30")]
        )

    def test_disconnectedTerminalIsSkipped(self) -> None:
        self.connected = set()
        self.gaps.registered("A", {"usedlog": 5})
        self.assertEqual(self.pulls.calls, [])
        self.assertEqual(self.gaps.waiting, {})
        self.assertEqual(self.store.watches["A"].logGap, 5)  # still visible

    def test_busyTerminalIsRetriedBoundedly(self) -> None:
        self.pulls.pullLogs = lambda *a: fail(PullBusyError("busy"))  # type: ignore[method-assign]
        self.gaps.registered("A", {"usedlog": 5})
        for _ in range(self.gaps.maxAttempts + 2):
            self.clock.advance(self.gaps.pace)
        self.assertEqual(self.gaps.waiting, {})
        self.assertIsNone(self.gaps.running)

    def test_fetchOffOnlyRecords(self) -> None:
        self.gaps.fetch = False
        self.gaps.registered("A", {"usedlog": 5, "usednewlog": 2})
        self.clock.advance(self.gaps.newLogGrace)
        self.assertEqual(self.pulls.calls, [])
        self.assertEqual(self.store.watches["A"].logGap, 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopCancelsTimers(self) -> None:
        self.gaps.registered("A", {"usedlog": 30, "usednewlog": 30})
        self.gaps.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MissingLogsTests(WatchTestCase):
    """Simulated terminals over loopback; nobody asks for anything."""

    @inlineCallbacks
    def test_fiveHundredLogsTheServerNeverGotAreFetched(self) -> Any:
        yield self.start()
        terminal = SimulatedTerminal("GAP500", logs=500)
        terminal.markUploaded()  # the terminal believes they were uploaded; the server has none
        yield self.connect(terminal)
        store = self.running.context.store

        def recovered() -> Any:
            return self.terminalWatch("GAP500").addCallback(
                lambda w: w if w["logGap"]["recovered"] == 500 else None
            )

        watch = yield self.until(recovered, "500 logs fetched", attempts=1000)
        self.assertEqual((yield store.countTerminalLogs("GAP500")), 500)
        self.assertEqual(watch["logGap"]["missing"], 0)
        self.assertFalse(watch["logGap"]["fetching"])
        self.assertIsNotNone(watch["logGap"]["lastRecoveryAt"])
        types = yield self.eventTypes("GAP500", "terminal.logs_*")
        self.assertEqual(types, ["terminal.logs_missing", "terminal.logs_recovered"])
        commands = self.running.context.metrics
        self.assertEqual(commands.logsRecovered._value.get(), 500)

    @inlineCallbacks
    def test_batchesTheServerNeverGotAreFetched(self) -> Any:
        """A jump in logindex: the window between the batches is read with getalllog."""
        yield self.start()
        terminal = SimulatedTerminal("JUMP1", logs=30)
        for entry in terminal.logs[10:20]:  # lost between terminal and server
            entry.uploaded = True
            entry.new = False
        connection = yield self.connect(terminal)
        yield connection.whenAllLogsAcknowledged()
        store = self.running.context.store

        def all30() -> Any:
            return store.countTerminalLogs("JUMP1").addCallback(lambda n: n == 30)

        yield self.until(all30, "the 10 missing logs fetched", attempts=1000)

        def settled() -> Any:
            return self.terminalWatch("JUMP1").addCallback(
                lambda w: w if not w["logGap"]["fetching"] and w["logGap"]["recovered"] else None
            )

        watch = yield self.until(settled, "recovery recorded")
        self.assertEqual(watch["logGap"]["recovered"], 10)
        self.assertEqual(watch["logGap"]["missing"], 0)

    @inlineCallbacks
    def test_newLogsNeverPushedAreFetchedWithGetnewlog(self) -> Any:
        """A terminal announcing new logs that it does not push has them read after the grace."""
        yield self.start(connectionTimeout=0, heartbeatInterval=0, clockDriftThreshold=0)
        terminal = SimulatedTerminal("STUCK1", logs=30)
        yield self.connect(terminal, pushLogs=False)
        self.assertEqual((yield self.running.context.store.countTerminalLogs("STUCK1")), 0)

        def graceStarted() -> bool:  # once its counters were compared with the store
            return any("STUCK1" in call.args for call in self.clock.getDelayedCalls())

        yield self.until(graceStarted, "the grace period started")
        self.clock.advance(self.watch.gaps.newLogGrace)

        def fetched() -> Any:
            return self.terminalWatch("STUCK1").addCallback(
                lambda w: w if w["logGap"]["recovered"] == 30 else None
            )

        watch = yield self.until(fetched, "new logs fetched", attempts=1000)
        self.assertEqual(watch["logGap"]["missing"], 0)
        self.assertEqual((yield self.running.context.store.countTerminalLogs("STUCK1")), 30)
        self.assertEqual(terminal.newLogCount(), 0)  # getnewlog read them all

    @inlineCallbacks
    def test_gapVisibleWhenFetchingIsOff(self) -> Any:
        yield self.start(fetchMissingLogs=False)
        terminal = SimulatedTerminal("GAPOFF", logs=50)
        terminal.markUploaded()
        yield self.connect(terminal)

        def gap() -> Any:
            return self.terminalWatch("GAPOFF").addCallback(
                lambda w: w if w["logGap"]["missing"] else None
            )

        watch = yield self.until(gap, "gap recorded")
        self.assertEqual((watch["logGap"]["missing"], watch["logGap"]["source"]), (50, "usedlog"))
        r = yield self.call("GET", "/api/terminals/?state=log_gap")
        self.assertEqual([t["sn"] for t in r.json["items"]], ["GAPOFF"])
        self.assertEqual((yield self.running.context.store.countTerminalLogs("GAPOFF")), 0)


class MissingLogsPostgresTests(MissingLogsTests):
    """The same on PostgreSQL."""

    def makeStore(self) -> IStore:
        return postgresStore(self, "tm20_loggaps")
