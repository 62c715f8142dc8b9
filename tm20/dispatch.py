"""
The dispatcher: one L{ICommandHandler} per terminal command, found as C{twisted.plugin} plugins.

Every terminal command gets a reply, whatever happens: an unknown command or a failing handler is
answered C{{"ret": cmd, "result": false, "reason": 1}} (a terminal that gets no reply resends
forever).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from tm20.errors import StoreUnavailable
from tm20.interfaces import ICommandHandler, IServerContext, ITerminalSession
from tm20.protocol import replies
from tm20.protocol.messages import TerminalMessage

#: Modules of the built-in handlers; any other handler for the same command overrides them.
BUILTIN_MODULE_PREFIX = "tm20.handlers."


def isBuiltin(handler: object) -> bool:
    """C{True} for the handlers shipped in C{tm20.handlers}."""
    return type(handler).__module__.startswith(BUILTIN_MODULE_PREFIX)


def handlersFromPlugins() -> dict[str, ICommandHandler]:
    """
    Load every L{ICommandHandler} plugin of C{tm20.plugins}; an operator's handler wins over a
    built-in one for the same command.
    """
    from twisted.plugin import getPlugins

    import tm20.plugins

    return chooseHandlers(getPlugins(ICommandHandler, tm20.plugins))


def chooseHandlers(found: Iterable[ICommandHandler]) -> dict[str, ICommandHandler]:
    """Index handlers by command, preferring non-built-in ones."""
    chosen: dict[str, ICommandHandler] = {}
    for handler in found:
        name = str(handler.command).strip().lower()
        current = chosen.get(name)
        if current is None or (isBuiltin(current) and not isBuiltin(handler)):
            chosen[name] = handler
    return chosen


class Dispatcher:
    """Routes typed terminal messages to their handler and shapes the reply."""

    log = Logger()

    def __init__(self, handlers: Mapping[str, ICommandHandler]) -> None:
        self.handlers = dict(handlers)
        # the labelled instruments of each command, by metrics and label, looked up once (the
        # labels are the handled commands and "other": a bounded set)
        self._instruments: dict[tuple[Any, str], _Instruments] = {}

    @classmethod
    def fromPlugins(cls) -> Dispatcher:
        """A dispatcher with every handler found by L{handlersFromPlugins}."""
        return cls(handlersFromPlugins())

    def dispatch(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> Deferred[dict[str, Any] | None]:
        """
        Handle C{message}.

        @return: a L{Deferred} firing with the complete reply (with C{ret}), or C{None} when the
            handler chose to send nothing (it replied itself, or the command has no reply).
            It never fails.
        """
        cmd = message.cmd
        handler = self.handlers.get(cmd)
        metrics = context.metrics
        if metrics is not None:
            started = context.clock.seconds()
            key = (metrics, cmd if handler is not None else "other")
            instruments = self._instruments.get(key)
            if instruments is None:
                instruments = self._instruments[key] = _Instruments(metrics, key[1])
            d = self._dispatch(context, session, message, cmd, handler)
            return _measured(instruments, context.clock, started, d)
        return self._dispatch(context, session, message, cmd, handler)

    def _dispatch(
        self,
        context: IServerContext,
        session: ITerminalSession,
        message: TerminalMessage,
        cmd: str,
        handler: ICommandHandler | None,
    ) -> Deferred[dict[str, Any] | None]:
        if handler is None:
            self.log.info(
                "no handler for terminal command {cmd!r} from {sn}", cmd=cmd, sn=session.sn
            )
            d: Deferred[dict[str, Any] | None] = Deferred()
            d.callback(replies.failure(cmd))
            return d

        def shape(fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
            if fields is None:
                return None
            return {"ret": cmd, **fields}

        def failed(f: Failure) -> dict[str, Any]:
            if f.check(StoreUnavailable):
                # expected while the database is down (the services log each outage once):
                # no traceback, and nothing above debug, once per call
                self.log.debug(
                    "{cmd!r} from {sn} refused: {error}",
                    cmd=cmd,
                    sn=session.sn,
                    error=f.getErrorMessage(),
                )
                return replies.failure(cmd)
            self.log.failure(
                "handler for {cmd!r} failed (terminal {sn})", f, cmd=cmd, sn=session.sn
            )
            return replies.failure(cmd)

        # a handler returns the fields, None or a Deferred of either: maybeDeferred flattens it
        result: Deferred[Any] = maybeDeferred(handler.handle, context, session, message)
        return result.addCallback(shape).addErrback(failed)


class _Instruments:
    """The labelled children of the per-message instruments of one command."""

    __slots__ = ("metrics", "label", "received", "acked", "_refused", "latency")

    def __init__(self, metrics: Any, label: str) -> None:
        self.metrics = metrics
        self.label = label
        self.received = metrics.messages.labels(label)
        self.acked = metrics.acks.labels(label, "true")
        self._refused: Any = None
        self.latency = metrics.ackLatency.labels(label)

    @property
    def refused(self) -> Any:
        # made on first use: a command never refused shows no refused series
        if self._refused is None:
            self._refused = self.metrics.acks.labels(self.label, "false")
        return self._refused


def _measured(
    instruments: _Instruments,
    clock: Any,
    started: float,
    d: Deferred[dict[str, Any] | None],
) -> Deferred[dict[str, Any] | None]:
    """Count the message, and its reply's result and latency."""
    instruments.received.inc()

    def answered(reply: dict[str, Any] | None) -> dict[str, Any] | None:
        if reply is not None:
            if reply.get("result", True) is not False:
                instruments.acked.inc()
            else:
                instruments.refused.inc()
            instruments.latency.observe(max(0.0, clock.seconds() - started))
        return reply

    return d.addCallback(answered)
