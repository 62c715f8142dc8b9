"""
C{sendlog}: store a batch of attendance logs, acknowledged only once committed.

The parser already refused (C{result:false}) a batch without a C{record} list, or with an
empty one while C{count} says otherwise; records that can never be stored come as
L{SendLog.rejected} and are held in the quarantine, so the batch is still acknowledged whole,
with the terminal's own C{count}.

A batch of one punch at a door under access control (L{tm20.services.access.AccessService.controls})
asks for an access decision (server-approval mode): it is decided and stored with its decision
by the access service, and the reply carries C{access} and C{message}.  Any other batch (a
backlog, or any batch of a terminal not under access control) is stored and answered as
without access control: no decision, no C{access}.
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
        sn = session.sn
        if not session.registered or sn is None:
            return replies.failureFields()
        access = context.access
        if access is not None and access.wantsDecision(sn, batch.records, len(batch.rejected)):
            return access.answerPunch(sn, session.terminal, batch, context.ingest)
        return context.ingest.sendlog(sn, session.terminal, batch)
