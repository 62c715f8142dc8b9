"""
The server's settings, resolved from command line, environment and defaults (see L{tm20.tap}).

Every option of C{twistd tm20} is declared here, once, on the field it sets: its type and
default, then (L{tm20.options.option}) its name, environment variable, parser and meaning.
L{OPTIONS} lists them in this order, which is README's.  Adding an option is adding a field
here and running C{python -m tm20.config --write README.md} (see README "Development").
"""

from __future__ import annotations

import sys

import attrs

from tm20.events.sinks import DEFAULT_RETRY_SCHEDULE
from tm20.logs import LOG_FORMATS, LOG_LEVELS
from tm20.options import (
    Option,
    boolean,
    databaseURL,
    declaredOptions,
    duration,
    endpoint,
    integer,
    networks,
    nodeName,
    oneOf,
    option,
    readmeTable,
    retrySchedule,
    seconds,
    text,
    timezone,
    withReadmeTable,
    workerCount,
)

DEFAULT_PORT = 7788
DEFAULT_DATABASE = "sqlite:tm20.sqlite3"

#: values of C{--access-control}
ACCESS_CONTROL_MODES = ("auto", "always")


@attrs.frozen
class ServerConfig:
    """
    Every knob of the server, with its default.  Times are in seconds.  A field that is an
    option of C{twistd tm20} is documented by its declaration (the C{metadata}); the others:

    @ivar closeTimeout: deadline of the WebSocket closing handshake.
    @ivar maxPendingMessages: terminal commands held for one connection before its socket
        stops being read (backpressure).
    @ivar maxHandshakeBytes: bytes a connection may send before its WebSocket opening handshake
        is complete (HTTP request line and headers); beyond this it is dropped.
    @ivar httpIdleTimeout: seconds an HTTP (API) connection may sit idle between requests.
    """

    ports: tuple[str, ...] = attrs.field(
        default=(str(DEFAULT_PORT),),
        metadata=option(
            "port",
            "TM20_WEBSOCKET_PORT",
            endpoint,
            "where to listen: a port number (`tcp:N`) or any Twisted endpoint string:"
            " `tcp:7788:interface=127.0.0.1`, `tcp6:7788`,"
            " `ssl:7443:privateKey=key.pem:certKey=cert.pem`, `unix:/run/tm20.sock`,"
            " `systemd:domain=INET:index=0`. Plain and TLS side by side:"
            " `--port 7788 --port ssl:7443:…`",
            kind="list",
            short="p",
        ),
    )
    database: str = attrs.field(
        default=DEFAULT_DATABASE,
        metadata=option(
            "database",
            "DATABASE_URL",
            databaseURL,
            "`sqlite:PATH` (relative to the working directory, or absolute) or"
            " `postgresql://user:password@host:port/dbname`",
            short="d",
        ),
    )
    heartbeatInterval: float = attrs.field(
        default=30.0,
        metadata=option(
            "heartbeat-interval",
            "TM20_HEARTBEAT_INTERVAL",
            seconds(0),
            "seconds of silence after which a terminal is probed with `gettime`",
        ),
    )
    connectionTimeout: float = attrs.field(
        default=120.0,
        metadata=option(
            "connection-timeout",
            "TM20_CONNECTION_TIMEOUT",
            seconds(0),
            "seconds of total silence after which a terminal is disconnected (0 = never)",
        ),
    )
    requireWhitelist: bool = attrs.field(
        default=False,
        metadata=option(
            "require-whitelist",
            "TM20_REQUIRE_WHITELIST",
            boolean,
            "refuse terminals an operator has not approved",
            kind="flag",
            shownDefault="off",
        ),
    )
    regTimeout: float = attrs.field(
        default=60.0,
        metadata=option(
            "reg-timeout",
            "TM20_REG_TIMEOUT",
            seconds(0),
            "a connection that sends no `reg` within this many seconds is dropped",
        ),
    )
    handshakeTimeout: float = attrs.field(
        default=10.0,
        metadata=option(
            "handshake-timeout",
            "TM20_HANDSHAKE_TIMEOUT",
            seconds(0.1),
            "deadline for the WebSocket opening handshake",
        ),
    )
    commandTimeout: float = attrs.field(
        default=30.0,
        metadata=option(
            "command-timeout",
            "TM20_COMMAND_TIMEOUT",
            seconds(0.1),
            "how long to wait for a terminal's reply to a server command",
        ),
    )
    maxMessageSize: int = attrs.field(
        default=4 * 1024 * 1024,
        metadata=option(
            "max-message-size",
            "TM20_MAX_MESSAGE_SIZE",
            integer(1024),
            "largest WebSocket message in bytes (logs and users carry base64 photos); a"
            " larger one closes the socket with 1009",
        ),
    )
    maxPreRegMessageSize: int = attrs.field(
        default=16 * 1024,
        metadata=option(
            "max-prereg-message-size",
            "TM20_MAX_PREREG_MESSAGE_SIZE",
            integer(0),
            "largest WebSocket message before the connection's `reg` is accepted (a `reg` is"
            " well under 1 KiB); a larger one closes the socket with 1009 without being read"
            " (0 = `--max-message-size`)",
        ),
    )
    httpBodyTimeout: float = attrs.field(
        default=30.0,
        metadata=option(
            "http-body-timeout",
            "TM20_HTTP_BODY_TIMEOUT",
            seconds(0),
            "seconds an HTTP request body may take to arrive, all of it, from the end of its"
            " head; then `408` and close (0 = no deadline)",
        ),
    )
    maxConnections: int = attrs.field(
        default=50_000,
        metadata=option(
            "max-connections",
            "TM20_MAX_CONNECTIONS",
            integer(0),
            "open connections (terminals and HTTP, all ports) allowed at once; a new one beyond"
            " is answered `503` and closed (0 = no limit). See [Security](#security)",
        ),
    )
    maxConnectionsPerIP: int = attrs.field(
        default=1_000,
        metadata=option(
            "max-connections-per-ip",
            "TM20_MAX_CONNECTIONS_PER_IP",
            integer(0),
            "open connections allowed at once from one source address; many terminals may sit"
            " behind one NAT (0 = no limit)",
        ),
    )
    maxRegistering: int = attrs.field(
        default=256,
        metadata=option(
            "max-registering",
            "TM20_MAX_REGISTERING",
            integer(0),
            "terminal connections registering at once (from the WebSocket upgrade to the first"
            " accepted `reg`); the upgrades beyond are held, in arrival order, until one"
            " finishes (0 = no limit). See *Admission control* under [PostgreSQL](#postgresql)",
        ),
    )
    terminalNetworks: tuple[str, ...] = attrs.field(
        default=(),
        metadata=option(
            "terminal-networks",
            "TM20_TERMINAL_NETWORKS",
            networks,
            "terminals are accepted only from these networks; a WebSocket upgrade from"
            " elsewhere gets `403`; the REST API is not affected",
            envForm="(`CIDR[,CIDR…]`)",
            shownDefault="anywhere",
        ),
    )
    trustedProxies: tuple[str, ...] = attrs.field(
        default=(),
        metadata=option(
            "trusted-proxies",
            "TM20_TRUSTED_PROXIES",
            networks,
            "reverse proxies whose `X-Forwarded-For` names the client (for"
            " `--terminal-networks`, the API's failed-authentication rate limit and the logs);"
            " exempt from the per-address cap",
            envForm="(`CIDR[,CIDR…]`)",
            shownDefault="none",
        ),
    )
    backlog: int = attrs.field(
        default=4096,
        metadata=option(
            "backlog",
            "TM20_BACKLOG",
            integer(1),
            "listen backlog added to `tcp`/`ssl`/`unix` endpoints that do not set their own;"
            " the kernel caps it at `net.core.somaxconn` (4096 since Linux 5.4). Twisted's"
            " default of 50 drops connections when thousands of terminals reconnect at once,"
            " and a dropped connection attempt is retried by the terminal's TCP 1 s, then 3 s,"
            " 7 s… later: see *The listen queue* under [Scaling out](#scaling-out)",
        ),
    )
    gcThreshold: int = attrs.field(
        default=10_000,
        metadata=option(
            "gc-threshold",
            "TM20_GC_THRESHOLD",
            integer(0),
            "Python's young-generation collection threshold once started (its default is 700);"
            " the start-up heap is frozen too, and full passes follow bursts of terminal"
            " sockets; `0` leaves the collector as Python sets it. See *The garbage collector*"
            " under [Scaling out](#scaling-out)",
        ),
    )
    poolSize: int = attrs.field(
        default=4,
        metadata=option("pool-size", "TM20_DB_POOL_SIZE", integer(1), "PostgreSQL connections"),
    )
    defaultTimezone: str | None = attrs.field(
        default=None,
        metadata=option(
            "timezone",
            "TM20_TIMEZONE",
            timezone,
            "IANA time zone (`Europe/Paris`) of terminals that have none of their own;"
            " `cloudtime` in replies is the terminal's local time",
            shownDefault="the server's",
        ),
    )
    apiTokens: tuple[str, ...] = attrs.field(
        default=(),
        metadata=option(
            "api-token",
            "TM20_API_TOKENS",
            text,
            "static REST API tokens, `NAME:SECRET` or bare `SECRET` (see [REST API](#rest-api))",
            kind="list",
            shownDefault="none",
        ),
    )
    silentAfter: float = attrs.field(
        default=3600.0,
        metadata=option(
            "silent-after",
            "TM20_SILENT_AFTER",
            seconds(0),
            "mark a terminal silent after this many seconds without a command from it,"
            " connected or not (0 = off); a terminal's own `silentAfter` (REST `PATCH`) wins."
            " See [Health and metrics](#terminals-that-watch-themselves)",
        ),
    )
    clockDriftThreshold: float = attrs.field(
        default=60.0,
        metadata=option(
            "clock-drift-threshold",
            "TM20_CLOCK_DRIFT_THRESHOLD",
            seconds(0),
            "flag a terminal whose clock is off by more than this many seconds (0 = off)",
        ),
    )
    autoSettimeDrift: float = attrs.field(
        default=0.0,
        metadata=option(
            "auto-settime-drift",
            "TM20_AUTO_SETTIME_DRIFT",
            seconds(0),
            "set a terminal's clock (`settime` through the durable queue, at most hourly) when"
            " it is off by more than this many seconds (0 = never)",
        ),
    )
    fetchMissingLogs: bool = attrs.field(
        default=True,
        metadata=option(
            "fetch-missing-logs",
            "TM20_FETCH_MISSING_LOGS",
            boolean,
            "fetch the logs found missing from the server by itself"
            " (`getnewlog`/`getalllog`, paced); with `0` the gaps are only recorded",
            envForm="(`0`/`1`)",
            shownDefault="`1`",
        ),
    )
    eventRetention: float = attrs.field(
        default=30 * 86400.0,
        metadata=option(
            "event-retention",
            "TM20_EVENT_RETENTION",
            duration(0),
            "how long events and delivery attempts are kept (`90d`, `12h`, seconds; `0`:"
            " forever); pruned hourly. See [Events and webhooks](#events-and-webhooks)",
            shownDefault="`30d`",
        ),
    )
    eventPollInterval: float = attrs.field(
        default=1.0,
        metadata=option(
            "event-poll-interval",
            "TM20_EVENT_POLL_INTERVAL",
            duration(0.01),
            "how often event readers (SSE, sinks) look for events written by *another* process"
            " on the same PostgreSQL database; this process's own wake them at once",
            shownDefault="`1s`",
        ),
    )
    sseHeartbeat: float = attrs.field(
        default=15.0,
        metadata=option(
            "sse-heartbeat",
            "TM20_SSE_HEARTBEAT",
            duration(0.1),
            "keep-alive comment interval of an idle `/api/events/stream`",
            shownDefault="`15s`",
        ),
    )
    webhookTimeout: float = attrs.field(
        default=10.0,
        metadata=option(
            "webhook-timeout",
            "TM20_WEBHOOK_TIMEOUT",
            duration(0.1),
            "deadline of one webhook request (connection, answer and body excerpt)",
            shownDefault="`10s`",
        ),
    )
    webhookConcurrency: int = attrs.field(
        default=16,
        metadata=option(
            "webhook-concurrency",
            "TM20_WEBHOOK_CONCURRENCY",
            integer(1),
            "webhook requests in flight at once, all subscriptions together",
        ),
    )
    webhookBatchSize: int = attrs.field(
        default=1000,
        metadata=option(
            "webhook-batch-size",
            "TM20_WEBHOOK_BATCH_SIZE",
            integer(1),
            "the most events in one webhook request",
        ),
    )
    webhookRetrySchedule: str = attrs.field(
        default=DEFAULT_RETRY_SCHEDULE,
        metadata=option(
            "webhook-retry-schedule",
            "TM20_WEBHOOK_RETRY_SCHEDULE",
            retrySchedule,
            "delays between attempts of a failed delivery (±20 % jitter), about 72 h; after the"
            " last one the subscription is marked `failing` (it keeps its cursor)",
        ),
    )
    webhookNetworks: tuple[str, ...] = attrs.field(
        default=(),
        metadata=option(
            "webhook-networks",
            "TM20_WEBHOOK_NETWORKS",
            networks,
            "where webhooks may point, checked on the resolved address when connecting (see"
            " the SSRF note in [Webhooks](#webhooks))",
            envForm="(`CIDR[,CIDR…]`)",
            shownDefault="anywhere but link-local",
        ),
    )
    runSinks: bool = attrs.field(
        default=True,
        metadata=option(
            "no-sinks",
            "TM20_NO_SINKS",
            boolean,
            "deliver nothing from this process (webhooks and sink plugins); with several"
            " processes on one PostgreSQL database, the sinks run on the oldest node without it"
            " (see Scaling out)",
            kind="flag",
            invert=True,
            shownDefault="off",
        ),
    )
    reconcileInterval: float = attrs.field(
        default=3600.0,
        metadata=option(
            "reconcile-interval",
            "TM20_RECONCILE_INTERVAL",
            seconds(0),
            "seconds between the reconciler's checks of every connected terminal holding fleet"
            " persons (its user list against the persons it should hold; keypad drift is"
            " corrected); 0 = never (changes and registrations are reconciled regardless). See"
            " [Persons and groups](#persons-and-groups)",
        ),
    )
    reconcileMaxOutstanding: int = attrs.field(
        default=20,
        metadata=option(
            "reconcile-max-outstanding",
            "TM20_RECONCILE_MAX_OUTSTANDING",
            integer(1),
            "reconciler commands queued for one terminal at once; the rest of its plan is"
            " queued as they finish",
        ),
    )
    accessControl: str = attrs.field(
        default="auto",
        metadata=option(
            "access-control",
            "TM20_ACCESS_CONTROL",
            oneOf(ACCESS_CONTROL_MODES, "access-control"),
            "which terminals' punches are decided: `auto` (those an access rule, a visitor code"
            " or a group access setting covers, directly or through their terminal groups) or"
            " `always` (every terminal). See [Access control](#access-control)",
            shownDefault="`auto`",
        ),
    )
    accessMaxAge: float = attrs.field(
        default=30.0,
        metadata=option(
            "access-max-age",
            "TM20_ACCESS_MAX_AGE",
            duration(1),
            "a punch older than this (terminal clock, its time zone) is backlog and never opens"
            " a door",
            shownDefault="`30s`",
        ),
    )
    accessReplyBudget: float = attrs.field(
        default=0.5,
        metadata=option(
            "access-reply-budget",
            "TM20_ACCESS_REPLY_BUDGET",
            duration(0.01),
            "a door's answer is due this long after its request; the fallback if the decision"
            " is not committed by then",
            shownDefault="`0.5s`",
        ),
    )
    accessFallback: str = attrs.field(
        default="deny",
        metadata=option(
            "access-fallback",
            "TM20_ACCESS_FALLBACK",
            oneOf(("deny", "cached"), "access-fallback"),
            "the answer when the decision cannot be committed in time: `deny`, or `cached`"
            " (what the rules in memory say)",
        ),
    )
    accessRefreshInterval: float = attrs.field(
        default=5.0,
        metadata=option(
            "access-refresh-interval",
            "TM20_ACCESS_REFRESH_INTERVAL",
            duration(0),
            "reload the access rules, codes and persons every this long, for changes made by"
            " another process; 0 = never",
            shownDefault="`5s`",
        ),
    )
    nodeId: str | None = attrs.field(
        default=None,
        metadata=option(
            "node-id",
            "TM20_NODE_ID",
            nodeName,
            "this process's name among the nodes sharing one PostgreSQL database (1 to 200"
            " printable characters, no spaces). See [Scaling out](#scaling-out)",
            shownDefault="HOST-PID-XXXX (random suffix)",
        ),
    )
    nodeLease: float = attrs.field(
        default=15.0,
        metadata=option(
            "node-lease",
            "TM20_NODE_LEASE",
            duration(3),
            "a node whose lease is not renewed for this long is dead and holds no terminal;"
            " renewed every third (PostgreSQL)",
            shownDefault="`15s`",
        ),
    )
    workers: int = attrs.field(
        default=1,
        metadata=option(
            "workers",
            "TM20_WORKERS",
            workerCount,
            "server processes sharing the listening ports (tcp, tcp6, unix), or `auto` (one"
            " per core); above 1 needs PostgreSQL",
        ),
    )
    consoleIdle: float = attrs.field(
        default=1800.0,
        metadata=option(
            "console-idle",
            "TM20_CONSOLE_IDLE",
            duration(1),
            "log a console session out after this long unused (e.g. `30m`, `8h`). See"
            " [Console](#console)",
            shownDefault="`30m`",
        ),
    )
    logFormat: str = attrs.field(
        default="text",
        metadata=option(
            "log-format",
            "TM20_LOG_FORMAT",
            oneOf(LOG_FORMATS, "log-format"),
            "`text` or `json` (one JSON object per line, with the structured fields)",
        ),
    )
    logLevel: str = attrs.field(
        default="info",
        metadata=option(
            "log-level",
            "TM20_LOG_LEVEL",
            oneOf(LOG_LEVELS, "log-level"),
            "`debug`, `info`, `warn`, `error`, `critical`; autobahn's and txpostgres' chatter"
            " is held at `info` or above",
        ),
    )
    debug: bool = attrs.field(
        default=False,
        metadata=option(
            "debug",
            "DEBUG",
            boolean,
            "log at debug level, unless a level is given (`--debug --log-level=warn` logs at"
            " `warn`)",
            kind="flag",
            shownDefault="off",
        ),
    )
    waitForDatabase: float = attrs.field(
        default=0.0,
        metadata=option(
            "wait-for-database",
            "TM20_WAIT_FOR_DATABASE",
            seconds(0),
            "at start-up, keep trying to reach PostgreSQL for up to this many seconds before"
            " exiting with status 1 (for a database that starts later)",
        ),
    )
    migrateOnly: bool = attrs.field(
        default=False,
        metadata=option(
            "migrate-only",
            None,
            boolean,
            "apply the database migrations and exit",
            kind="flag",
            shownDefault="",
        ),
    )
    closeTimeout: float = 5.0
    maxPendingMessages: int = 8
    maxHandshakeBytes: int = 16 * 1024
    httpIdleTimeout: float = 75.0


#: Every option of C{twistd tm20}, in README's order.
OPTIONS: tuple[Option, ...] = declaredOptions(ServerConfig)


def main(argv: list[str]) -> int:
    """C{python -m tm20.config}: print README's table; C{--write README.md}: rewrite it there."""
    if len(argv) == 3 and argv[1] == "--write":
        with open(argv[2], encoding="utf-8") as f:
            readme = f.read()
        with open(argv[2], "w", encoding="utf-8") as f:
            f.write(withReadmeTable(readme, OPTIONS))
        return 0
    print(readmeTable(OPTIONS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
