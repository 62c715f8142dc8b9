"""
The running server: store first, then the listening ports; on stop, the reverse.

L{buildServer} wires the parts (store, registry, services, dispatcher, WebSocket factory, web
root); L{TM20Service} starts and stops them in order (Buildbot-style: it waits for each step).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from autobahn.twisted.resource import WebSocketResource
from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from tm20.cluster.identity import defaultNodeId
from tm20.cluster.local import LocalNode
from tm20.cluster.node import SINKS_ROLE, ClusterNode
from tm20.cluster.routing import ClusterPulls, CommandRouter
from tm20.cluster.tlsport import isTLS, tlsFactory
from tm20.collector import GarbageCollector
from tm20.config import ServerConfig
from tm20.context import ServerContext
from tm20.dispatch import Dispatcher
from tm20.events.backlog import SinkBacklog
from tm20.events.service import EventsService
from tm20.interfaces import IClusterStore, ILogIngest, IStore, IWatchStore
from tm20.logs import installObserver
from tm20.metrics import Metrics
from tm20.probes import MetricsResource, ReadyResource
from tm20.protocol.codes import CloseCode
from tm20.services.commands import CommandService
from tm20.services.fleet import wireServices
from tm20.services.ingest import LogIngest
from tm20.services.pulls import PullService
from tm20.services.queue import CommandQueue
from tm20.services.registration import RegistrationService
from tm20.services.watch import Watch
from tm20.startup import StartupError, explain, oneLine, quietStartupError, waitForDatabase
from tm20.terminal.factory import TerminalFactory
from tm20.terminal.protocol import PAUSE_STORE
from tm20.terminal.registry import TerminalRegistry
from tm20.web import HealthResource, QuietSite, TM20Root

#: Endpoint types whose parser accepts C{backlog=}.
_BACKLOG_TYPES = ("tcp", "tcp6", "ssl", "unix")


def listenSpec(port: str, backlog: int) -> str:
    """
    The endpoint string for C{--port}: a bare number means C{tcp:N}; a listen backlog is added
    to endpoint types that take one, unless the string sets its own.
    """
    spec = port.strip()
    if re.fullmatch(r"\d+", spec):
        spec = f"tcp:{spec}"
    kind = spec.split(":", 1)[0]
    if kind in _BACKLOG_TYPES and "backlog=" not in spec:
        spec = f"{spec}:backlog={backlog}"
    return spec


@attrs.define
class Server:
    """The wired parts of one server process."""

    config: ServerConfig
    reactor: Any
    store: IStore
    context: ServerContext
    factory: TerminalFactory
    root: TM20Root
    site: QuietSite
    events: EventsService
    #: Every configured port is listening (set by L{TM20Service}).
    listening: bool = False
    #: Measures the event sinks' backlog and lag for the metrics (L{tm20.events.backlog}).
    sinkBacklog: Any = None


def buildServer(
    config: ServerConfig,
    reactor: Any,
    store: IStore,
    clock: Any = None,
    dispatcher: Dispatcher | None = None,
    monotonic: Any = None,
    sinks: Sequence[Any] | None = None,
) -> Server:
    """
    Wire every part; nothing starts (see L{TM20Service}).

    @param clock: wall time and timers (the reactor unless given).
    @param monotonic: the keep-alive's clock (monotonic time derived from C{clock} unless
        given; tests pass a second C{Clock} to step the wall clock alone).
    @param sinks: the event sinks (L{tm20.interfaces.IEventSink}); C{None}: the plugins.
    """
    clock = reactor if clock is None else clock
    registry = TerminalRegistry()
    registration = RegistrationService(
        store,
        registry,
        clock,
        requireWhitelist=config.requireWhitelist,
        defaultTimezone=config.defaultTimezone,
    )
    commands = CommandService(registry, clock, timeout=config.commandTimeout)
    metrics = Metrics()
    context = ServerContext(
        store=store,
        clock=clock,
        registry=registry,
        registration=registration,
        ingest=LogIngest(
            store,
            clock,
            metrics=metrics,
            defaultTimezone=config.defaultTimezone,
            reactor=reactor,
        ),
        commands=commands,
        config=config,
        metrics=metrics,
    )
    queue = CommandQueue(
        store,
        commands,
        registration,
        clock,
        timeout=config.commandTimeout,
        addLogs=context.ingest.addLogs,
    )
    registration.observers.append(queue.deliverPending)
    pulls = PullService(store, commands, addLogs=context.ingest.addLogs)
    if IWatchStore.providedBy(store):
        context.watch = Watch(
            store,
            clock,
            registry,
            pulls,
            settime=lambda sn: queue.submit(sn, "settime", {}, WATCH_ACTOR, wait=False),
            silentAfter=config.silentAfter,
            driftThreshold=config.clockDriftThreshold,
            autoSettime=config.autoSettimeDrift,
            defaultTimezone=config.defaultTimezone,
            metrics=metrics,
            fetchMissingLogs=config.fetchMissingLogs,
        )
    _sampleQueues(metrics, context.ingest, queue)
    # counted by the registry (what the garbage collector reads too), read when scraped
    metrics.sampleCount(
        "tm20_connections_opened", "Terminal WebSocket connections opened.", lambda: registry.opened
    )
    metrics.sampleCount(
        "tm20_connections_closed", "Terminal WebSocket connections closed.", lambda: registry.closed
    )
    events = EventsService(store, clock, config, registry, sinks, context)
    context.events = events
    if dispatcher is None:
        dispatcher = Dispatcher.fromPlugins()
    factory = TerminalFactory(context, dispatcher, config, clock, monotonic=monotonic)
    root = TM20Root(WebSocketResource(factory))
    metrics.sample(
        "tm20_upgrades_waiting",
        "Terminal WebSocket upgrades held now, waiting for a registration slot.",
        (),
        lambda: [((), float(factory.admission.waiting))],
    )
    cluster = _buildCluster(config, store, registry, clock)
    context.cluster = cluster
    root.putChild(
        b"health",
        HealthResource(
            store, lambda: {"connected": len(registry), "cluster": context.cluster.health()}
        ),
    )
    ready = ReadyResource(store)
    root.putChild(b"ready", ready)
    if isinstance(cluster, ClusterNode):
        router = CommandRouter(cluster)
        cluster.queue = queue
        cluster.pulls = pulls
        cluster.onTerminalChanged = registration.terminalChanged
        queue.remote = router
        context.pulls = ClusterPulls(pulls, router, commands)
    else:
        context.pulls = pulls
    context.queue = queue
    wireServices(context)
    reconciler = context.reconciler
    if reconciler is not None:  # wireServices built it
        metrics.sample(
            "tm20_reconciler_backlog",
            "Persons waiting to be queued plus reconciler commands outstanding, over all"
            " terminals.",
            (),
            lambda: [((), float(reconciler.backlog()))],
        )
    api = _mountApi(root, context, queue)
    _mountConsole(root, context)
    if api is not None:
        api.auth.metrics = metrics
        root.putChild(b"metrics", MetricsResource(metrics, api.auth))
    _pauseTerminalsWhileLogQueueFull(context.ingest, registry)
    site = QuietSite(root, config=config, clock=clock, terminals=factory)
    site.metrics = metrics
    server = Server(config, reactor, store, context, factory, root, site, events)
    server.sinkBacklog = SinkBacklog(store, clock, events.runner, metrics)
    ready.listening = lambda: server.listening
    return server


def _clusterRoles(server: Server, cluster: ClusterNode) -> None:
    """What runs once per cluster, on its leader: the sinks (unless --no-sinks), the sweep."""
    if server.config.runSinks:
        runner = server.events.runner
        backlog = server.sinkBacklog

        def startSinks() -> Deferred[None]:
            if backlog is not None:
                backlog.start()
            return Deferred.fromCoroutine(runner.start())

        def stopSinks() -> Deferred[None]:
            if backlog is not None:
                backlog.stop()
            return Deferred.fromCoroutine(runner.stop())

        cluster.roles[SINKS_ROLE] = (startSinks, stopSinks)
    watch = server.context.watch
    if watch is not None:
        cluster.roles["silence sweep"] = (watch.silence.start, watch.silence.stop)


def _buildCluster(config: ServerConfig, store: IStore, registry: Any, clock: Any) -> Any:
    """This process as a cluster node (PostgreSQL), or alone (SQLite): the same view."""
    nodeId = config.nodeId or defaultNodeId()
    if IClusterStore.providedBy(store):
        return ClusterNode(store, registry, clock, nodeId, lease=config.nodeLease)
    return LocalNode(registry, nodeId)


#: The actor recorded on commands the server queues by itself (clock corrections).
WATCH_ACTOR = "tm20-watch"


def _sampleQueues(metrics: Metrics, ingest: ILogIngest, queue: CommandQueue) -> None:
    """The queue depths, sampled at scrape time (no I/O)."""

    def logRows() -> list[tuple[tuple[str, ...], float]]:
        return [((), float(ingest.pendingRows))]

    metrics.sample(
        "tm20_log_queue_rows",
        "Log records accepted and waiting for their group commit.",
        (),
        logRows,
    )
    metrics.sample(
        "tm20_command_queue_workers",
        "Terminals whose durable command queue is being delivered now.",
        (),
        lambda: [((), float(queue.activeWorkers))],
    )


def _pauseTerminalsWhileLogQueueFull(ingest: ILogIngest, registry: TerminalRegistry) -> None:
    """
    While the store's bounded log queue is full, every terminal's socket is paused for that
    reason (L{PAUSE_STORE}); a socket its own full inbox paused stays paused until that reason
    ends too (the protocol keeps the reasons).
    """
    log = Logger()

    def observe(full: bool) -> None:
        log.warn(
            "log queue {state}: {action} reading from terminals",
            state="full" if full else "drained",
            action="pausing" if full else "resuming",
        )
        for session in registry.sessions():
            if full:
                session.pauseReading(PAUSE_STORE)
            else:
                session.resumeReading(PAUSE_STORE)

    ingest.addBackpressureObserver(observe)


def _mountApi(root: TM20Root, context: ServerContext, queue: CommandQueue) -> Any:
    """Mount C{/api}; @return: its L{tm20.api._app.TM20Api}, or C{None} without Klein."""
    try:
        from tm20.api import buildApiResource
    except ImportError:
        return None
    resource = buildApiResource(context, queue=queue, pulls=context.pulls)
    root.putChild(b"api", resource)
    return getattr(resource, "api", None)


def _mountConsole(root: TM20Root, context: ServerContext) -> None:
    """Mount the operator console at C{/admin/} (nothing without Klein or Jinja2)."""
    try:
        from tm20.console import buildConsole
    except ImportError:
        return
    console = buildConsole(context, context.config.consoleIdle)
    context.console = console
    root.putChild(b"admin", console.resource())


def collectorFor(server: Server) -> GarbageCollector:
    """The garbage collector's settings of a server process (L{tm20.collector})."""
    return GarbageCollector(server.config.gcThreshold, server.reactor, server.context.registry)


class TM20Service(service.Service):
    """
    Starts the store, then listens on every port; stops listening, closes terminals (4001),
    then closes the store.

    @ivar ready: a L{Deferred} firing with the list of listening ports once started.
    """

    log = Logger()
    name = "tm20"

    def __init__(
        self,
        server: Server,
        logObserver: ILogObserver | None = None,
        onStartFailure: Callable[[Failure], None] | None = None,
        preflight: bool = False,
        adopted: Sequence[tuple[int, int, str]] = (),
        collector: GarbageCollector | None = None,
    ) -> None:
        """
        @param onStartFailure: called with the failure when the service cannot start (after
            one line saying why was logged).
        @param preflight: check synchronously, before anything starts, that the ports can be
            bound and the database used, and raise L{StartupError} if not (for a daemonizing
            twistd, whose parent then exits non-zero: see L{tm20.preflight}).
        @param collector: the garbage collector's settings, settled once started and before
            the first terminal is accepted (a server process's own: C{twistd tm20}, a worker).
        """
        self.server = server
        self._preflight = preflight
        #: Listening sockets to adopt (file descriptor, address family, the endpoint string
        #: they serve) instead of the configured ports: a worker of C{--workers}
        #: (L{tm20.cluster.workers}); on an C{ssl:} port's socket, this process runs the TLS.
        self._adopted = list(adopted)
        self.ports: list[IListeningPort] = []
        self.ready: Deferred[list[IListeningPort]] = Deferred()
        self._logObserver = logObserver
        self._onStartFailure = onStartFailure
        self._collector = collector

    def setServiceParent(self, parent: Any) -> None:
        installObserver(parent, self._logObserver)
        super().setServiceParent(parent)

    def startService(self) -> None:
        if self._preflight:
            self._checkBeforeStarting()
        super().startService()
        self._start().addCallbacks(self.ready.callback, self._startFailed)

    def _checkBeforeStarting(self) -> None:
        from tm20 import preflight

        config = self.server.config
        try:
            preflight.check(config, [listenSpec(p, config.backlog) for p in config.ports])
        except Exception:
            why = explain(Failure(), config.database)
            self.log.critical("tm20 could not start: {error}", error=why)
            quietStartupError()
            raise StartupError(why) from None

    @inlineCallbacks
    def _start(self) -> Any:
        server = self.server
        yield waitForDatabase(server.store, server.reactor, server.config.waitForDatabase)
        yield server.store.start()
        cluster = server.context.cluster
        clustered = isinstance(cluster, ClusterNode)
        yield server.events.start(runSinks=not clustered)
        if clustered:
            _clusterRoles(server, cluster)
            yield cluster.start()
        if server.context.access is not None:
            yield server.context.access.start()
        if self._collector is not None:
            self._collector.settle()  # the start-up heap is built; no terminal yet
        for fd, family, spec in self._adopted:
            factory: Any = server.site
            if isTLS(spec):
                try:
                    factory = tlsFactory(spec, server.site)
                except Exception as e:  # a TLS key file missing, ...
                    raise StartupError(f"cannot serve TLS on {spec}: {oneLine(str(e))}") from e
            adopted = server.reactor.adoptStreamPort(fd, family, factory)
            os.close(fd)  # adoptStreamPort duplicated it
            self.ports.append(adopted)
            self.log.info("serving the parent's socket {fd} ({endpoint})", fd=fd, endpoint=spec)
        for port in server.config.ports if not self._adopted else ():
            spec = listenSpec(port, server.config.backlog)
            try:
                listening = yield serverFromString(server.reactor, spec).listen(server.site)
            except CannotListenError:
                raise  # explain() says why
            except Exception as e:  # a bad endpoint string, a TLS key file missing, ...
                raise StartupError(f"cannot listen on {spec}: {oneLine(str(e))}") from e
            self.ports.append(listening)
            self.log.info("listening on {endpoint}", endpoint=spec)
        server.listening = True
        server.factory.admission.onCrowded = self._crowded
        if server.context.watch is not None and not clustered:
            server.context.watch.start()  # (in a cluster, the sweep is a leader's role)
        if server.sinkBacklog is not None and server.config.runSinks and not clustered:
            server.sinkBacklog.start()
        if server.context.reconciler is not None:
            server.context.reconciler.start()
        return list(self.ports)

    def _crowded(self, crowded: bool) -> None:
        """
        Stop accepting connections while as many terminal upgrades wait as may register at
        once (see L{tm20.terminal.admission}); accept again once the line is down to half.
        New connections wait in the kernel's listen queue meanwhile.
        """
        if not self.server.listening:
            return  # shutting down: the ports are closed or closing
        for port in self.ports:
            switch = getattr(port, "stopReading" if crowded else "startReading", None)
            if switch is not None:
                switch()
        self.log.info(
            "{what} accepting connections: {n} terminal upgrades waiting",
            what="stopped" if crowded else "resumed",
            n=self.server.factory.admission.waiting,
        )

    def _startFailed(self, f: Failure) -> None:
        # One line saying why, no traceback: an operator's problem, not a bug.
        self.log.critical(
            "tm20 could not start: {error}", error=explain(f, self.server.config.database)
        )
        if self._onStartFailure is not None:
            self._onStartFailure(f)
        self.ready.errback(f)
        self.ready.addErrback(lambda _: None)

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        server = self.server
        server.listening = False
        if server.context.watch is not None:
            server.context.watch.stop()
        if server.sinkBacklog is not None:
            server.sinkBacklog.stop()
        if server.context.reconciler is not None:
            server.context.reconciler.stop()
        if server.context.access is not None:
            server.context.access.stop()
        for port in self.ports:
            yield port.stopListening()
        self.ports = []
        server.factory.admission.stop()
        sessions = server.context.registry.sessions()
        if sessions:
            self.log.info("closing {n} terminal connections", n=len(sessions))
            waits = []
            for session in sessions:
                session.close(CloseCode.SHUTDOWN, "server shutting down")
                waits.append(session.is_closed)
            closing = DeferredList(waits, consumeErrors=True)
            closing.addTimeout(server.config.closeTimeout + 1, server.reactor)
            try:
                yield closing
            except Exception:
                self.log.warn("some terminals did not close in time")
            # autobahn resolves is_closed before it aborts the transport: one more turn.
            yield deferLater(server.reactor, 0, lambda: None)
        if isinstance(server.context.cluster, ClusterNode):
            yield server.context.cluster.stop()
        # the log batches accepted are written before the store closes
        yield server.context.ingest.stop()
        yield server.events.stop()
        yield server.store.stop()
        if self._collector is not None:
            self._collector.release()
        self.log.info("tm20 stopped")
