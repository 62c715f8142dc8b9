"""
Wires the services that act on terminals through the durable queue: the queue itself, pulls,
the reconciler and the person service, kept on the L{tm20.context.ServerContext}.
"""

from __future__ import annotations

from typing import Any

from tm20.interfaces import IAccessStore
from tm20.services.access import AccessService
from tm20.services.persons import PersonService
from tm20.services.pulls import PullService
from tm20.services.queue import CommandQueue
from tm20.services.reconciler import Reconciler

__all__ = ["wireServices"]


def wireServices(context: Any) -> None:
    """
    Build what the context lacks (C{queue}, C{pulls}, C{reconciler}, C{persons}) and hook them:
    the queue delivers after each registration, then the reconciler reconciles the terminal.
    """
    config = context.config
    if context.queue is None:
        context.queue = CommandQueue(
            context.store,
            context.commands,
            context.registration,
            context.clock,
            timeout=config.commandTimeout,
            addLogs=context.ingest.addLogs,
        )
        context.registration.observers.append(context.queue.deliverPending)
    if context.pulls is None:
        context.pulls = PullService(context.store, context.commands, addLogs=context.ingest.addLogs)
    if context.reconciler is None:
        context.reconciler = Reconciler(
            context.store,
            context.queue,
            context.commands,
            context.registration,
            context.pulls,
            context.clock,
            registry=context.registry,
            interval=config.reconcileInterval,
            maxOutstanding=config.reconcileMaxOutstanding,
        )
        context.reconciler.hook()
    if context.persons is None:
        context.persons = PersonService(context.store, context.reconciler)
    if context.access is None and IAccessStore.providedBy(context.store):
        context.access = AccessService(
            context.store,
            context.clock,
            maxAge=config.accessMaxAge,
            replyBudget=config.accessReplyBudget,
            fallback=config.accessFallback,
            refreshInterval=config.accessRefreshInterval,
            defaultTimezone=config.defaultTimezone,
            control=config.accessControl,
            metrics=context.metrics,
        )
