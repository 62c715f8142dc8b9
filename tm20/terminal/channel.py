"""
One command in flight per terminal.

The protocol has no correlation id: a reply only says C{ret: <name>}.  So a terminal gets one
server command at a time, the reply is matched by name, and the next command waits its turn
(the vendor demos do the same).  Pure code: the clock and the frame sender are injected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from tm20.errors import CommandTimeout, TerminalGone
from tm20.protocol.messages import CommandReply

#: Commands the terminal never answers.
NO_REPLY_COMMANDS = frozenset({"reboot"})


@attrs.define
class _Pending:
    payload: Mapping[str, Any]
    timeout: float
    deferred: Deferred[CommandReply | None]
    timer: IDelayedCall | None = None

    @property
    def name(self) -> str:
        return str(self.payload["cmd"])


class CommandChannel:
    """
    Serialises commands to one terminal and matches their replies.

    @ivar log: the logger.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        send: Callable[[Mapping[str, Any]], None],
        defaultTimeout: float = 30.0,
    ) -> None:
        self._clock = clock
        self._send = send
        self._defaultTimeout = defaultTimeout
        self._queue: deque[_Pending] = deque()
        self._inFlight: _Pending | None = None
        self._closed: BaseException | None = None

    @property
    def busy(self) -> bool:
        """C{True} while a command waits for its reply."""
        return self._inFlight is not None

    @property
    def queued(self) -> int:
        """Commands waiting for their turn (not counting the one in flight)."""
        return len(self._queue)

    @property
    def inFlightName(self) -> str | None:
        """The name of the command awaiting its reply, if any."""
        return self._inFlight.name if self._inFlight is not None else None

    def execute(
        self, payload: Mapping[str, Any], timeout: float | None = None
    ) -> Deferred[CommandReply | None]:
        """
        Queue C{payload} (a dict with C{cmd}) for the terminal.

        @return: a L{Deferred} firing with the terminal's L{CommandReply} (or C{None} for
            commands without reply, once sent), failing with L{CommandTimeout} or
            L{TerminalGone}.  Cancelling it withdraws the command.
        """
        if self._closed is not None:
            return _failed(self._closed)
        pending = _Pending(
            payload=payload,
            timeout=self._defaultTimeout if timeout is None else timeout,
            deferred=Deferred(lambda d: self._cancel(pending)),
        )
        self._queue.append(pending)
        self._pump()
        return pending.deferred

    def replyReceived(self, reply: CommandReply) -> bool:
        """
        A C{ret} arrived.

        @return: C{True} if it answered the command in flight, C{False} if nobody asked for it
            (a late reply after a timeout, a probe's answer, a duplicate).
        """
        current = self._inFlight
        if current is None or current.name != reply.ret:
            return False
        self._finish(current)
        current.deferred.callback(reply)
        self._pump()
        return True

    def close(self, reason: BaseException | None = None) -> None:
        """The connection is gone: fail everything pending with C{reason} (L{TerminalGone})."""
        self._closed = reason if reason is not None else TerminalGone("terminal disconnected")
        pending = [self._inFlight] if self._inFlight is not None else []
        pending.extend(self._queue)
        self._inFlight = None
        self._queue.clear()
        for p in pending:
            if p.timer is not None and p.timer.active():
                p.timer.cancel()
            if not p.deferred.called:
                p.deferred.errback(self._closed)

    # -- internals -----------------------------------------------------------------------------------

    def _pump(self) -> None:
        while self._inFlight is None and self._queue and self._closed is None:
            pending = self._queue.popleft()
            try:
                self._send(pending.payload)
            except Exception as e:
                pending.deferred.errback(TerminalGone(f"could not send: {e}"))
                continue
            if pending.name in NO_REPLY_COMMANDS:
                pending.deferred.callback(None)
                continue
            self._inFlight = pending
            pending.timer = self._clock.callLater(pending.timeout, self._timedOut, pending)

    def _finish(self, pending: _Pending) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        if self._inFlight is pending:
            self._inFlight = None

    def _timedOut(self, pending: _Pending) -> None:
        pending.timer = None
        self._finish(pending)
        self.log.info(
            "terminal did not answer {command} within {timeout}s",
            command=pending.name,
            timeout=pending.timeout,
        )
        pending.deferred.errback(
            CommandTimeout(f"no reply to {pending.name} within {pending.timeout:g}s")
        )
        self._pump()

    def _cancel(self, pending: _Pending) -> None:
        if pending in self._queue:
            self._queue.remove(pending)
        elif self._inFlight is pending:
            self._finish(pending)
            self._pump()
        # Deferred fires CancelledError itself after the canceller returns.


def _failed(reason: BaseException) -> Deferred[CommandReply | None]:
    d: Deferred[CommandReply | None] = Deferred()
    d.errback(reason)
    return d


__all__ = ["CommandChannel", "NO_REPLY_COMMANDS", "CancelledError"]
