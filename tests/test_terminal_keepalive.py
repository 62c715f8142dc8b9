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
