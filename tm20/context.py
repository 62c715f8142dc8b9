"""What command handlers get: the store, the services, the clock (L{IServerContext})."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from tm20.config import ServerConfig
from tm20.interfaces import (
    ICommandQueue,
    ICommandService,
    IEventsService,
    ILogIngest,
    IPullService,
    IReconciler,
    IRegistration,
    IServerContext,
    IStore,
    ITerminalRegistry,
    ITerminalWatch,
)

if TYPE_CHECKING:
    from tm20.metrics import Metrics
    from tm20.services.access import AccessService
    from tm20.services.persons import PersonService


@implementer(IServerContext)
@attrs.define
class ServerContext:
    """The server's parts, wired once by L{tm20.service.buildServer}; see L{IServerContext}."""

    store: IStore
    clock: IReactorTime
    registry: ITerminalRegistry
    registration: IRegistration
    ingest: ILogIngest
    commands: ICommandService
    config: ServerConfig
    metrics: Metrics | None = None
    watch: ITerminalWatch | None = None
    events: IEventsService | None = None
    #: the durable command queue, the pull service, the reconciler and the person service
    #: (built by L{tm20.service.buildServer}; the API builds its own when they are C{None})
    queue: ICommandQueue | None = None
    pulls: IPullService | None = None
    reconciler: IReconciler | None = None
    persons: PersonService | None = None
    #: this process among the nodes (L{tm20.cluster.node.ClusterNode} on PostgreSQL,
    #: L{tm20.cluster.local.LocalNode} alone): which node holds which terminal
    cluster: Any = None
    #: the operator console (L{tm20.console.Console}), when mounted
    console: Any = None
    #: the access service (decisions at doors), built with the others
    access: AccessService | None = None
