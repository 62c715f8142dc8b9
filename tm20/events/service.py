"""
The events side of a server: the feed, the sink runner, retention pruning and the
C{terminal.connected} / C{terminal.disconnected} events.  Started after the store, stopped
before it (L{tm20.service.TM20Service}).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from tm20.events.feed import EventFeed
from tm20.events.model import NewEvent
from tm20.events.payloads import connectionEvent
from tm20.events.runner import SinkRunner
from tm20.events.sinks import RetrySchedule
from tm20.interfaces import IEventsService
from tm20.store._rows import utcFromSeconds

#: How often old events are pruned (seconds).
PRUNE_INTERVAL = 3600.0


def pluginSinks() -> list[Any]:
    """
    The L{tm20.interfaces.IEventSink} plugins (each server gets its own shallow copy, so that
    what a sink sets up in C{start} is per server).
    """
    from twisted.plugin import getPlugins

    import tm20.plugins
    from tm20.interfaces import IEventSink

    sinks = [copy.copy(plugin) for plugin in getPlugins(IEventSink, tm20.plugins)]
    return sorted(sinks, key=lambda sink: str(sink.name))


@implementer(IEventsService)
class EventsService:
    """
    @ivar feed: the L{EventFeed} readers wait on (SSE, sinks).
    @ivar runner: the L{SinkRunner}.
    """

    log = Logger()

    def __init__(
        self,
        store: Any,
        clock: Any,
        config: Any,
        registry: Any,
        sinks: Sequence[Any] | None = None,
        context: Any = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.feed = EventFeed(store, clock, config.eventPollInterval)
        if sinks is None:
            sinks = pluginSinks() if config.runSinks else []
        self.runner = SinkRunner(
            store,
            clock,
            sinks,
            self.feed,
            RetrySchedule.parse(config.webhookRetrySchedule),
            context=context,
        )
        #: connection events waiting for their write (many per transaction in a storm)
        self._connections: list[NewEvent] = []
        self._flushing: Deferred[None] | None = None
        self._pruning: Deferred[None] | None = None
        self._pruner = LoopingCall(self.prune)
        self._pruner.clock = clock
        self._running = False
        registry.observers.append(self._connection)
        store.defaultTimezone = config.defaultTimezone

    def start(self, runSinks: bool = True) -> Deferred[None]:
        """
        Start the feed, the pruning and (unless C{runSinks} is false: a cluster node that does
        not lead, see L{tm20.cluster.node}) the sink runner.
        """
        self._running = True
        self.feed.start()
        if self.config.eventRetention > 0:
            self._pruner.start(PRUNE_INTERVAL, now=True)
        if not runSinks:
            return Deferred.fromCoroutine(_nothing())
        return Deferred.fromCoroutine(self.runner.start())

    def stop(self) -> Deferred[None]:
        self._running = False
        if self._pruner.running:
            self._pruner.stop()
        self.feed.stop()

        async def stop() -> None:
            if self._pruning is not None:
                await self._pruning  # before the store closes under it
            await self.runner.stop()
            while self._flushing is not None or self._connections:
                await (self._flushing or self._flushConnections())

        return Deferred.fromCoroutine(stop())

    def prune(self) -> Deferred[None]:
        """Delete the events older than the retention (errors are logged: it runs again)."""
        cutoff = utcFromSeconds(self.clock.seconds() - self.config.eventRetention)
        d: Deferred[None] = self.store.pruneEvents(cutoff)
        self._pruning = d

        def pruned(count: int) -> None:
            if count:
                self.log.info(
                    "pruned {count} events older than {cutoff}", count=count, cutoff=cutoff
                )

        def failed(failure: Any) -> None:
            self.log.warn("pruning events failed: {error}", error=failure.getErrorMessage())

        def done(result: Any) -> Any:
            if self._pruning is d:
                self._pruning = None
            return result

        d.addCallbacks(pruned, failed)
        d.addBoth(done)
        return d

    def _connection(self, sn: str, session: Any, connected: bool) -> None:
        """
        Queue C{terminal.connected} / C{terminal.disconnected}: written together with the others
        of the same moment in one transaction (a reconnect storm of thousands of terminals is a
        few writes, not one commit each).
        """
        if not self._running:
            return
        peer = getattr(session, "peerHost", None) or getattr(session, "peer", None)
        code = reason = None
        if not connected:  # autobahn's close handshake fields, when there was one
            code = getattr(session, "localCloseCode", None) or getattr(
                session, "remoteCloseCode", None
            )
            reason = getattr(session, "localCloseReason", None) or getattr(
                session, "remoteCloseReason", None
            )
        self._connections.append(connectionEvent(connected, sn, peer, code, reason))
        if self._flushing is None:
            flushing = self._flushConnections()
            if not flushing.called:  # (a store failing at once has finished it already)
                self._flushing = flushing

    def _flushConnections(self) -> Deferred[None]:
        async def flush() -> None:
            try:
                while self._connections:
                    batch, self._connections = self._connections, []
                    try:
                        await self.store.appendEvents(batch)
                    except Exception as e:
                        self.log.warn(
                            "could not record {count} connection events: {error}",
                            count=len(batch),
                            error=e,
                        )
            finally:
                self._flushing = None

        return Deferred.fromCoroutine(flush())


async def _nothing() -> None:
    return None


__all__ = ["PRUNE_INTERVAL", "EventsService", "pluginSinks"]
