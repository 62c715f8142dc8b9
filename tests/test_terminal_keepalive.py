"""Keep-alive without WebSocket pings: probe after silence, expire after the timeout."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tm20.terminal.keepalive import KeepAlive


class KeepAliveTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.probes: list[float] = []
        self.expired: list[float] = []
        self.ka = KeepAlive(
            self.clock,
            30,
            120,
            probe=lambda: self.probes.append(self.clock.seconds()),
            expire=lambda: self.expired.append(self.clock.seconds()),
        )
        self.ka.start()

    def test_probesAfterSilenceThenExpires(self) -> None:
        self.clock.pump([10] * 13)  # 130 s of silence
        self.assertEqual(self.probes, [30, 60, 90])
        self.assertEqual(self.expired, [120])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_trafficPostponesEverything(self) -> None:
        for _ in range(20):  # traffic every 25 s for 500 s
            self.clock.advance(25)
            self.ka.touch()
        self.assertEqual(self.probes, [])
        self.assertEqual(self.expired, [])

    def test_answeredProbeKeepsAlive(self) -> None:
        for _ in range(10):
            self.clock.advance(30)
            self.clock.advance(1)
            self.ka.touch()  # the terminal answers the probe
        self.assertEqual(len(self.probes), 10)
        self.assertEqual(self.expired, [])

    def test_stopCancels(self) -> None:
        self.ka.stop()
        self.clock.advance(1000)
        self.assertEqual(self.probes, [])
        self.assertEqual(self.expired, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class SharedTimerTests(SynchronousTestCase):
    """Every keep-alive on a clock shares one timer; each still fires on its own schedule."""

    def test_oneDelayedCallForManyConnections(self) -> None:
        clock = Clock()
        probes: list[tuple[int, float]] = []
        expired: list[tuple[int, float]] = []
        keepAlives = []
        for i in range(50):
            ka = KeepAlive(
                clock,
                30,
                120,
                probe=lambda i=i: probes.append((i, clock.seconds())),  # type: ignore[misc]
                expire=lambda i=i: expired.append((i, clock.seconds())),  # type: ignore[misc]
            )
            ka.start()
            keepAlives.append(ka)
            clock.advance(0.5)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        keepAlives[0].stop()
        for _ in range(300):
            clock.advance(0.1)
            keepAlives[1].touch()
        # Connection i started at i/2 s: probed 30 s later, never early, at most 0.1 s late.
        firstProbes = {i: at for i, at in reversed(probes)}
        self.assertNotIn(0, firstProbes)
        self.assertNotIn(1, firstProbes)
        for i, at in firstProbes.items():
            self.assertGreaterEqual(at, i / 2 + 30 - 1e-6)
            self.assertLess(at, i / 2 + 30 + 0.1 + 1e-6)
        for ka in keepAlives:
            ka.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(expired, [])
