"""
L{tm20.interfaces.IEventStore} written once for both stores, on L{tm20.store._eventsql}'s
operations.  Each store adds its own plumbing: how the operations run (L{OpStore}), and where a
read of the event log runs (L{EventStoreMixin._runEventsRead}: SQLite reads it on a connection of
its own, L{tm20.store._sqlite_events}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail

from tm20.events.model import Event, EventQuery, NewEvent, SinkAttempt, SinkStream, Webhook
from tm20.store import _eventsql as sql
from tm20.store._eventrows import streamColumns, webhookColumns
from tm20.store._ops import Op, OpStore
from tm20.store._rows import dumpJSON

__all__ = ["EventStoreMixin"]

_T = TypeVar("_T")


class EventStoreMixin(OpStore):
    """L{tm20.interfaces.IEventStore} for a store providing L{OpStore}."""

    _eventObservers: list[Callable[[], object]]

    def _runEventsRead(self, op: Op[_T]) -> Deferred[_T]:
        """Run a read of the event log (the store's own readers by default)."""
        return self._runOp(False, op)

    # -- wake-ups ----------------------------------------------------------------------------------

    def addEventObserver(self, observer: Callable[[], object]) -> Callable[[], None]:
        """See L{tm20.interfaces.IEventStore.addEventObserver}."""
        self._eventObservers.append(observer)

        def remove() -> None:
            if observer in self._eventObservers:
                self._eventObservers.remove(observer)

        return remove

    def _eventsCommitted(self, result: Any = None) -> Any:
        for observer in list(self._eventObservers):
            try:
                observer()
            except Exception:  # an observer's bug must not fail the write
                pass
        return result

    # -- events ------------------------------------------------------------------------------------

    def appendEvent(self, type: str, sn: str | None, payload: Mapping[str, Any]) -> Deferred[Event]:
        """See L{tm20.interfaces.IEventStore.appendEvent}."""
        now = self._now()
        try:
            event = NewEvent(type, sn, dict(payload))
            dumpJSON(event.payload)
        except (TypeError, ValueError) as e:
            return fail(e)
        return self._runOpWithEvents(sql.appendEvent(self.dialect, event, now))

    def appendEvents(self, events: Sequence[NewEvent]) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.appendEvents}."""
        now = self._now()
        events = list(events)
        try:
            for event in events:
                dumpJSON(event.payload)
        except (TypeError, ValueError) as e:
            return fail(e)
        return self._runOpWithEvents(sql.appendEvents(events, now))

    def listEvents(self, query: EventQuery) -> Deferred[list[Event]]:
        """See L{tm20.interfaces.IEventStore.listEvents}."""
        return self._runEventsRead(sql.listEvents(self.dialect, query))

    def lastEventId(self) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.lastEventId}."""
        return self._runOp(False, sql.lastEventId(self.dialect))

    def pruneEvents(self, before: datetime) -> Deferred[int]:
        """See L{tm20.interfaces.IEventStore.pruneEvents}."""
        return self._runOp(True, sql.pruneEvents(self.dialect, before))

    # -- delivery streams --------------------------------------------------------------------------

    def getSinkStream(self, key: str) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.getSinkStream}."""
        return self._runOp(False, sql.getSinkStream(self.dialect, key))

    def openSinkStream(self, key: str, startAfter: int | None) -> Deferred[SinkStream]:
        """See L{tm20.interfaces.IEventStore.openSinkStream}."""
        return self._runOp(True, sql.openSinkStream(self.dialect, key, startAfter, self._now()))

    def updateSinkStream(self, key: str, changes: Mapping[str, Any]) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.updateSinkStream}."""
        try:
            columns = streamColumns(changes)
        except ValueError as e:
            return fail(e)
        return self._runOp(True, sql.updateSinkStream(self.dialect, key, columns, self._now()))

    def recordSinkAttempt(
        self, attempt: SinkAttempt, changes: Mapping[str, Any]
    ) -> Deferred[SinkStream | None]:
        """See L{tm20.interfaces.IEventStore.recordSinkAttempt}."""
        try:
            columns = streamColumns(changes)
        except ValueError as e:
            return fail(e)
        op = sql.recordSinkAttempt(self.dialect, attempt, columns, self._now())
        return self._runOp(True, op)

    def listSinkAttempts(
        self, key: str, limit: int, beforeId: int | None
    ) -> Deferred[list[SinkAttempt]]:
        """See L{tm20.interfaces.IEventStore.listSinkAttempts}."""
        return self._runOp(False, sql.listSinkAttempts(self.dialect, key, limit, beforeId))

    # -- webhooks ----------------------------------------------------------------------------------

    def createWebhook(
        self,
        url: str,
        types: Sequence[str],
        sn: str | None,
        secret: str,
        description: str | None,
    ) -> Deferred[Webhook]:
        """See L{tm20.interfaces.IEventStore.createWebhook}."""
        op = sql.createWebhook(self.dialect, url, types, sn, secret, description, self._now())
        return self._runOp(True, op)

    def getWebhook(self, webhookId: int) -> Deferred[Webhook | None]:
        """See L{tm20.interfaces.IEventStore.getWebhook}."""
        return self._runOp(False, sql.getWebhook(self.dialect, webhookId))

    def listWebhooks(self) -> Deferred[list[Webhook]]:
        """See L{tm20.interfaces.IEventStore.listWebhooks}."""
        return self._runOp(False, sql.listWebhooks(self.dialect))

    def updateWebhook(self, webhookId: int, changes: Mapping[str, Any]) -> Deferred[Webhook | None]:
        """See L{tm20.interfaces.IEventStore.updateWebhook}."""
        try:
            columns = webhookColumns(changes)
        except ValueError as e:
            return fail(e)
        return self._runOp(True, sql.updateWebhook(self.dialect, webhookId, columns, self._now()))

    def deleteWebhook(self, webhookId: int) -> Deferred[bool]:
        """See L{tm20.interfaces.IEventStore.deleteWebhook}: its stream and attempts too."""
        return self._runOp(True, sql.deleteWebhook(webhookId))
