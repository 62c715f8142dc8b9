# -*- python -*-
"""
Run tm20 configured by the environment alone:

    TM20_WEBSOCKET_PORT=7788 DATABASE_URL=sqlite:tm20.sqlite3 twistd -ny tm20.tac

Every environment variable of README.md applies.
"""

from twisted.application import service
from twisted.python.usage import UsageError

from tm20.tap import Options, makeService, twistdOptionsFromArgv

options = Options()
# twistd's own options (-n, --logfile): the log goes where twistd would write it, and a
# daemonizing twistd's parent exits non-zero when the server cannot start
options.parent = twistdOptionsFromArgv()
try:
    options.parseOptions([])
    tm20Service = makeService(options)
except UsageError as e:
    # one line and a non-zero exit, not twistd's "Failed to load application" traceback
    raise SystemExit(f"tm20.tac: {e}") from None

application = service.Application("tm20")
tm20Service.setServiceParent(application)  # installs the log observer
