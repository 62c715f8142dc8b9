# -*- python -*-
"""
Run tm20 configured by the environment alone:

    TM20_WEBSOCKET_PORT=7788 DATABASE_URL=sqlite:tm20.sqlite3 twistd -ny tm20.tac

Every environment variable of README.md applies.
"""

from twisted.application import service
from twisted.logger import ILogObserver
from twisted.python.usage import UsageError

from tm20.logs import makeObserver
from tm20.tap import Options, makeService

options = Options()
try:
    options.parseOptions([])
    tm20Service = makeService(options)
except UsageError as e:
    # one line and a non-zero exit, not twistd's "Failed to load application" traceback
    raise SystemExit(f"tm20.tac: {e}") from None

application = service.Application("tm20")
application.setComponent(
    ILogObserver, makeObserver(options["log-format"], options["log-level"])
)
tm20Service.setServiceParent(application)
