"""
C{sendlog}: store a batch of attendance logs, acknowledged only once committed.

The parser already refused (C{result:false}) a batch without a C{record} list, or with an empty
one while C{count} says otherwise; records that can never be stored come as
L{SendLog.rejected} and are held in the quarantine, so the batch is still acknowledged whole,
with the terminal's own C{count}.
"""

from __future__ import annotations

from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.interfaces import ICommandHandler
from tm20.protocol import replies
from tm20.protocol.messages import SendLog


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

    def handle(self, context: Any, session: Any, message: SendLog) -> Any:
        if not session.registered:
            return replies.failureFields()
        return context.ingest.sendlog(session.sn, session.terminal, message)
