"""The watch's options (C{--silent-after}, C{--clock-drift-threshold}, C{--auto-settime-drift},
C{--fetch-missing-logs}, each with its environment variable, wired into the running server (their parsing: tests/test_options.py)."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase

from tm20.service import buildServer
from tm20.store.sqlite import SQLiteStore
from tm20.tap import Options


def parse(argv: list[str], env: Mapping[str, str] | None = None) -> Options:
    options = Options(environ=env or {})
    options.parseOptions(argv)
    return options


class WatchWiringTests(SynchronousTestCase):
    def test_wiredIntoTheWatch(self) -> None:
        config = parse(
            [
                "--silent-after",
                "120",
                "--clock-drift-threshold",
                "45",
                "--auto-settime-drift",
                "90",
                "--fetch-missing-logs",
                "0",
                "--timezone",
                "Europe/Paris",
            ]
        ).toConfig()
        store = SQLiteStore(self.mktemp() + ".sqlite3", reactor=reactor)
        watch = buildServer(config, reactor, store).context.watch
        self.assertEqual(watch.silence.silentAfter, 120.0)
        self.assertEqual(watch.silence.interval, 12.0)
        self.assertEqual((watch.drift.threshold, watch.drift.autoSettime), (45.0, 90.0))
        self.assertEqual(watch.drift.defaultTimezone, "Europe/Paris")
        self.assertIs(watch.gaps.fetch, False)
