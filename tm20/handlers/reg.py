"""C{reg}: register a terminal (and, repeated, its heartbeat)."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.errors import TerminalRefused
from tm20.handlers._fields import replyFields
from tm20.interfaces import ICommandHandler
from tm20.protocol import replies
from tm20.protocol.messages import Register
from tm20.services.identity import REASON_IDENTITY, REASON_SECRET
from tm20.services.registration import REASON_INACTIVE, REASON_PENDING, REASON_SN_CHANGED

#: WebSocket close code sent to a refused terminal.
CLOSE_REFUSED = 4003

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
    def handle(self, context: Any, session: Any, message: Register) -> Any:
        try:
            terminal = yield context.registration.register(session, message)
        except TerminalRefused as refused:
            metrics = getattr(context, "metrics", None)
            if metrics is not None and refused.reason in _REFUSALS:
                metrics.refused(_REFUSALS[refused.reason])
            session.sendReply(replies.regRefused(refused.reason))
            if refused.close:
                session.close(CLOSE_REFUSED, refused.reason)
            return None
        watch = getattr(context, "watch", None)
        if watch is not None:
            watch.registered(terminal, message)
        return replyFields(
            replies.regAccepted(context.registration.cloudTimeFor(terminal), nosenduser=False)
        )
