"""C{sendqrcode}: a QR code scanned on an AI terminal."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from tm20.interfaces import ICommandHandler, IServerContext, ITerminalSession
from tm20.protocol.messages import TerminalMessage


@implementer(IPlugin, ICommandHandler)
class SendQrCodeHandler:
    """
    The built-in policy knows no QR codes: it answers C{result:true, access:0} (received, do
    not open; never C{result:false}, which makes the terminal resend).  Sites that grant access by
    QR code override this handler with a plugin (README, "Writing a handler plugin").
    """

    command = "sendqrcode"
    log = Logger()

    def handle(
        self, context: IServerContext, session: ITerminalSession, message: TerminalMessage
    ) -> dict[str, Any]:
        self.log.info("QR code scanned on {sn}; no QR policy, access denied", sn=session.sn)
        return {"result": True, "access": 0}
