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

#: WebSocket close code sent to a refused terminal.
CLOSE_REFUSED = 4003


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
            session.sendReply(replies.regRefused(refused.reason))
            if refused.close:
                session.close(CLOSE_REFUSED, refused.reason)
            return None
        return replyFields(
            replies.regAccepted(context.registration.cloudTimeFor(terminal), nosenduser=False)
        )
