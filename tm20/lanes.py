"""
Two lanes to the database: what a terminal or an API client waits for, and the bookkeeping that
follows it.

A registration is answered after one transaction; what follows it (the cluster's holder record,
the watch's clock check, the reconciler's look at the terminal's persons, the command queue's
look for waiting commands, the connection event) is several more.  When thousands of terminals
register at once, that follow-up work must not stand in the queue for a database connection
ahead of the next terminals' registrations: it runs in the I{background} lane, which the
PostgreSQL pool serves after the waiting foreground work (and never with all its connections;
see L{tm20.store._pgpool.Pool}).

The lane travels with the code through C{contextvars}: L{inBackground} runs a function in a
context marked as background; Twisted runs an C{inlineCallbacks} generator or a coroutine in a
copy of the context it was started in, so every store call made by that work, however late, is
in the background lane.  Plain C{Deferred} callbacks run in the context of whoever fires them:
a lane is a priority, never a guarantee of anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, copy_context
from typing import ParamSpec, TypeVar

__all__ = ["inBackground", "inForeground", "isBackground"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_background: ContextVar[bool] = ContextVar("tm20_store_background", default=False)


def inBackground(f: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Call C{f(*args, **kwargs)} with its database work in the background lane."""
    context = copy_context()
    context.run(_background.set, True)
    return context.run(f, *args, **kwargs)


def inForeground(f: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """
    Call C{f(*args, **kwargs)} with its database work in the foreground lane, whoever started
    it: for work that someone waits for even when background work sets it going (a terminal's
    command queue, started by a registration, also delivers the API's commands).
    """
    context = copy_context()
    context.run(_background.set, False)
    return context.run(f, *args, **kwargs)


def isBackground() -> bool:
    """Whether the code running now is background work (L{inBackground})."""
    return _background.get()
