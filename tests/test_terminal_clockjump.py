"""
Keep-alive against steps of the wall clock: probes and expiry follow monotonic time.

Twisted's reactor runs C{callLater} on the wall clock, like a C{Clock} whose time is stepped.
These tests inject two clocks: C{wall} (the reactor: registration, command timeouts) and
C{mono} (monotonic time); the wall clock alone is stepped forward or back.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.memoryws import MemoryTerminal
from tests.serverfixture import registeredClient, startServer
from tests.syncstore import stopSync, syncSQLiteStore
from tm20.config import ServerConfig
from tm20.service import buildServer
from tm20.terminal.monotonic import MonotonicTime, monotonicClock


def reg(sn: str) -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "devinfo": {"modelname": "tfs30"}}


class _TwoClocks(SynchronousTestCase):
    config = ServerConfig(heartbeatInterval=30, connectionTimeout=120, regTimeout=0)

    def setUp(self) -> None:
        self.wall = Clock()
        self.wall.advance(1_700_000_000)
        self.mono = Clock()
        self.mono.advance(5_000)
        # a real SQLite store answering synchronously (tests.syncstore), on the wall clock
        self.store = syncSQLiteStore(self.mktemp() + ".sqlite3", self.wall)
        self.addCleanup(stopSync, self.store)
        self.server = buildServer(
            self.config, reactor, self.store, clock=self.wall, monotonic=self.mono
        )

    def elapse(self, seconds: float, step: float = 1.0) -> None:
        """Real time passes: both clocks move."""
        while seconds > 0:
            dt = min(step, seconds)
            self.mono.advance(dt)
            self.wall.advance(dt)
            seconds -= dt

    def jump(self, seconds: float) -> None:
        """The system clock is stepped: only wall time moves (what is due on it runs)."""
        self.wall.advance(seconds)

    def registered(self, count: int) -> list[MemoryTerminal]:
        terms = []
        for i in range(count):
            term = MemoryTerminal(self.server.factory)
            self.addCleanup(self.disconnect, term)
            term.send(reg(f"S{i:02d}"))
            terms.append(term)
        for term in terms:
            [got] = term.messages()
            self.assertEqual((got["ret"], got["result"]), ("reg", True))
        return terms

    def disconnect(self, term: MemoryTerminal) -> None:
        if term.protocol.state != term.protocol.STATE_CLOSED:
            term.protocol.connectionLost(Failure(ConnectionDone()))

    def closed(self, terms: list[MemoryTerminal]) -> list[int]:
        return [i for i, t in enumerate(terms) if t.closeCode(t.frames()) is not None]


class ClockJumpTests(_TwoClocks):
    def test_forwardJumpDropsNobody(self) -> None:
        terms = self.registered(20)
        for i, term in enumerate(terms):  # traffic spread over the last 20 s
            self.elapse(1)
            term.send({"ret": "gettime", "sn": f"S{i:02d}", "time": "2024-01-15 10:00:00"})
        self.jump(600)  # NTP steps the clock 10 minutes forward
        self.elapse(1)
        self.assertEqual(self.closed(terms), [])
        self.assertEqual(len(self.server.context.registry), 20)

    def test_forwardJumpDoesNotProbeEarly(self) -> None:
        [term] = self.registered(1)
        self.elapse(10)
        self.jump(3600)
        self.elapse(1)
        self.assertEqual(term.messages(), [])
        self.elapse(19)  # 30 s of real silence
        self.assertEqual(term.messages(), [{"cmd": "gettime"}])

    def test_backwardJumpStillExpiresSilentTerminals(self) -> None:
        terms = self.registered(3)
        self.elapse(10)
        self.jump(-3600)  # the clock is stepped an hour back
        self.elapse(109.5)
        self.assertEqual(self.closed(terms), [])
        self.elapse(1)  # 120 s of real silence
        self.assertEqual(self.closed(terms), [0, 1, 2])

    def test_backwardJumpStillProbes(self) -> None:
        [term] = self.registered(1)
        self.elapse(10)
        self.jump(-600)
        self.elapse(20)
        self.assertEqual(term.messages(), [{"cmd": "gettime"}])


class RegDeadlineClockJumpTests(_TwoClocks):
    config = ServerConfig(heartbeatInterval=30, connectionTimeout=120, regTimeout=60)

    def test_backwardJumpStillEnforcesTheRegDeadline(self) -> None:
        term = MemoryTerminal(self.server.factory)
        self.addCleanup(self.disconnect, term)
        self.elapse(10)
        self.jump(-3600)
        self.elapse(49.5)
        self.assertIsNone(term.closeCode(term.frames()))
        self.elapse(1)
        self.assertEqual(term.closeCode(term.frames()), 4004)

    def test_forwardJumpDoesNotCutTheRegDeadlineShort(self) -> None:
        term = MemoryTerminal(self.server.factory)
        self.addCleanup(self.disconnect, term)
        self.elapse(10)
        self.jump(3600)
        self.elapse(1)
        self.assertIsNone(term.closeCode(term.frames()))


class MonotonicTimeTests(TestCase):
    """The production clock: C{time.monotonic()} rung by a timerfd the real reactor watches."""

    timeout = 10

    def test_oneClockPerReactor(self) -> None:
        self.assertIs(monotonicClock(reactor), monotonicClock(reactor))
        self.assertIsInstance(monotonicClock(reactor), MonotonicTime)
        clock = Clock()
        self.assertIs(monotonicClock(clock), clock)

    @inlineCallbacks
    def test_callsRunInOrderOnTheRealReactor(self) -> Any:
        clock = MonotonicTime(reactor)
        ran: list[str] = []
        done: Deferred[None] = Deferred()
        clock.callLater(0.03, ran.append, "late")
        clock.callLater(0.01, ran.append, "early")
        cancelled = clock.callLater(0.02, ran.append, "cancelled")
        postponed = clock.callLater(0.005, ran.append, "postponed")
        clock.callLater(0.05, done.callback, None)
        cancelled.cancel()
        postponed.reset(0.04)
        self.assertEqual(len(clock.getDelayedCalls()), 4)
        yield done
        self.assertEqual(ran, ["early", "late", "postponed"])
        self.assertEqual(clock.getDelayedCalls(), [])
        # Idle: the timer is no longer watched by the reactor.
        self.assertNotIn(clock._timer, reactor.getReaders())
        self.assertTrue(clock._useTimerFD)

    @inlineCallbacks
    def test_keepAliveOnTheRealServer(self) -> Any:
        # The production wiring: probes and expiry rung by the timerfd on the running reactor.
        running = yield startServer(self, heartbeatInterval=0.2, connectionTimeout=0.7)
        self.assertIsInstance(running.server.factory.monotonic, MonotonicTime)
        client = yield registeredClient(self, running)
        probe = yield client.next()
        self.assertEqual(probe, {"cmd": "gettime"})
        _, code, _ = yield client.closed  # the probe is not answered
        self.assertEqual(code, 4000)

    def test_fallsBackToTheReactorsTimersWithoutFileDescriptors(self) -> None:
        # A reactor that cannot watch a timerfd: its own callLater wakes the clock up.
        reactorClock = Clock()
        now = [0.0]
        clock = MonotonicTime(reactorClock, now=lambda: now[0])
        ran: list[int] = []
        clock.callLater(2, ran.append, 2)
        clock.callLater(1, ran.append, 1)
        now[0] = reactorClock.rightNow = 1.0
        reactorClock.advance(0)
        self.assertEqual(ran, [1])
        now[0] = 2.0
        reactorClock.advance(1)
        self.assertEqual(ran, [1, 2])
        self.assertEqual(reactorClock.getDelayedCalls(), [])
        self.assertIsNone(clock._timer)

    def test_cancellingTheEarliestKeepsTheAlarmUntilItRings(self) -> None:
        # The alarm is not re-armed later when the earliest call is cancelled (one system call
        # per registration deadline): it rings early once, runs nothing, and is armed for the
        # next call, which runs at its time.
        reactorClock = Clock()
        now = [0.0]
        clock = MonotonicTime(reactorClock, now=lambda: now[0])
        ran: list[float] = []
        first = clock.callLater(1, ran.append, 1.0)
        clock.callLater(3, lambda: ran.append(now[0]))
        (alarm,) = reactorClock.getDelayedCalls()
        first.cancel()
        self.assertEqual(reactorClock.getDelayedCalls(), [alarm])
        now[0] = 1.0
        reactorClock.advance(1)
        self.assertEqual(ran, [])
        (alarm,) = reactorClock.getDelayedCalls()
        self.assertEqual(alarm.getTime(), 3)
        now[0] = 2.999
        reactorClock.advance(1.999)
        self.assertEqual(ran, [])
        now[0] = 3.0
        reactorClock.advance(0.001)
        self.assertEqual(ran, [3.0])
        self.assertEqual(reactorClock.getDelayedCalls(), [])

    def test_manyCallsCancelledAndMovedRunWhenDueInOrder(self) -> None:
        # 3 000 calls (as many keep-alive timers as connections), a third cancelled, a third
        # moved sooner or later: each remaining call runs once, at its final due time, in order;
        # the heap of pending entries does not keep the cancelled ones.
        reactorClock = Clock()
        now = [0.0]
        clock = MonotonicTime(reactorClock, now=lambda: now[0])
        rng = random.Random(20261130)
        ran: list[tuple[float, int]] = []
        expected: dict[int, float] = {}
        calls = []
        for i in range(3000):
            delay = rng.uniform(1, 100)
            calls.append(clock.callLater(delay, lambda i=i: ran.append((now[0], i))))
            expected[i] = delay
        for i, call in enumerate(calls):
            choice = i % 3
            if choice == 0:
                call.cancel()
                del expected[i]
            elif choice == 1:
                delay = rng.uniform(0.5, 150)
                call.reset(delay)
                expected[i] = delay
        self.assertEqual(len(clock.getDelayedCalls()), len(expected))
        self.assertLessEqual(len(clock._heap), 2 * len(expected) + 1)
        for step in range(1, 1501):
            now[0] = reactorClock.rightNow = step / 10
            reactorClock.advance(0)
        self.assertEqual(sorted(i for _, i in ran), sorted(expected))
        for at, i in ran:
            self.assertGreaterEqual(at, expected[i] - 1e-9)
            self.assertLess(at, expected[i] + 0.1 + 1e-9)
        self.assertEqual([at for at, _ in ran], sorted(at for at, _ in ran))
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(reactorClock.getDelayedCalls(), [])

    @inlineCallbacks
    def test_callsRunOnAnInjectedMonotonicTime(self) -> Any:
        # The wall clock has nothing to do with when a call is due: with monotonic time frozen,
        # a call does not run, however long the wall clock waits.
        now = [100.0]
        clock = MonotonicTime(reactor, now=lambda: now[0])
        ran: list[int] = []
        clock.callLater(0.001, ran.append, 1)
        yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(ran, [])
        now[0] += 0.001
        done: Deferred[None] = Deferred()
        clock.callLater(0, done.callback, None)
        yield done
        self.assertEqual(ran, [1])
