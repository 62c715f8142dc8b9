
from twisted.plugin import IPlugin
from zope.interface import implementer
from tm20.interfaces import ICommandHandler


@implementer(IPlugin, ICommandHandler)
class Temperature:
    command = "sendtemp"

    def handle(self, context, session, message):
        return {"result": True, "echo": message.fields.get("value")}


@implementer(IPlugin, ICommandHandler)
class GrantingQr:
    command = "sendqrcode"

    def handle(self, context, session, message):
        return {"result": True, "access": 1, "message": "welcome " + message.record}


temperature = Temperature()
qr = GrantingQr()
