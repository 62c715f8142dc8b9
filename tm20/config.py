"""The server's settings, resolved from command line, environment and defaults (see L{tm20.tap})."""

from __future__ import annotations

import attrs

from tm20.events.sinks import DEFAULT_RETRY_SCHEDULE

DEFAULT_PORT = 7788
DEFAULT_DATABASE = "sqlite:tm20.sqlite3"


@attrs.frozen
class ServerConfig:
    """
    Every knob of the server, with its default.  Times are in seconds.

    @ivar ports: Twisted endpoint strings to listen on (plain and TLS side by side).
    @ivar database: C{sqlite:PATH} or C{postgresql://...}.
    @ivar heartbeatInterval: silence after which a terminal is probed with C{gettime}.
    @ivar connectionTimeout: silence after which a terminal is disconnected.
    @ivar requireWhitelist: refuse terminals an operator has not approved.
    @ivar maxMessageSize: largest WebSocket message accepted (bytes); larger ones close with 1009.
    @ivar maxPreRegMessageSize: largest WebSocket message accepted before the connection's first
        accepted C{reg} (a C{reg} is well under 1 KiB); larger ones close with 1009 unread.
    @ivar handshakeTimeout: deadline for the WebSocket opening handshake.
    @ivar regTimeout: deadline for the first C{reg} after the handshake.
    @ivar commandTimeout: how long to wait for a terminal's reply to a server command.
    @ivar defaultTimezone: IANA time zone of terminals without their own (None: the server's).
    @ivar backlog: listen backlog added to endpoints that accept one.
    @ivar poolSize: database connections (PostgreSQL).
    @ivar apiTokens: static API tokens (C{name:secret} or bare secrets).
    @ivar maxConnections: open connections (terminals and HTTP) on all ports together; a new
        one beyond this is answered C{503} and closed.
    @ivar maxConnectionsPerIP: open connections from one source address (terminals behind one
        NAT share it); beyond this, C{503}.  Addresses in C{trustedProxies} are exempt.
    @ivar terminalNetworks: CIDR blocks terminals may connect from (empty: anywhere); a
        WebSocket upgrade from elsewhere gets C{403}.  The REST API is not affected.
    @ivar trustedProxies: CIDR blocks of reverse proxies whose C{X-Forwarded-For} names the
        real client (for C{terminalNetworks} and the logs).
    @ivar maxHandshakeBytes: bytes a connection may send before its WebSocket opening handshake
        is complete (HTTP request line and headers); beyond this it is dropped.
    @ivar httpBodyTimeout: seconds an HTTP request's body may take to arrive, all of it, from
        the end of its head (C{408} and close when it has not).
    @ivar httpIdleTimeout: seconds an HTTP (API) connection may sit idle between requests.
    @ivar waitForDatabase: seconds to keep retrying a database that cannot be reached at
        start-up before giving up (0: give up at once).
    @ivar silentAfter: seconds without a command from a terminal after which it is marked
        silent (0: off; a terminal's own C{silentAfter} wins).
    @ivar clockDriftThreshold: seconds of clock drift past which a terminal is flagged (0: off).
    @ivar autoSettimeDrift: seconds of clock drift past which the server sets the terminal's
        clock (C{settime}, through the command queue); 0: never.
    @ivar fetchMissingLogs: fetch the logs found missing by itself (C{getnewlog}/C{getalllog});
        when C{False}, gaps are only recorded.
    @ivar eventRetention: seconds events (and delivery attempts) are kept; 0 keeps them forever.
    @ivar eventPollInterval: how often event readers look for events committed by another
        process (PostgreSQL shared by several processes); this process's own wake them at once.
    @ivar sseHeartbeat: seconds between keep-alive comments on an idle SSE stream.
    @ivar webhookTimeout: deadline of one webhook request (connect, answer, body excerpt).
    @ivar webhookConcurrency: webhook requests in flight at once, all subscriptions together.
    @ivar webhookBatchSize: the most events in one webhook request.
    @ivar webhookNetworks: CIDR blocks webhooks may point to (empty: anywhere but link-local).
    @ivar webhookRetrySchedule: delays between attempts of a failed batch (C{"5s,30s,2m"}).
    @ivar runSinks: deliver to the sinks (webhooks, plugins) from this process.
    @ivar reconcileInterval: seconds between the reconciler's checks of the connected
        terminals' users against the fleet persons (0: never; changes and registrations are
        reconciled regardless).
    @ivar reconcileMaxOutstanding: reconciler commands queued for one terminal at once.
    @ivar nodeId: this process's name in a cluster (C{None}: host, pid and a random suffix).
    @ivar nodeLease: seconds a node's lease lasts unless renewed (renewed every third).
    @ivar workers: server processes sharing the listening ports (C{--workers}).
    """

    ports: tuple[str, ...] = (f"tcp:{DEFAULT_PORT}",)
    database: str = DEFAULT_DATABASE
    heartbeatInterval: float = 30.0
    connectionTimeout: float = 120.0
    requireWhitelist: bool = False
    maxMessageSize: int = 4 * 1024 * 1024
    maxPreRegMessageSize: int = 16 * 1024
    handshakeTimeout: float = 10.0
    regTimeout: float = 60.0
    commandTimeout: float = 30.0
    closeTimeout: float = 5.0
    defaultTimezone: str | None = None
    backlog: int = 1024
    poolSize: int = 4
    maxPendingMessages: int = 8
    apiTokens: tuple[str, ...] = ()
    logFormat: str = "text"
    logLevel: str = "info"
    maxConnections: int = 50_000
    maxConnectionsPerIP: int = 1_000
    terminalNetworks: tuple[str, ...] = ()
    trustedProxies: tuple[str, ...] = ()
    maxHandshakeBytes: int = 16 * 1024
    httpIdleTimeout: float = 75.0
    httpBodyTimeout: float = 30.0
    waitForDatabase: float = 0.0
    silentAfter: float = 3600.0
    clockDriftThreshold: float = 60.0
    autoSettimeDrift: float = 0.0
    fetchMissingLogs: bool = True
    eventRetention: float = 30 * 86400.0
    eventPollInterval: float = 1.0
    sseHeartbeat: float = 15.0
    webhookTimeout: float = 10.0
    webhookConcurrency: int = 16
    webhookBatchSize: int = 500
    webhookNetworks: tuple[str, ...] = ()
    webhookRetrySchedule: str = DEFAULT_RETRY_SCHEDULE
    runSinks: bool = True
    reconcileInterval: float = 3600.0
    reconcileMaxOutstanding: int = 20
    nodeId: str | None = None
    nodeLease: float = 15.0
    workers: int = 1
