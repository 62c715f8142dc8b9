"""
Options of `twistd tm20`: command line > environment > default, and clear usage errors.

Each option has a test of its own (like magic-wormhole's test_config.py) that sets it on the
command line and through its environment variable and compares the WHOLE resulting
configuration with the defaults changed by that one option; a test fails when a declared
option has none.  README's configuration table is checked against the declarations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from tm20.config import OPTIONS, ServerConfig
from tm20.options import README_BEGIN, README_END, readmeSection, readmeTable
from tm20.tap import Options

README = Path(__file__).resolve().parents[1] / "README.md"
DEFAULTS = ServerConfig()


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


class EachOptionTests(SynchronousTestCase):
    """
    One test per option: C{test_<name>} (dashes as underscores).  L{check} parses the command
    line and, separately, the environment, and compares the whole L{ServerConfig} with
    L{DEFAULTS} changed by C{changes}.
    """

    def check(self, argv: list[str], env: dict[str, str], **changes: Any) -> None:
        expected = attrs.evolve(DEFAULTS, **changes)
        self.assertEqual(parse(argv).toConfig(), expected, argv)
        if env:
            self.assertEqual(parse([], env).toConfig(), expected, env)

    def test_everyOptionHasItsTest(self) -> None:
        names = {o.name.replace("-", "_") for o in OPTIONS}
        tested = {n[len("test_") :] for n in dir(self) if n.startswith("test_")}
        self.assertEqual(sorted(names - tested), [])

    def test_defaultsAreTheDeclaredOnes(self) -> None:
        self.assertEqual(parse([]).toConfig(), DEFAULTS)
        self.assertEqual(
            parse([], {n: "" for n in (o.env for o in OPTIONS) if n}).toConfig(), DEFAULTS
        )

    def test_port(self) -> None:
        self.check(["-p", "7790"], {"TM20_WEBSOCKET_PORT": "7790"}, ports=("7790",))
        self.check(
            ["--port", "7790", "--port", "ssl:7443:privateKey=k.pem"],
            {"TM20_WEBSOCKET_PORT": " 7790 ,ssl:7443:privateKey=k.pem,"},
            ports=("7790", "ssl:7443:privateKey=k.pem"),
        )

    def test_database(self) -> None:
        self.check(
            ["-d", "postgresql://u@db/tm20"],
            {"DATABASE_URL": "postgresql://u@db/tm20"},
            database="postgresql://u@db/tm20",
        )
        self.check(
            ["--database", "sqlite:/x.db"],
            {"DATABASE_URL": "sqlite:/x.db"},
            database="sqlite:/x.db",
        )

    def test_heartbeat_interval(self) -> None:
        self.check(
            ["--heartbeat-interval", "5"], {"TM20_HEARTBEAT_INTERVAL": "5"}, heartbeatInterval=5.0
        )

    def test_connection_timeout(self) -> None:
        self.check(
            ["--connection-timeout", "0"], {"TM20_CONNECTION_TIMEOUT": "0"}, connectionTimeout=0.0
        )

    def test_require_whitelist(self) -> None:
        self.check(["--require-whitelist"], {"TM20_REQUIRE_WHITELIST": "1"}, requireWhitelist=True)
        self.check([], {"TM20_REQUIRE_WHITELIST": "0"})

    def test_reg_timeout(self) -> None:
        self.check(["--reg-timeout", "7.5"], {"TM20_REG_TIMEOUT": "7.5"}, regTimeout=7.5)

    def test_handshake_timeout(self) -> None:
        self.check(
            ["--handshake-timeout", "2"], {"TM20_HANDSHAKE_TIMEOUT": "2"}, handshakeTimeout=2.0
        )
        with self.assertRaises(UsageError):
            parse(["--handshake-timeout", "0"])

    def test_command_timeout(self) -> None:
        self.check(["--command-timeout", "3"], {"TM20_COMMAND_TIMEOUT": "3"}, commandTimeout=3.0)

    def test_max_message_size(self) -> None:
        self.check(
            ["--max-message-size", "2048"], {"TM20_MAX_MESSAGE_SIZE": "2048"}, maxMessageSize=2048
        )

    def test_max_prereg_message_size(self) -> None:
        self.check(
            ["--max-prereg-message-size", "0"],
            {"TM20_MAX_PREREG_MESSAGE_SIZE": "0"},
            maxPreRegMessageSize=0,
        )

    def test_http_body_timeout(self) -> None:
        self.check(
            ["--http-body-timeout", "2.5"], {"TM20_HTTP_BODY_TIMEOUT": "2.5"}, httpBodyTimeout=2.5
        )

    def test_max_connections(self) -> None:
        self.check(["--max-connections", "0"], {"TM20_MAX_CONNECTIONS": "0"}, maxConnections=0)

    def test_max_connections_per_ip(self) -> None:
        self.check(
            ["--max-connections-per-ip", "7"],
            {"TM20_MAX_CONNECTIONS_PER_IP": "7"},
            maxConnectionsPerIP=7,
        )

    def test_max_registering(self) -> None:
        self.check(["--max-registering", "0"], {"TM20_MAX_REGISTERING": "0"}, maxRegistering=0)
        with self.assertRaises(UsageError):
            parse(["--max-registering", "-1"])

    def test_terminal_networks(self) -> None:
        self.check(
            ["--terminal-networks", "10.0.0.0/8, 192.168.1.0/24"],
            {"TM20_TERMINAL_NETWORKS": "10.0.0.0/8,192.168.1.0/24"},
            terminalNetworks=("10.0.0.0/8", "192.168.1.0/24"),
        )
        with self.assertRaises(UsageError) as raised:
            parse([], {"TM20_TERMINAL_NETWORKS": "10.0.0.0/33"})
        self.assertIn("TM20_TERMINAL_NETWORKS", str(raised.exception))

    def test_trusted_proxies(self) -> None:
        self.check(
            ["--trusted-proxies", "127.0.0.1/32"],
            {"TM20_TRUSTED_PROXIES": "127.0.0.1/32"},
            trustedProxies=("127.0.0.1/32",),
        )

    def test_backlog(self) -> None:
        self.check(["--backlog", "50"], {"TM20_BACKLOG": "50"}, backlog=50)
        with self.assertRaises(UsageError):
            parse(["--backlog", "0"])

    def test_gc_threshold(self) -> None:
        self.check(["--gc-threshold", "50000"], {"TM20_GC_THRESHOLD": "50000"}, gcThreshold=50_000)
        self.check(["--gc-threshold", "0"], {"TM20_GC_THRESHOLD": "0"}, gcThreshold=0)
        with self.assertRaises(UsageError):
            parse(["--gc-threshold", "-1"])

    def test_pool_size(self) -> None:
        self.check(["--pool-size", "9"], {"TM20_DB_POOL_SIZE": "9"}, poolSize=9)

    def test_timezone(self) -> None:
        self.check(
            ["--timezone", "Europe/Paris"],
            {"TM20_TIMEZONE": "Europe/Paris"},
            defaultTimezone="Europe/Paris",
        )

    def test_api_token(self) -> None:
        self.check(
            ["--api-token", "ops:s3cret", "--api-token", "bare"],
            {"TM20_API_TOKENS": "ops:s3cret, bare"},
            apiTokens=("ops:s3cret", "bare"),
        )

    def test_silent_after(self) -> None:
        self.check(["--silent-after", "0"], {"TM20_SILENT_AFTER": "0"}, silentAfter=0.0)

    def test_clock_drift_threshold(self) -> None:
        self.check(
            ["--clock-drift-threshold", "45"],
            {"TM20_CLOCK_DRIFT_THRESHOLD": "45"},
            clockDriftThreshold=45.0,
        )

    def test_auto_settime_drift(self) -> None:
        self.check(
            ["--auto-settime-drift", "90"], {"TM20_AUTO_SETTIME_DRIFT": "90"}, autoSettimeDrift=90.0
        )

    def test_fetch_missing_logs(self) -> None:
        self.check(
            ["--fetch-missing-logs", "0"],
            {"TM20_FETCH_MISSING_LOGS": "off"},
            fetchMissingLogs=False,
        )
        self.check(["--fetch-missing-logs", "yes"], {"TM20_FETCH_MISSING_LOGS": "1"})

    def test_event_retention(self) -> None:
        self.check(
            ["--event-retention", "12h"], {"TM20_EVENT_RETENTION": "12h"}, eventRetention=43200.0
        )
        self.check(["--event-retention", "0"], {"TM20_EVENT_RETENTION": "0"}, eventRetention=0.0)

    def test_event_poll_interval(self) -> None:
        self.check(
            ["--event-poll-interval", "250ms"],
            {"TM20_EVENT_POLL_INTERVAL": "250ms"},
            eventPollInterval=0.25,
        )

    def test_sse_heartbeat(self) -> None:
        self.check(["--sse-heartbeat", "1m"], {"TM20_SSE_HEARTBEAT": "1m"}, sseHeartbeat=60.0)

    def test_webhook_timeout(self) -> None:
        self.check(["--webhook-timeout", "3"], {"TM20_WEBHOOK_TIMEOUT": "3s"}, webhookTimeout=3.0)

    def test_webhook_concurrency(self) -> None:
        self.check(
            ["--webhook-concurrency", "4"], {"TM20_WEBHOOK_CONCURRENCY": "4"}, webhookConcurrency=4
        )

    def test_webhook_batch_size(self) -> None:
        self.check(
            ["--webhook-batch-size", "20"], {"TM20_WEBHOOK_BATCH_SIZE": "20"}, webhookBatchSize=20
        )

    def test_webhook_retry_schedule(self) -> None:
        self.check(
            ["--webhook-retry-schedule", " 1s,2m "],
            {"TM20_WEBHOOK_RETRY_SCHEDULE": "1s,2m"},
            webhookRetrySchedule="1s,2m",
        )

    def test_webhook_networks(self) -> None:
        self.check(
            ["--webhook-networks", "10.0.0.0/8"],
            {"TM20_WEBHOOK_NETWORKS": "10.0.0.0/8"},
            webhookNetworks=("10.0.0.0/8",),
        )

    def test_no_sinks(self) -> None:
        self.check(["--no-sinks"], {"TM20_NO_SINKS": "1"}, runSinks=False)
        self.assertIs(parse(["--no-sinks"])["no-sinks"], True)

    def test_reconcile_interval(self) -> None:
        self.check(
            ["--reconcile-interval", "90"],
            {"TM20_RECONCILE_INTERVAL": "90"},
            reconcileInterval=90.0,
        )

    def test_reconcile_max_outstanding(self) -> None:
        self.check(
            ["--reconcile-max-outstanding", "5"],
            {"TM20_RECONCILE_MAX_OUTSTANDING": "5"},
            reconcileMaxOutstanding=5,
        )

    def test_access_control(self) -> None:
        self.check(
            ["--access-control", "Always"],
            {"TM20_ACCESS_CONTROL": "always"},
            accessControl="always",
        )
        self.check(["--access-control", "auto"], {"TM20_ACCESS_CONTROL": "auto"})
        with self.assertRaises(UsageError) as raised:
            parse([], {"TM20_ACCESS_CONTROL": "sometimes"})
        self.assertEqual(str(raised.exception), "--access-control must be one of auto, always")

    def test_access_max_age(self) -> None:
        self.check(["--access-max-age", "1m"], {"TM20_ACCESS_MAX_AGE": "60"}, accessMaxAge=60.0)
        with self.assertRaises(UsageError) as raised:
            parse(["--access-max-age", "x"])
        self.assertIn("access-max-age", str(raised.exception))

    def test_access_reply_budget(self) -> None:
        self.check(
            ["--access-reply-budget", "0.2"],
            {"TM20_ACCESS_REPLY_BUDGET": "0.2s"},
            accessReplyBudget=0.2,
        )
        with self.assertRaises(UsageError) as raised:
            parse(["--access-reply-budget", "0"])
        self.assertIn("access-reply-budget", str(raised.exception))

    def test_access_fallback(self) -> None:
        self.check(
            ["--access-fallback", "cached"],
            {"TM20_ACCESS_FALLBACK": "Cached"},
            accessFallback="cached",
        )
        self.assertEqual(
            parse(["--access-fallback", "deny"], {"TM20_ACCESS_FALLBACK": "cached"})
            .toConfig()
            .accessFallback,
            "deny",
        )
        with self.assertRaises(UsageError) as raised:
            parse(["--access-fallback", "open"])
        self.assertIn("--access-fallback", str(raised.exception))

    def test_access_refresh_interval(self) -> None:
        self.check(
            ["--access-refresh-interval", "0"],
            {"TM20_ACCESS_REFRESH_INTERVAL": "0"},
            accessRefreshInterval=0.0,
        )

    def test_node_id(self) -> None:
        self.check(["--node-id", "edge-a"], {"TM20_NODE_ID": "edge-a"}, nodeId="edge-a")
        with self.assertRaises(UsageError) as raised:
            parse(["--node-id", "has space"])
        self.assertIn("--node-id must be 1 to 200 printable characters", str(raised.exception))

    def test_node_lease(self) -> None:
        self.check(["--node-lease", "9s"], {"TM20_NODE_LEASE": "9"}, nodeLease=9.0)
        with self.assertRaises(UsageError) as raised:
            parse(["--node-lease", "1s"])
        self.assertIn("--node-lease must be at least 3s", str(raised.exception))

    def test_workers(self) -> None:
        pg = "postgresql://u@db/tm20"
        self.check(
            ["--workers", "2", "--database", pg],
            {"TM20_WORKERS": "2", "DATABASE_URL": pg},
            workers=2,
            database=pg,
        )
        self.assertGreaterEqual(parse(["--workers", "auto", "--database", pg])["workers"], 1)
        with self.assertRaises(UsageError) as raised:
            parse(["--workers", "2"])
        self.assertIn("needs PostgreSQL: a SQLite database is one file", str(raised.exception))
        with self.assertRaises(UsageError) as raised:
            parse(["--workers", "2", "--port", "systemd:domain=INET:index=0", "--database", pg])
        self.assertIn("only tcp, tcp6, unix and ssl ports can be adopted", str(raised.exception))
        self.assertEqual(
            parse(["--workers", "2", "--port", "ssl:7443:privateKey=k.pem", "--database", pg])[
                "workers"
            ],
            2,
        )
        with self.assertRaises(UsageError) as raised:
            parse(["--workers", "0", "--database", pg])
        self.assertIn("--workers must be at least 1", str(raised.exception))

    def test_console_idle(self) -> None:
        self.check(["--console-idle", "8h"], {"TM20_CONSOLE_IDLE": "8h"}, consoleIdle=28800.0)
        with self.assertRaises(UsageError) as raised:
            parse(["--console-idle", "0"])
        self.assertIn("--console-idle must be at least 1s", str(raised.exception))

    def test_log_format(self) -> None:
        self.check(["--log-format", "JSON"], {"TM20_LOG_FORMAT": "json"}, logFormat="json")
        with self.assertRaises(UsageError) as raised:
            parse([], {"TM20_LOG_FORMAT": "xml"})
        self.assertEqual(str(raised.exception), "--log-format must be one of text, json")

    def test_log_level(self) -> None:
        self.check(["--log-level", "warn"], {"TM20_LOG_LEVEL": "warn"}, logLevel="warn")
        with self.assertRaises(UsageError) as raised:
            parse(["--log-level", "loud"])
        self.assertEqual(
            str(raised.exception), "--log-level must be one of debug, info, warn, error, critical"
        )

    def test_debug(self) -> None:
        self.check(["--debug"], {"DEBUG": "1"}, debug=True, logLevel="debug")
        self.check(["--debug", "--log-level", "error"], {}, debug=True, logLevel="error")
        self.assertEqual(
            parse([], {"DEBUG": "1", "TM20_LOG_LEVEL": "warn"}).toConfig(),
            attrs.evolve(DEFAULTS, debug=True, logLevel="warn"),
        )

    def test_wait_for_database(self) -> None:
        self.check(
            ["--wait-for-database", "30"], {"TM20_WAIT_FOR_DATABASE": "30"}, waitForDatabase=30.0
        )

    def test_migrate_only(self) -> None:
        self.check(["--migrate-only"], {}, migrateOnly=True)
        self.assertIs(parse(["--migrate-only"])["migrate-only"], True)


class ReadmeTests(SynchronousTestCase):
    """README's configuration table is the one made from the declarations."""

    def test_readmeTableIsTheDeclaredOne(self) -> None:
        readme = README.read_text(encoding="utf-8")
        self.assertIn(README_BEGIN, readme)
        self.assertIn(README_END, readme)
        self.assertEqual(
            readmeSection(readme),
            readmeTable(OPTIONS),
            "README's configuration table differs from tm20/config.py:"
            " run `.venv/bin/python -m tm20.config --write README.md`",
        )
        configuration = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
        self.assertIn(README_BEGIN, configuration)

    def test_everyOptionIsInHelp(self) -> None:
        usage = str(Options())
        for declared in OPTIONS:
            self.assertIn(f"--{declared.name}", usage)
            if declared.env:
                self.assertIn(declared.env, usage)


class NetworkOptionTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = parse([]).toConfig()
        self.assertEqual(config.maxConnections, 50_000)
        self.assertEqual(config.maxConnectionsPerIP, 1_000)
        self.assertEqual(config.terminalNetworks, ())
        self.assertEqual(config.trustedProxies, ())

    def test_environmentAndCommandLine(self) -> None:
        env = {
            "TM20_MAX_CONNECTIONS": "100",
            "TM20_MAX_CONNECTIONS_PER_IP": "10",
            "TM20_TERMINAL_NETWORKS": "10.0.0.0/8, 192.168.0.0/16",
            "TM20_TRUSTED_PROXIES": "127.0.0.1",
        }
        config = parse([], env).toConfig()
        self.assertEqual(config.maxConnections, 100)
        self.assertEqual(config.maxConnectionsPerIP, 10)
        self.assertEqual(config.terminalNetworks, ("10.0.0.0/8", "192.168.0.0/16"))
        self.assertEqual(config.trustedProxies, ("127.0.0.1",))
        config = parse(
            ["--max-connections", "7", "--terminal-networks", "172.16.0.0/12"], env
        ).toConfig()
        self.assertEqual(config.maxConnections, 7)
        self.assertEqual(config.terminalNetworks, ("172.16.0.0/12",))
        self.assertEqual(config.maxConnectionsPerIP, 10)

    def test_badValues(self) -> None:
        with self.assertRaises(UsageError) as e:
            parse(["--terminal-networks", "10.0.0.0/8,not-a-net"])
        self.assertIn("--terminal-networks", str(e.exception))
        self.assertIn("not-a-net", str(e.exception))
        with self.assertRaises(UsageError):
            parse([], {"TM20_MAX_CONNECTIONS": "-1"})
        with self.assertRaises(UsageError):
            parse(["--trusted-proxies", "1.2.3.4/99"])


class PreRegOptionTests(SynchronousTestCase):
    """C{--max-prereg-message-size} and C{--http-body-timeout}: command line > environment."""

    def parse(self, argv: list[str], env: dict[str, str]) -> ServerConfig:
        from tm20.tap import Options

        options = Options(environ=env)
        options.parseOptions(argv)
        return options.toConfig()

    def test_defaults(self) -> None:
        config = self.parse([], {})
        self.assertEqual((config.maxPreRegMessageSize, config.httpBodyTimeout), (16384, 30.0))

    def test_environmentAndCommandLine(self) -> None:
        env = {"TM20_MAX_PREREG_MESSAGE_SIZE": "8192", "TM20_HTTP_BODY_TIMEOUT": "5"}
        config = self.parse([], env)
        self.assertEqual((config.maxPreRegMessageSize, config.httpBodyTimeout), (8192, 5.0))
        config = self.parse(["--max-prereg-message-size", "0", "--http-body-timeout", "2.5"], env)
        self.assertEqual((config.maxPreRegMessageSize, config.httpBodyTimeout), (0, 2.5))

    def test_badValuesNamed(self) -> None:
        from twisted.python.usage import UsageError

        for argv, needle in (
            (["--max-prereg-message-size", "-1"], "--max-prereg-message-size"),
            (["--http-body-timeout", "soon"], "--http-body-timeout"),
        ):
            with self.assertRaises(UsageError) as raised:
                self.parse(argv, {})
            self.assertIn(needle, str(raised.exception))


class EventOptionTests(SynchronousTestCase):
    def options(self, argv: list[str], environ: dict[str, str] | None = None) -> ServerConfig:
        options = Options(environ or {})
        options.parseOptions(argv)
        return options.toConfig()

    def test_defaults(self) -> None:
        config = self.options([])
        self.assertEqual(config.eventRetention, 30 * 86400)
        self.assertEqual(config.webhookNetworks, ())
        self.assertEqual(config.webhookTimeout, 10.0)
        self.assertTrue(config.runSinks)

    def test_commandLineAndEnvironment(self) -> None:
        config = self.options(
            [
                "--event-retention",
                "12h",
                "--webhook-networks",
                "10.0.0.0/8, 192.168.0.0/16",
                "--webhook-retry-schedule",
                "1s,2m",
                "--webhook-timeout",
                "3",
                "--webhook-concurrency",
                "4",
                "--webhook-batch-size",
                "20",
                "--sse-heartbeat",
                "30s",
            ]
        )
        self.assertEqual(config.eventRetention, 43200)
        self.assertEqual(config.webhookNetworks, ("10.0.0.0/8", "192.168.0.0/16"))
        self.assertEqual(config.webhookRetrySchedule, "1s,2m")
        self.assertEqual(
            (config.webhookTimeout, config.webhookConcurrency, config.webhookBatchSize),
            (3.0, 4, 20),
        )
        self.assertEqual(config.sseHeartbeat, 30.0)
        config = self.options(
            [], {"TM20_EVENT_RETENTION": "0", "TM20_WEBHOOK_NETWORKS": "127.0.0.1"}
        )
        self.assertEqual((config.eventRetention, config.webhookNetworks), (0, ("127.0.0.1",)))
        self.assertFalse(self.options(["--no-sinks"]).runSinks)
        self.assertFalse(self.options([], {"TM20_NO_SINKS": "1"}).runSinks)

    def test_refused(self) -> None:
        for argv in (
            ["--event-retention", "soon"],
            ["--webhook-networks", "10.0.0.0/99"],
            ["--webhook-retry-schedule", "5s,never"],
            ["--webhook-concurrency", "0"],
        ):
            with self.assertRaises(UsageError):
                self.options(argv)


class WatchOptionParsingTests(SynchronousTestCase):
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
