# -*- python -*-
"""
Run tm20 configured by the environment alone:

    TM20_WEBSOCKET_PORT=7788 DATABASE_URL=sqlite:tm20.sqlite3 twistd -ny tm20.tac

Every environment variable of README.md applies.
"""

from twisted.application import service
from twisted.logger import ILogObserver

from tm20.logs import makeObserver
from tm20.tap import Options, makeService

options = Options()
options.parseOptions([])
tm20Service = makeService(options)

application = service.Application("tm20")
application.setComponent(
    ILogObserver, makeObserver(options["log-format"], options["log-level"])
)
tm20Service.setServiceParent(application)
