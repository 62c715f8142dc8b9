"""The watch's options: C{--silent-after}, C{--clock-drift-threshold}, C{--auto-settime-drift},
C{--fetch-missing-logs}, each with its environment variable, wired into the running server."""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet import reactor
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from tm20.service import buildServer
from tm20.store.sqlite import SQLiteStore
from tm20.tap import Options


def parse(argv: list[str], env: Mapping[str, str] | None = None) -> Options:
    options = Options(environ=env or {})
    options.parseOptions(argv)
    return options


class WatchOptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = parse([]).toConfig()
        self.assertEqual(config.silentAfter, 3600.0)
        self.assertEqual(config.clockDriftThreshold, 60.0)
        self.assertEqual(config.autoSettimeDrift, 0.0)
        self.assertIs(config.fetchMissingLogs, True)

    def test_environmentThenCommandLine(self) -> None:
        env = {
            "TM20_SILENT_AFTER": "900",
            "TM20_CLOCK_DRIFT_THRESHOLD": "30",
            "TM20_AUTO_SETTIME_DRIFT": "120",
            "TM20_FETCH_MISSING_LOGS": "0",
        }
        config = parse([], env).toConfig()
        self.assertEqual(
            (config.silentAfter, config.clockDriftThreshold, config.autoSettimeDrift),
            (900.0, 30.0, 120.0),
        )
        self.assertIs(config.fetchMissingLogs, False)
        config = parse(
            ["--silent-after", "0", "--auto-settime-drift", "600", "--fetch-missing-logs", "1"],
            env,
        ).toConfig()
        self.assertEqual((config.silentAfter, config.autoSettimeDrift), (0.0, 600.0))
        self.assertIs(config.fetchMissingLogs, True)
        self.assertEqual(config.clockDriftThreshold, 30.0)

    def test_badValuesNameTheOption(self) -> None:
        for argv, env, name in (
            (["--silent-after", "-5"], {}, "--silent-after"),
            (["--auto-settime-drift", "soon"], {}, "--auto-settime-drift"),
            ([], {"TM20_CLOCK_DRIFT_THRESHOLD": "-1"}, "TM20_CLOCK_DRIFT_THRESHOLD"),
            (["--fetch-missing-logs", "maybe"], {}, "--fetch-missing-logs"),
        ):
            with self.assertRaises(UsageError) as e:
                parse(argv, env)
            self.assertIn(name, str(e.exception))

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
