"""Options of `twistd tm20`: command line > environment > default, and clear usage errors."""

from __future__ import annotations

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from tm20.config import ServerConfig
from tm20.service import listenSpec
from tm20.tap import Options


def parse(argv: list[str], env: dict[str, str] | None = None) -> Options:
    o = Options(environ=env or {})
    o.parseOptions(argv)
    return o


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = parse([]).toConfig()
        self.assertEqual(config, ServerConfig(ports=("7788",)))
        self.assertEqual(config.heartbeatInterval, 30)
        self.assertEqual(config.connectionTimeout, 120)
        self.assertFalse(config.requireWhitelist)
        self.assertEqual(config.database, "sqlite:tm20.sqlite3")
        self.assertEqual(config.maxMessageSize, 4 * 1024 * 1024)

    def test_environment(self) -> None:
        env = {
            "TM20_WEBSOCKET_PORT": "7790, ssl:7443:privateKey=k.pem:certKey=c.pem",
            "TM20_HEARTBEAT_INTERVAL": "15",
            "TM20_CONNECTION_TIMEOUT": "60",
            "TM20_REQUIRE_WHITELIST": "1",
            "DATABASE_URL": "postgresql://tm20@db/tm20",
            "TM20_API_TOKENS": "ops:s3cret,payroll:other",
            "TM20_TIMEZONE": "Africa/Kinshasa",
            "TM20_LOG_FORMAT": "json",
        }
        config = parse([], env).toConfig()
        self.assertEqual(config.ports, ("7790", "ssl:7443:privateKey=k.pem:certKey=c.pem"))
        self.assertEqual(config.heartbeatInterval, 15.0)
        self.assertEqual(config.connectionTimeout, 60.0)
        self.assertTrue(config.requireWhitelist)
        self.assertEqual(config.database, "postgresql://tm20@db/tm20")
        self.assertEqual(config.apiTokens, ("ops:s3cret", "payroll:other"))
        self.assertEqual(config.defaultTimezone, "Africa/Kinshasa")
        self.assertEqual(config.logFormat, "json")

    def test_commandLineWins(self) -> None:
        env = {
            "TM20_WEBSOCKET_PORT": "7790",
            "TM20_HEARTBEAT_INTERVAL": "15",
            "DATABASE_URL": "sqlite:env.db",
        }
        o = parse(
            [
                "--port",
                "7788",
                "--port",
                "tcp:7799:interface=127.0.0.1",
                "--heartbeat-interval",
                "5",
                "--database",
                "sqlite:cli.db",
                "--require-whitelist",
                "--api-token",
                "a:b",
            ],
            env,
        )
        config = o.toConfig()
        self.assertEqual(config.ports, ("7788", "tcp:7799:interface=127.0.0.1"))
        self.assertEqual(config.heartbeatInterval, 5.0)
        self.assertEqual(config.database, "sqlite:cli.db")
        self.assertTrue(config.requireWhitelist)
        self.assertEqual(config.apiTokens, ("a:b",))

    def test_debugLowersLogLevel(self) -> None:
        self.assertEqual(parse([], {"DEBUG": "1"})["log-level"], "debug")
        self.assertEqual(parse(["--debug", "--log-level", "warn"])["log-level"], "warn")

    def test_debugKeepsAnExplicitLevelInAnySpelling(self) -> None:
        for argv in (
            ["--debug", "--log-level=warn"],
            ["--log-level=warn", "--debug"],
            ["--debug", "--log-level", "warn"],
        ):
            self.assertEqual(parse(argv)["log-level"], "warn", argv)
        self.assertEqual(parse(["--log-level=error"], {"DEBUG": "1"})["log-level"], "error")
        self.assertEqual(parse(["--debug"], {"TM20_LOG_LEVEL": ""})["log-level"], "debug")

    def test_clusterOptions(self) -> None:
        o = parse(["--node-id", "edge-a", "--node-lease", "9s"])
        self.assertEqual((o["node-id"], o["node-lease"], o["workers"]), ("edge-a", 9.0, 1))
        o = parse([], {"TM20_NODE_ID": "edge-b", "TM20_NODE_LEASE": "30", "TM20_WORKERS": "1"})
        config = o.toConfig()
        self.assertEqual((config.nodeId, config.nodeLease, config.workers), ("edge-b", 30.0, 1))
        with self.assertRaises(UsageError) as raised:
            parse(["--node-lease", "1s"])
        self.assertIn("--node-lease must be at least 3s", str(raised.exception))
        with self.assertRaises(UsageError) as raised:
            parse(["--node-id", "has space"])
        self.assertIn("--node-id", str(raised.exception))

    def test_workers(self) -> None:
        with self.assertRaises(UsageError) as raised:
            parse(["--workers", "2"])
        self.assertIn("needs PostgreSQL: a SQLite database is one file", str(raised.exception))
        pg = ["--database", "postgresql://u@db/tm20"]
        self.assertEqual(parse(["--workers", "2", *pg])["workers"], 2)
        self.assertGreaterEqual(parse(["--workers", "auto", *pg])["workers"], 1)
        self.assertEqual(parse([*pg], {"TM20_WORKERS": "3"})["workers"], 3)
        with self.assertRaises(UsageError) as raised:
            parse(["--workers", "2", "--port", "ssl:7443:privateKey=k.pem", *pg])
        self.assertIn("only tcp, tcp6 and unix ports can be adopted", str(raised.exception))
        with self.assertRaises(UsageError) as raised:
            parse(["--workers", "0", *pg])
        self.assertIn("--workers must be at least 1", str(raised.exception))

    def test_malformedPostgresURLIsAUsageError(self) -> None:
        with self.assertRaises(UsageError) as raised:
            parse(["--database", "postgresql://u@host:notaport/db"])
        self.assertIn("--database: malformed PostgreSQL URL", str(raised.exception))
        self.assertIn("notaport", str(raised.exception))
        with self.assertRaises(UsageError) as raised:
            parse([], {"DATABASE_URL": "postgresql://u@db/tm20?nosuchoption=1"})
        self.assertIn("DATABASE_URL: malformed PostgreSQL URL", str(raised.exception))
        with self.assertRaises(UsageError) as raised:
            parse([], {"DATABASE_URL": "mysql://u:hunter2@db/tm20"})
        self.assertIn("DATABASE_URL must be sqlite:PATH", str(raised.exception))
        self.assertNotIn("hunter2", str(raised.exception))
        self.assertEqual(
            parse(["--database", " postgresql://u:p@db:5433/tm20 "])["database"],
            "postgresql://u:p@db:5433/tm20",
        )

    def test_waitForDatabase(self) -> None:
        self.assertEqual(parse([]).toConfig().waitForDatabase, 0)
        self.assertEqual(parse(["--wait-for-database", "30"]).toConfig().waitForDatabase, 30)
        self.assertEqual(
            parse([], {"TM20_WAIT_FOR_DATABASE": "2.5"}).toConfig().waitForDatabase, 2.5
        )
        with self.assertRaises(UsageError) as raised:
            parse([], {"TM20_WAIT_FOR_DATABASE": "soon"})
        self.assertIn("TM20_WAIT_FOR_DATABASE", str(raised.exception))

    def test_badValues(self) -> None:
        cases = [
            (["--heartbeat-interval", "abc"], {}, "--heartbeat-interval"),
            (["--max-message-size", "10"], {}, "--max-message-size"),
            ([], {"TM20_CONNECTION_TIMEOUT": "-1"}, "TM20_CONNECTION_TIMEOUT"),
            ([], {"TM20_REQUIRE_WHITELIST": "maybe"}, "TM20_REQUIRE_WHITELIST"),
            (["--database", "mysql://x"], {}, "--database"),
            (["--database", "sqlite:"], {}, "sqlite"),
            (["--log-format", "xml"], {}, "--log-format"),
            (["--timezone", "Mars/Olympus"], {}, "time zone"),
        ]
        for argv, env, needle in cases:
            with self.assertRaises(UsageError, msg=repr(argv)) as raised:
                parse(argv, env)
            self.assertIn(needle, str(raised.exception))


class ListenSpecTests(SynchronousTestCase):
    def test_bareNumberAndBacklog(self) -> None:
        self.assertEqual(listenSpec("7788", 1024), "tcp:7788:backlog=1024")
        self.assertEqual(
            listenSpec("tcp:7788:interface=127.0.0.1", 2048),
            "tcp:7788:interface=127.0.0.1:backlog=2048",
        )
        self.assertEqual(
            listenSpec("ssl:7443:privateKey=k:certKey=c", 1024),
            "ssl:7443:privateKey=k:certKey=c:backlog=1024",
        )
        self.assertEqual(listenSpec("tcp:7788:backlog=10", 1024), "tcp:7788:backlog=10")
        self.assertEqual(
            listenSpec("systemd:domain=INET:index=0", 1024), "systemd:domain=INET:index=0"
        )


class ReconcilerOptionsTests(SynchronousTestCase):
    def test_reconcilerOptions(self) -> None:
        """--reconcile-interval and --reconcile-max-outstanding, or their variables."""
        config = parse([]).toConfig()
        self.assertEqual((config.reconcileInterval, config.reconcileMaxOutstanding), (3600.0, 20))
        env = {"TM20_RECONCILE_INTERVAL": "0", "TM20_RECONCILE_MAX_OUTSTANDING": "5"}
        config = parse([], env).toConfig()
        self.assertEqual((config.reconcileInterval, config.reconcileMaxOutstanding), (0.0, 5))
        config = parse(["--reconcile-interval", "90"], env).toConfig()
        self.assertEqual(config.reconcileInterval, 90.0)
        with self.assertRaises(UsageError):
            parse(["--reconcile-max-outstanding", "0"])
        with self.assertRaises(UsageError):
            parse(["--reconcile-interval", "-1"])
