"""
A test-only echo endpoint for the Autobahn|Testsuite, built from the production pieces.

It is the real server (L{tm20.service.buildServer}: the same L{tm20.web.TM20Root} and
L{tm20.web.QuietSite}, the same L{tm20.terminal.factory.TerminalFactory} with the production
protocol options and limits from a default L{tm20.config.ServerConfig}), except that the
factory builds L{EchoTerminalProtocol}, which sends every message back instead of dispatching
it.  Nothing here is imported by the server.

Run: C{python conformance/echoserver.py PORTFILE} listens on 127.0.0.1 (a free port, written
to PORTFILE) until killed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from tm20.config import ServerConfig
from tm20.service import TM20Service, buildServer
from tm20.store.sqlite import SQLiteStore
from tm20.terminal.protocol import TerminalProtocol

log = Logger()


class EchoTerminalProtocol(TerminalProtocol):
    """
    A L{TerminalProtocol} that echoes: framing, limits, handshake, closing and every autobahn
    option are the production ones; only the message handling differs.
    """

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.keepAlive is not None:
            self.keepAlive.touch()
        self.sendMessage(payload, isBinary)


def main(portFile: str) -> None:
    """Start the echo server and write its port number to C{portFile}."""
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    config = ServerConfig(ports=("tcp:0:interface=127.0.0.1",))
    database = Path(tempfile.mkdtemp(prefix="tm20-conformance-")) / "echo.sqlite3"
    server = buildServer(config, reactor, SQLiteStore(str(database), reactor=reactor))
    server.factory.protocol = EchoTerminalProtocol
    service = TM20Service(server)

    def listening(ports: Any) -> None:
        port = ports[0].getHost().port
        Path(portFile).write_text(f"{port}\n")
        log.info(
            "echo endpoint on ws://127.0.0.1:{port}/ (max message {size} bytes)",
            port=port,
            size=config.maxMessageSize,
        )

    service.ready.addCallback(listening)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1])
