"""
Admission control (L{tm20.terminal.admission}): at most C{--max-registering} connections
registering at once; the upgrades beyond wait in arrival order, are answered when a slot frees,
leave the line when they close, and are refused (C{503}, C{Retry-After}) when held too long.
Deterministic: injected C{Clock}, in-memory connections, a synchronous real SQLite store.
"""

from __future__ import annotations

from typing import Any

from autobahn.websocket.types import ConnectionDeny
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IReactorFDSet
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.memoryws import MemoryTerminal
from tests.syncstore import stopSync, syncSQLiteStore
from tm20.config import ServerConfig
from tm20.service import TM20Service, buildServer
from tm20.store.sqlite import SQLiteStore
from tm20.terminal.admission import Admission

SWITCHING = b"HTTP/1.1 101 Switching Protocols"


class AdmissionTests(SynchronousTestCase):
    """The line itself."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.counts = {"held": 0, "refused": 0}
        self.admission = Admission(
            2,
            self.clock,
            slotSeconds=10,
            holdSeconds=60,
            onHeld=lambda: self.count("held"),
            onRefused=lambda: self.count("refused"),
        )
        self.addCleanup(self.admission.stop)

    def count(self, what: str) -> None:
        self.counts[what] += 1

    def test_underTheLimitGoesOn(self) -> None:
        self.assertIsNone(self.admission.admit("a"))
        self.assertIsNone(self.admission.admit("b"))
        self.assertEqual((self.admission.registering, self.admission.waiting), (2, 0))
        self.assertEqual(self.counts["held"], 0)

    def test_beyondTheLimitWaitsInArrivalOrder(self) -> None:
        self.admission.admit("a")
        self.admission.admit("b")
        c = self.admission.admit("c")
        d = self.admission.admit("d")
        assert c is not None and d is not None
        self.assertNoResult(c)
        self.assertNoResult(d)
        self.assertEqual(self.counts["held"], 2)
        self.admission.done("b")
        self.assertIsNone(self.successResultOf(c))
        self.assertNoResult(d)
        self.admission.done("a")
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual((self.admission.registering, self.admission.waiting), (2, 0))

    def test_aNewcomerDoesNotPassTheWaiting(self) -> None:
        self.admission.admit("a")
        self.admission.admit("b")
        c = self.admission.admit("c")
        assert c is not None
        self.admission.done("a")  # c takes the slot
        e = self.admission.admit("e")  # full again: e waits
        assert e is not None
        self.assertNoResult(e)
        self.admission.stop()
        self.failureResultOf(e, ConnectionDeny)

    def test_aClosedWaiterLeavesTheLine(self) -> None:
        self.admission.admit("a")
        self.admission.admit("b")
        c = self.admission.admit("c")
        d = self.admission.admit("d")
        assert c is not None and d is not None
        self.admission.done("c")  # closed while held
        self.assertEqual(self.admission.waiting, 1)
        self.admission.done("a")
        self.assertIsNone(self.successResultOf(d))
        self.assertNoResult(c)

    def test_doneIsIdempotent(self) -> None:
        self.admission.admit("a")
        self.admission.done("a")
        self.admission.done("a")
        self.admission.done("never seen")
        self.assertEqual(self.admission.registering, 0)

    def test_aSlotIsTakenBackAfterSlotSeconds(self) -> None:
        """Connections that never register do not keep the line still."""
        self.admission.admit("a")
        self.clock.advance(5)
        self.admission.admit("b")
        c = self.admission.admit("c")
        d = self.admission.admit("d")
        assert c is not None and d is not None
        self.clock.advance(4.9)
        self.assertNoResult(c)
        self.clock.advance(0.1)  # a's slot is 10 s old
        self.assertIsNone(self.successResultOf(c))
        self.assertNoResult(d)
        self.clock.advance(5)  # b's
        self.assertIsNone(self.successResultOf(d))

    def test_oneTimerKeptWhileTheLineMoves(self) -> None:
        """
        Holding and releasing upgrades does not replace the line's timer while it is due no
        later than the next deadline; an early tick changes nothing, and each deadline still
        falls on its time.
        """
        self.admission.admit("a")
        self.admission.admit("b")
        c = self.admission.admit("c")
        assert c is not None
        (timer,) = self.clock.getDelayedCalls()
        self.assertEqual(timer.getTime(), 10)  # a's slot
        self.clock.advance(3)
        d = self.admission.admit("d")
        e = self.admission.admit("e")
        assert d is not None and e is not None
        self.admission.done("a")  # c takes a's slot; the next deadline is now b's (10)
        self.assertIsNone(self.successResultOf(c))
        self.admission.done("e")  # leaves the line
        self.assertEqual(self.clock.getDelayedCalls(), [timer])
        self.clock.advance(6.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)  # b's slot is 10 s old
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.admission.waiting, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_heldTooLongIsRefused(self) -> None:
        self.admission = Admission(1, self.clock, 1000, 60, onRefused=lambda: self.count("refused"))
        self.admission.admit("a")
        c = self.admission.admit("c")
        assert c is not None
        self.clock.advance(59)
        self.assertNoResult(c)
        self.clock.advance(1)
        failure = self.failureResultOf(c, ConnectionDeny)
        self.assertEqual(failure.value.code, ConnectionDeny.SERVICE_UNAVAILABLE)
        self.assertEqual(self.counts["refused"], 1)
        self.assertEqual(self.admission.waiting, 0)

    def test_crowdedWhenAsManyWaitAsMayRegister(self) -> None:
        """Told once when the line is as long as the limit, and once when down to half."""
        told: list[bool] = []
        self.admission.onCrowded = told.append
        for name in "abc":
            self.admission.admit(name)
        self.assertEqual(told, [])
        d = self.admission.admit("d")
        self.assertEqual(told, [True])
        self.assertTrue(self.admission.crowded)
        e = self.admission.admit("e")
        assert d is not None and e is not None
        self.assertEqual(told, [True])
        self.admission.done("a")  # c goes on: 2 waiting, over half
        self.assertEqual(told, [True])
        self.admission.done("b")  # d goes on: 1 waiting
        self.assertEqual(told, [True, False])
        self.assertFalse(self.admission.crowded)
        self.assertIsNone(self.successResultOf(d))
        self.assertNoResult(e)
        self.admission.stop()
        self.failureResultOf(e, ConnectionDeny)

    def test_crowdedAtAFactorOfTheLimit(self) -> None:
        """With C{crowdFactor} 2 and a limit of 2: told at 4 waiting, and again at 2."""
        self.admission.crowdFactor = 2
        told: list[bool] = []
        self.admission.onCrowded = told.append
        held = [self.admission.admit(name) for name in "abcde"]
        self.assertEqual(told, [])  # 3 waiting
        held.append(self.admission.admit("f"))
        self.assertEqual(told, [True])
        self.admission.done("a")  # 3 waiting
        self.assertEqual(told, [True])
        self.admission.done("b")  # 2 waiting
        self.assertEqual(told, [True, False])
        self.admission.stop()
        for d in held[4:]:
            self.failureResultOf(d, ConnectionDeny)

    def test_noLimit(self) -> None:
        admission = Admission(0, self.clock, 10, 60)
        for i in range(100):
            self.assertIsNone(admission.admit(i))
        self.assertEqual(admission.registering, 0)

    def test_stopRefusesTheWaiting(self) -> None:
        self.admission.admit("a")
        self.admission.admit("b")
        c = self.admission.admit("c")
        assert c is not None
        self.admission.stop()
        self.failureResultOf(c, ConnectionDeny)
        self.assertEqual(self.clock.getDelayedCalls(), [])


def reg(sn: str) -> dict[str, Any]:
    return {"cmd": "reg", "sn": sn, "cpusn": "CPU-" + sn, "devinfo": {"modelname": "tfs30"}}


class ServerAdmissionTests(SynchronousTestCase):
    """The terminal server with C{--max-registering 1}: upgrades held, answered, refused."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = syncSQLiteStore(self.mktemp() + ".sqlite3", self.clock, SQLiteStore)
        self.addCleanup(stopSync, self.store)
        self.server = buildServer(
            ServerConfig(maxRegistering=1, regTimeout=30, handshakeTimeout=10),
            reactor,
            self.store,
            clock=self.clock,
        )
        self.metrics = self.server.context.metrics

    def connect(self) -> MemoryTerminal:
        term = MemoryTerminal(self.server.factory, "/pub/chat")
        self.addCleanup(term.lose)
        return term

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        value: float | None = self.metrics.registry.get_sample_value(name, labels)
        return value

    def test_secondUpgradeHeldUntilTheFirstRegisters(self) -> None:
        first = self.connect()
        self.assertEqual(first.status, SWITCHING)
        second = self.connect()
        self.assertEqual(second.status, b"")  # not answered yet
        self.assertEqual(self.sample("tm20_upgrades_held_total"), 1)
        self.assertIn(b"tm20_upgrades_waiting 1.0", self.metrics.render())
        # held longer than the handshake timeout: the wait is the server's, not the terminal's
        self.clock.advance(11)
        self.assertFalse(second.transport.disconnecting)
        first.send(reg("A1"))
        [answer] = first.messages()
        self.assertEqual((answer["ret"], answer["result"]), ("reg", True))
        self.assertTrue(second.transport.value().startswith(SWITCHING))
        self.assertIn(b"tm20_upgrades_waiting 0.0", self.metrics.render())

    def test_aHeldUpgradeThatClosesLeavesTheLine(self) -> None:
        first = self.connect()
        second = self.connect()
        third = self.connect()
        second.lose()
        self.assertEqual(self.server.factory.admission.waiting, 1)
        first.send(reg("A1"))
        self.assertTrue(third.transport.value().startswith(SWITCHING))
        self.assertEqual(second.transport.value(), b"")

    def test_aClosedConnectionFreesItsSlot(self) -> None:
        first = self.connect()
        second = self.connect()
        first.lose()  # closed before its reg
        self.assertTrue(second.transport.value().startswith(SWITCHING))

    def test_slotsOfConnectionsThatNeverRegisterAreTakenBack(self) -> None:
        self.connect()
        second = self.connect()
        self.clock.advance(9)  # the first's slot stays (it never registers: 10 s)
        third = self.connect()
        self.clock.advance(1)
        self.assertTrue(second.transport.value().startswith(SWITCHING))
        self.clock.advance(10)  # second's slot taken back: third goes on
        self.assertTrue(third.transport.value().startswith(SWITCHING))

    def test_heldPastTheRegTimeoutIsRefusedWithRetryAfter(self) -> None:
        factory = self.server.factory
        factory.admission.slotSeconds = 1000  # a slot is never taken back here
        self.connect()
        second = self.connect()
        self.clock.advance(29.9)
        self.assertEqual(second.transport.value(), b"")
        self.clock.advance(0.1)
        answer = second.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 503"), answer)
        self.assertIn(b"\r\nRetry-After: 5\r\n", answer)
        self.assertEqual(self.sample("tm20_connections_refused_total", {"reason": "busy"}), 1)


def reading(port: Any) -> bool:
    """Whether the reactor reads (accepts on) C{port}."""
    return port in IReactorFDSet(reactor).getReaders()


class AcceptPausedTests(TestCase):
    """A real listening server stops accepting while the line is full, and resumes."""

    @inlineCallbacks
    def test_portStopsAndResumesReading(self) -> Any:
        store = SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor)
        config = ServerConfig(ports=("tcp:0:interface=127.0.0.1",), maxRegistering=1)
        service = TM20Service(buildServer(config, reactor, store))
        service.startService()
        [port] = yield service.ready
        self.addCleanup(service.stopService)
        self.assertTrue(reading(port))
        admission = service.server.factory.admission
        admission.admit("registering")
        held = [admission.admit(f"waiting{i}") for i in range(3)]
        self.assertFalse(admission.crowded)  # pauses only at ACCEPT_PAUSE_FACTOR (4) waiting
        self.assertTrue(reading(port))
        held.append(admission.admit("waiting3"))
        self.assertTrue(admission.crowded)
        self.assertFalse(reading(port))
        for name in ("registering", "waiting0"):
            admission.done(name)  # each gives its slot to the next: 2 still waiting
        self.assertFalse(admission.crowded)
        self.assertTrue(reading(port))
        for d in held:
            assert d is not None
            d.addErrback(lambda f: f.trap(ConnectionDeny))  # the 2 left: 503 at shutdown
