"""L{tm20.services.outage.OutageLog}: one warning when an outage starts, one when it ends."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase
from zope.interface import provider

from tm20.services.outage import OutageLog


class OutageLogTests(TestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, Any]] = []

        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace", "").endswith("OutageLog"):
                self.events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.clock = Clock()
        self.outage = OutageLog("log batches", self.clock)

    def test_oneLineEachWayWithTheCount(self) -> None:
        self.outage.succeeded()  # no outage: nothing to say
        for _ in range(1000):
            self.outage.refusedOne(10, "no connection to PostgreSQL")
            self.clock.advance(0.005)
        self.outage.succeeded()
        self.outage.succeeded()
        self.assertEqual(
            [(e["log_level"], e["log_format"].split(",")[0].split(":")[0]) for e in self.events],
            [(LogLevel.warn, "store unavailable"), (LogLevel.warn, "store available again")],
        )
        self.assertEqual(self.events[0]["error"], "no connection to PostgreSQL")
        end = self.events[1]
        self.assertEqual((end["refused"], end["items"]), (1000, 10_000))
        self.assertAlmostEqual(end["seconds"], 5.0)
        self.assertFalse(self.outage.ongoing)

    def test_eachOutageCountedApart(self) -> None:
        self.outage.refusedOne(1, "down")
        self.outage.succeeded()
        self.outage.refusedOne(2, "down")
        self.outage.refusedOne(3, "down")
        self.outage.succeeded()
        self.assertEqual(self.outage.outages, 2)
        self.assertEqual(
            [(e.get("refused"), e.get("items")) for e in self.events if "refused" in e],
            [(1, 1), (2, 5)],
        )
