"""C{sendlog}: store a batch of attendance logs, acknowledged only once committed."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.handlers._fields import replyFields
from tm20.interfaces import ICommandHandler
from tm20.protocol import replies
from tm20.protocol.messages import SendLog


@implementer(IPlugin, ICommandHandler)
class SendLogHandler:
    """
    Store the batch, then acknowledge it with C{count}, C{logindex} and C{cloudtime}.  If the
    store fails, the terminal gets C{result:false} and keeps the batch for a later resend.
    """

    command = "sendlog"

    @inlineCallbacks
    def handle(self, context: Any, session: Any, message: SendLog) -> Any:
        if not session.registered:
            return replyFields(replies.failure("sendlog"))
        yield context.ingest.ingest(session.sn, message.records)
        return replyFields(
            replies.sendlogAck(
                count=message.count,
                logindex=message.logindex,
                cloudtime=context.registration.cloudTimeFor(session.terminal),
            )
        )
