"""C{reg}: register a terminal (and, repeated, its heartbeat)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.errors import TerminalRefused
from tm20.handlers._fields import expect, replyFields
from tm20.interfaces import ICommandHandler, IServerContext, ITerminalSession
from tm20.lanes import inBackground
from tm20.protocol import replies
from tm20.protocol.codes import CloseCode
from tm20.protocol.messages import Register, TerminalMessage
from tm20.services.identity import REASON_IDENTITY, REASON_SECRET
from tm20.services.registration import REASON_INACTIVE, REASON_PENDING, REASON_SN_CHANGED

#: Refusal reason shown on the terminal -> the C{reason} label of the refusals metric.
_REFUSALS = {
    REASON_PENDING: "pending",
    REASON_INACTIVE: "inactive",
    REASON_IDENTITY: "identity",
    REASON_SECRET: "identity",
    REASON_SN_CHANGED: "sn_changed",
}


@implementer(IPlugin, ICommandHandler)
class RegHandler:
    """
    Accept or refuse a terminal.  A refused terminal gets C{result:false} with the reason (shown
    on its screen) and is disconnected; nothing it sends is stored.  A connection registered as
    one terminal that sends C{reg} for another gets the refusal but stays connected, still as
    the first terminal.
    """

    command = "reg"

    @inlineCallbacks
    def handle(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> Generator[Deferred[Any], Any, dict[str, Any] | None]:
        register = expect(message, Register)
        try:
            terminal = yield context.registration.register(session, register)
        except TerminalRefused as refused:
            metrics = context.metrics
            if metrics is not None and refused.reason in _REFUSALS:
                metrics.refused(_REFUSALS[refused.reason])
            session.sendReply(replies.regRefused(refused.reason))
            if refused.close:
                session.close(CloseCode.REFUSED, refused.reason)
            return None
        watch = context.watch
        if watch is not None:
            inBackground(watch.registered, terminal, register)
        return replyFields(
            replies.regAccepted(context.registration.cloudTimeFor(terminal), nosenduser=False)
        )
