"""The built-in handlers, published as plugins like any operator's."""

from tm20.handlers.reg import RegHandler
from tm20.handlers.sendlog import SendLogHandler
from tm20.handlers.sendqrcode import SendPinHandler, SendQrCodeHandler
from tm20.handlers.senduser import SendUserHandler

reg = RegHandler()
sendlog = SendLogHandler()
senduser = SendUserHandler()
sendqrcode = SendQrCodeHandler()
sendpin = SendPinHandler()
