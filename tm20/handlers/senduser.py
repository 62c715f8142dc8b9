"""C{senduser}: a user enrolled on the terminal, one credential slot per message."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.handlers._fields import replyFields
from tm20.interfaces import ICommandHandler, IServerContext, ITerminalSession
from tm20.protocol import replies
from tm20.protocol.messages import SendUser, SendUserRejected, TerminalMessage


@implementer(IPlugin, ICommandHandler)
class SendUserHandler:
    """
    Store the user and the credential verbatim, then acknowledge.  A C{senduser} that can never
    be stored (L{SendUserRejected}) is held in the quarantine, then acknowledged too: refused,
    the terminal would resend it every few seconds, forever.  After a stored one (not waited
    for), the person service adopts keypad enrolments where a group says so and corrects keypad
    drift of fleet persons elsewhere.
    """

    command = "senduser"

    @inlineCallbacks
    def handle(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> Generator[Deferred[Any], Any, dict[str, Any]]:
        if not isinstance(message, SendUser | SendUserRejected):
            raise TypeError(f"expected a SendUser, got {type(message).__name__}")
        sn = session.sn
        if not session.registered or sn is None:
            return replyFields(replies.failure("senduser"))
        if isinstance(message, SendUserRejected):
            yield context.ingest.quarantine(sn, "senduser", [message.rejected])
            return replyFields(
                replies.senduserAck(cloudtime=context.registration.cloudTimeFor(session.terminal))
            )
        yield context.store.saveCredential(
            sn,
            message.enrollid,
            message.backupnum,
            message.record,
            message.name,
            message.admin,
            enrolled=True,
        )
        persons = context.persons
        if persons is not None:
            persons.keypadReported(sn, message.enrollid)
        return replyFields(
            replies.senduserAck(cloudtime=context.registration.cloudTimeFor(session.terminal))
        )
