"""
C{sendlog}: store a batch of attendance logs, acknowledged only once committed.

The parser already refused (C{result:false}) a batch without a C{record} list, or with an empty
one while C{count} says otherwise; records that can never be stored come as
L{SendLog.rejected} and are held in the quarantine, so the batch is still acknowledged whole,
with the terminal's own C{count}.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.handlers._fields import expect
from tm20.interfaces import HandlerResult, ICommandHandler, IServerContext, ITerminalSession
from tm20.protocol import replies
from tm20.protocol.messages import SendLog, TerminalMessage


@implementer(IPlugin, ICommandHandler)
class SendLogHandler:
    """
    Store the batch (and quarantine its unstorable records), then acknowledge it with
    C{count}, C{logindex} and C{cloudtime} (L{tm20.services.ingest.LogIngest.sendlog}).  If the
    store fails, the terminal gets C{result:false} and keeps the batch for a later resend.  An
    empty batch claiming no records (C{record:[]} with C{count} 0 or absent) stores nothing and
    is acknowledged.
    """

    command = "sendlog"

    def handle(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> HandlerResult:
        batch = expect(message, SendLog)
        if not session.registered or session.sn is None:
            return replies.failureFields()
        return context.ingest.sendlog(session.sn, session.terminal, batch)
