"""The server's settings, resolved from command line, environment and defaults (see L{tm20.tap})."""

from __future__ import annotations

import attrs

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
    @ivar handshakeTimeout: deadline for the WebSocket opening handshake.
    @ivar regTimeout: deadline for the first C{reg} after the handshake.
    @ivar commandTimeout: how long to wait for a terminal's reply to a server command.
    @ivar defaultTimezone: IANA time zone of terminals without their own (None: the server's).
    @ivar backlog: listen backlog added to endpoints that accept one.
    @ivar poolSize: database connections (PostgreSQL).
    @ivar apiTokens: static API tokens (C{name:secret} or bare secrets).
    """

    ports: tuple[str, ...] = (f"tcp:{DEFAULT_PORT}",)
    database: str = DEFAULT_DATABASE
    heartbeatInterval: float = 30.0
    connectionTimeout: float = 120.0
    requireWhitelist: bool = False
    maxMessageSize: int = 4 * 1024 * 1024
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
