"""What command handlers get: the store, the services, the clock (L{IServerContext})."""

from __future__ import annotations

from typing import Any

import attrs
from zope.interface import implementer

from tm20.config import ServerConfig
from tm20.interfaces import IServerContext


@implementer(IServerContext)
@attrs.define
class ServerContext:
    """The server's parts, wired once by L{tm20.service.buildServer}."""

    store: Any
    clock: Any
    registry: Any
    registration: Any
    ingest: Any
    commands: Any
    config: ServerConfig
    #: The L{tm20.metrics.Metrics} (C{None}: nothing is counted).
    metrics: Any = None
    #: The L{tm20.services.watch.Watch} (C{None}: terminals are not watched).
    watch: Any = None
    #: The L{tm20.events.service.EventsService} (feed, sink runner), set by buildServer.
    events: Any = None
    #: the durable command queue, the pull service, the reconciler and the person service
    #: (built by L{tm20.service.buildServer}; the API builds its own when they are C{None})
    queue: Any = None
    pulls: Any = None
    reconciler: Any = None
    persons: Any = None
    #: this process among the nodes (L{tm20.cluster.node.ClusterNode} on PostgreSQL,
    #: L{tm20.cluster.local.LocalNode} alone): which node holds which terminal
    cluster: Any = None
