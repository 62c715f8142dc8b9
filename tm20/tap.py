"""
C{twistd tm20}: options and service.

Every option has an environment variable; precedence is command line > environment > default.
The environment is read when the options are parsed (injectable for tests), never at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from twisted.python import usage

from tm20.config import DEFAULT_DATABASE, DEFAULT_PORT, ServerConfig
from tm20.events.sinks import DEFAULT_RETRY_SCHEDULE
from tm20.logs import LOG_FORMATS, LOG_LEVELS
from tm20.startup import oneLine

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise usage.UsageError(f"{name} must be 0 or 1, not {value!r}")


def _number(cast: Callable[[str], Any], minimum: float) -> Callable[[str, str], Any]:
    def convert(name: str, value: str) -> Any:
        try:
            n = cast(value)
        except ValueError:
            raise usage.UsageError(f"{name} must be a number, not {value!r}") from None
        if n < minimum:
            raise usage.UsageError(f"{name} must be at least {minimum:g}, not {value!r}")
        return n

    return convert


def _networks(name: str, value: str) -> tuple[str, ...]:
    from tm20.terminal.limits import parseNetworks

    specs = tuple(p for p in (s.strip() for s in value.split(",")) if p)
    try:
        parseNetworks(specs)
    except ValueError as e:
        raise usage.UsageError(f"{name}: {e}") from None
    return specs


def _database(name: str, value: str) -> str:
    """A C{--database} / C{DATABASE_URL} value, checked: a malformed one is a usage error."""
    url = value.strip()
    if url.startswith("sqlite:"):
        if not url[len("sqlite:") :]:
            raise usage.UsageError(f"{name} sqlite: needs a path, e.g. sqlite:tm20.sqlite3")
        return url
    if url.startswith(("postgresql://", "postgres://")):
        _checkPostgresURL(name, url)
        return url
    raise usage.UsageError(
        f"{name} must be sqlite:PATH or postgresql://..., not {_redactURL(url)!r}"
    )


def _checkPostgresURL(name: str, url: str) -> None:
    """A malformed PostgreSQL URL is a usage error, not a server that never starts."""
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as e:
        raise usage.UsageError(f"{name}: malformed PostgreSQL URL: {e}") from None
    try:
        import psycopg2.extensions

        psycopg2.extensions.parse_dsn(url)
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        return
    except psycopg2.Error as e:
        raise usage.UsageError(f"{name}: malformed PostgreSQL URL: {oneLine(str(e))}") from None


def _redactURL(url: str) -> str:
    """C{url} without a password between C{user:} and C{@}."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        if ":" in credentials:
            return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def _duration(minimum: float) -> Callable[[str, str], float]:
    def convert(name: str, value: str) -> float:
        from tm20.events.sinks import parseDuration

        try:
            seconds = parseDuration(value)
        except ValueError as e:
            raise usage.UsageError(f"{name}: {e}") from None
        if seconds < minimum:
            raise usage.UsageError(f"{name} must be at least {minimum:g}s, not {value!r}")
        return seconds

    return convert


def _schedule(name: str, value: str) -> str:
    from tm20.events.sinks import RetrySchedule

    try:
        RetrySchedule.parse(value)
    except ValueError as e:
        raise usage.UsageError(f"{name}: {e}") from None
    return value.strip()


def _nodeId(name: str, value: str) -> str:
    node = value.strip()
    if not node or len(node) > 200 or any(not c.isprintable() or c.isspace() for c in node):
        raise usage.UsageError(
            f"{name} must be 1 to 200 printable characters without spaces, not {value!r}"
        )
    return node


def _workers(name: str, value: str) -> int:
    """C{auto} (one per core) or a whole number from 1."""
    if value.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    converted: int = _number(int, 1)(name, value)
    return converted


#: option name -> (environment variable, default, converter)
_SETTINGS: dict[str, tuple[str, Any, Callable[[str, str], Any]]] = {
    "database": ("DATABASE_URL", DEFAULT_DATABASE, _database),
    "heartbeat-interval": ("TM20_HEARTBEAT_INTERVAL", 30.0, _number(float, 0)),
    "connection-timeout": ("TM20_CONNECTION_TIMEOUT", 120.0, _number(float, 0)),
    "reg-timeout": ("TM20_REG_TIMEOUT", 60.0, _number(float, 0)),
    "handshake-timeout": ("TM20_HANDSHAKE_TIMEOUT", 10.0, _number(float, 0.1)),
    "command-timeout": ("TM20_COMMAND_TIMEOUT", 30.0, _number(float, 0.1)),
    "max-message-size": ("TM20_MAX_MESSAGE_SIZE", 4 * 1024 * 1024, _number(int, 1024)),
    "max-prereg-message-size": ("TM20_MAX_PREREG_MESSAGE_SIZE", 16 * 1024, _number(int, 0)),
    "http-body-timeout": ("TM20_HTTP_BODY_TIMEOUT", 30.0, _number(float, 0)),
    "backlog": ("TM20_BACKLOG", 1024, _number(int, 1)),
    "pool-size": ("TM20_DB_POOL_SIZE", 4, _number(int, 1)),
    "timezone": ("TM20_TIMEZONE", None, lambda n, v: v or None),
    "log-format": ("TM20_LOG_FORMAT", "text", lambda n, v: v.strip().lower()),
    "log-level": ("TM20_LOG_LEVEL", "info", lambda n, v: v.strip().lower()),
    "max-connections": ("TM20_MAX_CONNECTIONS", 50_000, _number(int, 0)),
    "max-connections-per-ip": ("TM20_MAX_CONNECTIONS_PER_IP", 1_000, _number(int, 0)),
    "terminal-networks": ("TM20_TERMINAL_NETWORKS", (), _networks),
    "trusted-proxies": ("TM20_TRUSTED_PROXIES", (), _networks),
    "wait-for-database": ("TM20_WAIT_FOR_DATABASE", 0.0, _number(float, 0)),
    "silent-after": ("TM20_SILENT_AFTER", 3600.0, _number(float, 0)),
    "clock-drift-threshold": ("TM20_CLOCK_DRIFT_THRESHOLD", 60.0, _number(float, 0)),
    "auto-settime-drift": ("TM20_AUTO_SETTIME_DRIFT", 0.0, _number(float, 0)),
    "fetch-missing-logs": ("TM20_FETCH_MISSING_LOGS", True, _bool),
    "event-retention": ("TM20_EVENT_RETENTION", 30 * 86400.0, _duration(0)),
    "event-poll-interval": ("TM20_EVENT_POLL_INTERVAL", 1.0, _duration(0.01)),
    "sse-heartbeat": ("TM20_SSE_HEARTBEAT", 15.0, _duration(0.1)),
    "webhook-timeout": ("TM20_WEBHOOK_TIMEOUT", 10.0, _duration(0.1)),
    "webhook-concurrency": ("TM20_WEBHOOK_CONCURRENCY", 16, _number(int, 1)),
    "webhook-batch-size": ("TM20_WEBHOOK_BATCH_SIZE", 500, _number(int, 1)),
    "webhook-networks": ("TM20_WEBHOOK_NETWORKS", (), _networks),
    "webhook-retry-schedule": (
        "TM20_WEBHOOK_RETRY_SCHEDULE",
        DEFAULT_RETRY_SCHEDULE,
        _schedule,
    ),
    "reconcile-interval": ("TM20_RECONCILE_INTERVAL", 3600.0, _number(float, 0)),
    "reconcile-max-outstanding": ("TM20_RECONCILE_MAX_OUTSTANDING", 20, _number(int, 1)),
    "node-id": ("TM20_NODE_ID", None, _nodeId),
    "node-lease": ("TM20_NODE_LEASE", 15.0, _duration(3)),
    "workers": ("TM20_WORKERS", 1, _workers),
}


class Options(usage.Options):
    """Options of C{twistd tm20} (and of C{tm20.tac}, from the environment alone)."""

    synopsis = "[options]"
    longdesc = (
        "Serve TM20-WIFI / AiFace terminals (WebSocket+JSON) and the REST API on one port. "
        "Every option can also be set by the environment variable named in its help."
    )

    optFlags = [
        [
            "require-whitelist",
            None,
            "Refuse terminals an operator has not approved [TM20_REQUIRE_WHITELIST=1].",
        ],
        ["debug", None, "Log at debug level [DEBUG=1]."],
        ["migrate-only", None, "Apply database migrations and exit."],
        [
            "no-sinks",
            None,
            "Deliver no events from this process (webhooks, sink plugins); with several"
            " processes on one database, let exactly one deliver [TM20_NO_SINKS=1].",
        ],
    ]
    optParameters = [
        [
            "database",
            "d",
            None,
            f"sqlite:PATH or postgresql://... [DATABASE_URL] (default {DEFAULT_DATABASE})",
        ],
        [
            "heartbeat-interval",
            None,
            None,
            "Probe a terminal silent for this many seconds [TM20_HEARTBEAT_INTERVAL] (30)",
        ],
        [
            "connection-timeout",
            None,
            None,
            "Drop a terminal silent for this many seconds [TM20_CONNECTION_TIMEOUT] (120)",
        ],
        [
            "reg-timeout",
            None,
            None,
            "Drop a connection that sends no reg within this many seconds [TM20_REG_TIMEOUT] (60)",
        ],
        [
            "handshake-timeout",
            None,
            None,
            "WebSocket opening handshake deadline, seconds [TM20_HANDSHAKE_TIMEOUT] (10)",
        ],
        [
            "command-timeout",
            None,
            None,
            "Wait this long for a terminal's reply to a command [TM20_COMMAND_TIMEOUT] (30)",
        ],
        [
            "reconcile-interval",
            None,
            None,
            "Check connected terminals' users against the fleet persons every this many seconds,"
            " 0 never [TM20_RECONCILE_INTERVAL] (3600)",
        ],
        [
            "reconcile-max-outstanding",
            None,
            None,
            "Reconciler commands queued per terminal at once [TM20_RECONCILE_MAX_OUTSTANDING] (20)",
        ],
        [
            "max-message-size",
            None,
            None,
            "Largest WebSocket message, bytes [TM20_MAX_MESSAGE_SIZE] (4194304)",
        ],
        [
            "max-prereg-message-size",
            None,
            None,
            "Largest WebSocket message before a reg is accepted, bytes; 0: --max-message-size"
            " [TM20_MAX_PREREG_MESSAGE_SIZE] (16384)",
        ],
        [
            "http-body-timeout",
            None,
            None,
            "Deadline for a whole HTTP request body, seconds; 0: none [TM20_HTTP_BODY_TIMEOUT] (30)",
        ],
        ["backlog", None, None, "Listen backlog [TM20_BACKLOG] (1024)"],
        ["pool-size", None, None, "PostgreSQL connections [TM20_DB_POOL_SIZE] (4)"],
        [
            "timezone",
            None,
            None,
            "IANA time zone of terminals without their own [TM20_TIMEZONE] (server's)",
        ],
        [
            "max-connections",
            None,
            None,
            "Open connections allowed at once, all ports; beyond, 503 (0: no limit)"
            " [TM20_MAX_CONNECTIONS] (50000)",
        ],
        [
            "max-connections-per-ip",
            None,
            None,
            "Open connections allowed at once from one address (terminals behind one NAT share"
            " it); beyond, 503 (0: no limit) [TM20_MAX_CONNECTIONS_PER_IP] (1000)",
        ],
        [
            "terminal-networks",
            None,
            None,
            "Accept terminals only from these networks, CIDR[,CIDR...]; others get 403 (the"
            " REST API is not affected) [TM20_TERMINAL_NETWORKS] (anywhere)",
        ],
        [
            "trusted-proxies",
            None,
            None,
            "Reverse proxies (CIDR[,CIDR...]) whose X-Forwarded-For names the client; exempt"
            " from the per-address cap [TM20_TRUSTED_PROXIES] (none)",
        ],
        [
            "wait-for-database",
            None,
            None,
            "At start-up, keep trying to reach the database for up to this many seconds before"
            " giving up (a database host that boots later) [TM20_WAIT_FOR_DATABASE] (0)",
        ],
        [
            "silent-after",
            None,
            None,
            "Mark a terminal silent after this many seconds without a command from it; 0: off"
            " (a terminal's own silentAfter wins) [TM20_SILENT_AFTER] (3600)",
        ],
        [
            "clock-drift-threshold",
            None,
            None,
            "Flag a terminal whose clock is off by more than this many seconds; 0: off"
            " [TM20_CLOCK_DRIFT_THRESHOLD] (60)",
        ],
        [
            "auto-settime-drift",
            None,
            None,
            "Set a terminal's clock (settime) when it is off by more than this many seconds;"
            " 0: never [TM20_AUTO_SETTIME_DRIFT] (0)",
        ],
        [
            "fetch-missing-logs",
            None,
            None,
            "Fetch logs found missing from the server by itself (getnewlog/getalllog), 1 or 0;"
            " with 0 they are only recorded [TM20_FETCH_MISSING_LOGS] (1)",
        ],
        [
            "event-retention",
            None,
            None,
            "Keep events and delivery attempts this long (e.g. 30d, 12h; 0: forever)"
            " [TM20_EVENT_RETENTION] (30d)",
        ],
        [
            "event-poll-interval",
            None,
            None,
            "How often event readers look for events written by other processes"
            " [TM20_EVENT_POLL_INTERVAL] (1s)",
        ],
        [
            "sse-heartbeat",
            None,
            None,
            "Keep-alive comment interval of idle SSE streams [TM20_SSE_HEARTBEAT] (15s)",
        ],
        [
            "webhook-timeout",
            None,
            None,
            "Deadline of one webhook request [TM20_WEBHOOK_TIMEOUT] (10s)",
        ],
        [
            "webhook-concurrency",
            None,
            None,
            "Webhook requests in flight at once, all subscriptions [TM20_WEBHOOK_CONCURRENCY] (16)",
        ],
        [
            "webhook-batch-size",
            None,
            None,
            "The most events in one webhook request [TM20_WEBHOOK_BATCH_SIZE] (500)",
        ],
        [
            "webhook-networks",
            None,
            None,
            "Webhooks may only point to these networks, CIDR[,CIDR...] [TM20_WEBHOOK_NETWORKS]"
            " (anywhere but link-local 169.254.0.0/16, fe80::/10)",
        ],
        [
            "webhook-retry-schedule",
            None,
            None,
            "Delays between attempts of a failed delivery, then the subscription is marked"
            f" failing [TM20_WEBHOOK_RETRY_SCHEDULE] ({DEFAULT_RETRY_SCHEDULE})",
        ],
        [
            "node-id",
            None,
            None,
            "This process's name among the nodes sharing one PostgreSQL database"
            " [TM20_NODE_ID] (HOST-PID-XXXX, random suffix)",
        ],
        [
            "node-lease",
            None,
            None,
            "A node whose lease is not renewed for this long is dead and holds no terminal;"
            " renewed every third (PostgreSQL) [TM20_NODE_LEASE] (15s)",
        ],
        [
            "workers",
            None,
            None,
            "Server processes sharing the listening ports (tcp, unix), or auto (one per core);"
            " above 1 needs PostgreSQL [TM20_WORKERS] (1)",
        ],
        ["log-format", None, None, "text or json [TM20_LOG_FORMAT] (text)"],
        ["log-level", None, None, "debug, info, warn, error [TM20_LOG_LEVEL] (info)"],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self._environ = os.environ if environ is None else environ
        self["ports"] = []
        self["api-tokens"] = []

    def opt_port(self, value: str) -> None:
        """
        Listen on this endpoint: a port number (tcp:N) or any Twisted endpoint string
        (tcp:7788:interface=127.0.0.1, ssl:7443:privateKey=key.pem:certKey=cert.pem, unix:...,
        systemd:...).  Repeatable [TM20_WEBSOCKET_PORT, comma-separated] (7788)
        """
        self["ports"].append(value)

    opt_p = opt_port

    def opt_api_token(self, value: str) -> None:
        """
        An API token accepted by the REST API, as NAME:SECRET or SECRET.  Repeatable
        [TM20_API_TOKENS, comma-separated]
        """
        self["api-tokens"].append(value)

    def postOptions(self) -> None:
        env = self._environ
        if not self["ports"]:
            fromEnv = env.get("TM20_WEBSOCKET_PORT", "")
            self["ports"] = [p for p in (s.strip() for s in fromEnv.split(",")) if p] or [
                str(DEFAULT_PORT)
            ]
        if not self["api-tokens"]:
            self["api-tokens"] = [
                t for t in (s.strip() for s in env.get("TM20_API_TOKENS", "").split(",")) if t
            ]
        # given on the command line, in any spelling (--log-level warn, --log-level=warn)
        levelGiven = self["log-level"] is not None
        for name, (variable, default, convert) in _SETTINGS.items():
            if self[name] is not None:
                self[name] = convert(f"--{name}", self[name])
            elif env.get(variable) not in (None, ""):
                self[name] = convert(variable, env[variable])
            else:
                self[name] = default
        if not self["require-whitelist"]:
            self["require-whitelist"] = _bool(
                "TM20_REQUIRE_WHITELIST", env.get("TM20_REQUIRE_WHITELIST", "0")
            )
        if not self["debug"]:
            self["debug"] = _bool("DEBUG", env.get("DEBUG", "0"))
        if not self["no-sinks"]:
            self["no-sinks"] = _bool("TM20_NO_SINKS", env.get("TM20_NO_SINKS", "0"))
        if self["debug"] and not levelGiven and env.get("TM20_LOG_LEVEL") in (None, ""):
            self["log-level"] = "debug"
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
        if self["log-level"] not in LOG_LEVELS:
            raise usage.UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        if self["timezone"]:
            _checkTimezone(self["timezone"])
        if self["workers"] > 1 and self["database"].startswith("sqlite:"):
            raise usage.UsageError(
                f"--workers {self['workers']} needs PostgreSQL: a SQLite database is one file"
                " written by one process (several would wait on its lock and could not route"
                " commands between them); use --workers 1, or --database postgresql://..."
            )
        if self["workers"] > 1:
            from tm20.cluster.workers import endpointFamily
            from tm20.service import listenSpec

            for port in self["ports"]:
                try:
                    endpointFamily(listenSpec(port, 1))
                except ValueError as e:
                    raise usage.UsageError(str(e)) from None

    def toConfig(self) -> ServerConfig:
        """The validated settings as a L{ServerConfig}."""
        return ServerConfig(
            ports=tuple(self["ports"]),
            database=self["database"],
            heartbeatInterval=self["heartbeat-interval"],
            connectionTimeout=self["connection-timeout"],
            requireWhitelist=self["require-whitelist"],
            maxMessageSize=self["max-message-size"],
            maxPreRegMessageSize=self["max-prereg-message-size"],
            httpBodyTimeout=self["http-body-timeout"],
            handshakeTimeout=self["handshake-timeout"],
            regTimeout=self["reg-timeout"],
            commandTimeout=self["command-timeout"],
            defaultTimezone=self["timezone"],
            backlog=self["backlog"],
            poolSize=self["pool-size"],
            apiTokens=tuple(self["api-tokens"]),
            logFormat=self["log-format"],
            logLevel=self["log-level"],
            maxConnections=self["max-connections"],
            maxConnectionsPerIP=self["max-connections-per-ip"],
            terminalNetworks=self["terminal-networks"],
            trustedProxies=self["trusted-proxies"],
            waitForDatabase=self["wait-for-database"],
            silentAfter=self["silent-after"],
            clockDriftThreshold=self["clock-drift-threshold"],
            autoSettimeDrift=self["auto-settime-drift"],
            fetchMissingLogs=self["fetch-missing-logs"],
            eventRetention=self["event-retention"],
            eventPollInterval=self["event-poll-interval"],
            sseHeartbeat=self["sse-heartbeat"],
            webhookTimeout=self["webhook-timeout"],
            webhookConcurrency=self["webhook-concurrency"],
            webhookBatchSize=self["webhook-batch-size"],
            webhookNetworks=self["webhook-networks"],
            webhookRetrySchedule=self["webhook-retry-schedule"],
            runSinks=not self["no-sinks"],
            reconcileInterval=self["reconcile-interval"],
            reconcileMaxOutstanding=self["reconcile-max-outstanding"],
            nodeId=self["node-id"],
            nodeLease=self["node-lease"],
            workers=self["workers"],
        )


def _checkTimezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise usage.UsageError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None


def makeService(options: Options, reactor: Any = None) -> Any:
    """The C{tm20} service for twistd (and C{tm20.tac})."""
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from tm20.service import TM20Service, buildServer
    from tm20.startup import processExit
    from tm20.store import storeFromURL

    config = options.toConfig()
    try:
        store = storeFromURL(config.database, reactor, poolSize=config.poolSize)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None
    if options["migrate-only"]:
        from tm20.store.migrate import MigrateOnlyService

        return MigrateOnlyService(store, reactor, _observer(options, config))

    processExit.install()

    def stopOnFailure(_: Any) -> None:
        # twistd would exit 0 (or keep running): exit non-zero, after its clean-up
        processExit.fail(reactor)

    if config.workers > 1:
        from tm20.cluster.workers import WorkersService
        from tm20.logs import twistdLogFile, usesTwistdObserver

        twistd = options.parent
        logFile = None if usesTwistdObserver(twistd) else twistdLogFile(twistd)
        return WorkersService(config, reactor, _observer(options, config), logFile=logFile)
    server = buildServer(config, reactor, store)
    # a daemonizing twistd's parent exits with the status reported before the reactor runs
    twistd = options.parent
    daemon = twistd is not None and "nodaemon" in twistd and not twistd["nodaemon"]
    return TM20Service(
        server, _observer(options, config), onStartFailure=stopOnFailure, preflight=daemon
    )


def twistdOptionsFromArgv(argv: list[str] | None = None) -> Any:
    """
    twistd's own options, read again from its command line (for C{tm20.tac}, which twistd does
    not hand them to): whether it daemonizes and where it logs.  C{None} when they cannot be
    read (not run by twistd).
    """
    import sys

    try:
        from twisted.scripts.twistd import ServerOptions
    except ImportError:  # pragma: no cover - not on POSIX
        return None

    class _Again(ServerOptions):
        subCommands: list[Any] = []  # noqa: RUF012 - no plugin lookup

        def opt_reactor(self, shortName: str) -> None:
            pass  # twistd has installed it already

    twistd = _Again()
    try:
        twistd.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except (usage.UsageError, SystemExit):
        return None
    return twistd


def _observer(options: Options, config: ServerConfig) -> Any:
    """
    Our log observer (C{--log-format}, C{--log-level}) writing where twistd would: the standard
    error stream in the foreground, C{--logfile} or C{twistd.log} when daemonized.  C{None}
    (twistd's own observer) for C{--syslog} and C{--logger}.
    """
    from tm20.logs import makeObserver, openLogFile, twistdLogFile, usesTwistdObserver

    twistd = options.parent
    if usesTwistdObserver(twistd):
        return None
    path = twistdLogFile(twistd)
    stream = openLogFile(path) if path is not None else None
    return makeObserver(config.logFormat, config.logLevel, stream=stream)
