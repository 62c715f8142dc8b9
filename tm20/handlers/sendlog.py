"""
C{sendlog}: store a batch of attendance logs, acknowledged only once committed.

The parser already refused (C{result:false}) a batch without a C{record} list, or with an empty
one while C{count} says otherwise; records that can never be stored come as
L{SendLog.rejected} and are held in the quarantine, so the batch is still acknowledged whole,
with the terminal's own C{count}.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.handlers._fields import expect, replyFields
from tm20.interfaces import ICommandHandler, IServerContext, ITerminalSession
from tm20.protocol import replies
from tm20.protocol.messages import SendLog, TerminalMessage


@implementer(IPlugin, ICommandHandler)
class SendLogHandler:
    """
    Store the batch (and quarantine its unstorable records), then acknowledge it with
    C{count}, C{logindex} and C{cloudtime}.  If the store fails, the terminal gets
    C{result:false} and keeps the batch for a later resend.  An empty batch claiming no records
    (C{record:[]} with C{count} 0 or absent) stores nothing and is acknowledged.
    """

    command = "sendlog"

    @inlineCallbacks
    def handle(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> Generator[Deferred[Any], Any, dict[str, Any]]:
        batch = expect(message, SendLog)
        sn = session.sn
        if not session.registered or sn is None:
            return replyFields(replies.failure("sendlog"))
        yield context.ingest.ingest(sn, batch.records, batch.rejected)
        watch = context.watch
        if watch is not None:
            watch.logsStored(sn, batch)
        return replyFields(
            replies.sendlogAck(
                count=batch.count,
                logindex=batch.logindex,
                cloudtime=context.registration.cloudTimeFor(session.terminal),
            )
        )
