"""
C{sendqrcode} (a QR code scanned on an AI terminal) and C{sendpin} (a PIN typed on an AiFace
terminal): answered from the access rules and visitor codes (L{tm20.services.access}) at a door
under access control; elsewhere as without access control.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.handlers._fields import expect, replyFields
from tm20.interfaces import ICommandHandler, IServerContext, ITerminalSession
from tm20.protocol import replies
from tm20.protocol.messages import SendQrCode, TerminalCommand, TerminalMessage
from tm20.services.access import AccessReply


def _answer(reply: AccessReply) -> dict[str, Any]:
    """
    C{result:true} with C{access}, C{message} and, when known, C{enrollid} and C{username}
    (never C{result:false}, which makes the terminal resend the scan).
    """
    out: dict[str, Any] = {"result": True, "access": reply.access, "message": reply.message}
    if reply.decision.granted and reply.decision.enrollid is not None:
        out["enrollid"] = reply.decision.enrollid
    if reply.decision.granted and reply.decision.name:
        out["username"] = reply.decision.name
    return out


def _controlled(context: IServerContext, session: ITerminalSession) -> bool:
    """Is the session's terminal registered and under access control?"""
    access = context.access
    sn = session.sn
    return access is not None and session.registered and sn is not None and access.controls(sn)


@implementer(IPlugin, ICommandHandler)
class SendQrCodeHandler:
    """
    Decide the scanned code (visitor or person codes of C{/api/access/qrcodes/}).  A terminal
    not under access control gets C{result:true, access:0} (received, do not open; never
    C{result:false}, which makes the terminal resend), as without access control.
    """

    command = "sendqrcode"
    log = Logger()

    @inlineCallbacks
    def handle(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> Generator[Deferred[Any], Any, dict[str, Any]]:
        scan = expect(message, SendQrCode)
        access = context.access
        if access is None or session.sn is None or not _controlled(context, session):
            self.log.info("QR code scanned on {sn}; no access control there, denied", sn=session.sn)
            return {"result": True, "access": 0}
        reply = yield access.decideCode(session.sn, session.terminal, "qrcode", scan.record)
        return _answer(reply)


@implementer(IPlugin, ICommandHandler)
class SendPinHandler:
    """
    Decide a typed PIN: a code of C{/api/access/qrcodes/}, else a person's password.  A
    terminal not under access control gets the generic failure, as without a handler.
    """

    command = "sendpin"
    log = Logger()

    @inlineCallbacks
    def handle(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> Generator[Deferred[Any], Any, dict[str, Any]]:
        typed = expect(message, TerminalCommand)
        access = context.access
        if access is None or session.sn is None or not _controlled(context, session):
            self.log.info("PIN typed on {sn}; no access control there", sn=session.sn)
            return replyFields(replies.failure("sendpin"))
        pin = typed.fields.get("pin")
        if isinstance(pin, int) and not isinstance(pin, bool):
            pin = str(pin)
        if not isinstance(pin, str) or not pin:
            return {"result": False, "reason": 1, "access": 0}
        reply = yield access.decideCode(session.sn, session.terminal, "pin", pin)
        return _answer(reply)
