"""C{senduser}: a user enrolled on the terminal, one credential slot per message."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.handlers._fields import replyFields
from tm20.interfaces import ICommandHandler
from tm20.protocol import replies
from tm20.protocol.messages import SendUser, SendUserRejected


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
    def handle(self, context: Any, session: Any, message: SendUser | SendUserRejected) -> Any:
        if not session.registered:
            return replyFields(replies.failure("senduser"))
        if isinstance(message, SendUserRejected):
            yield context.ingest.quarantine(session.sn, "senduser", [message.rejected])
            return replyFields(
                replies.senduserAck(cloudtime=context.registration.cloudTimeFor(session.terminal))
            )
        yield context.store.saveCredential(
            session.sn,
            message.enrollid,
            message.backupnum,
            message.record,
            message.name,
            message.admin,
            enrolled=True,
        )
        persons = getattr(context, "persons", None)
        if persons is not None:
            persons.keypadReported(session.sn, message.enrollid)
        return replyFields(
            replies.senduserAck(cloudtime=context.registration.cloudTimeFor(session.terminal))
        )
