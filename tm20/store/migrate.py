"""C{twistd tm20 --migrate-only}: apply the schema migrations and exit."""

from __future__ import annotations

import os
from typing import Any

from twisted.application import service
from twisted.logger import ILogObserver, Logger

from tm20.interfaces import IStore
from tm20.logs import installObserver


class MigrateOnlyService(service.Service):
    """Starts the store (which applies pending migrations), stops it, and stops the reactor."""

    log = Logger()

    def __init__(
        self, store: IStore, reactor: Any, logObserver: ILogObserver | None = None
    ) -> None:
        self.store = store
        self.reactor = reactor
        self._logObserver = logObserver
        self.exitCode = 0

    def setServiceParent(self, parent: Any) -> None:
        installObserver(parent, self._logObserver)
        super().setServiceParent(parent)

    def startService(self) -> None:
        super().startService()
        d = self.store.start()

        def done(_: Any) -> Any:
            self.log.info("migrations applied")
            return self.store.stop()

        def failed(f: Any) -> None:
            self.exitCode = 1
            self.log.critical("migration failed: {error}", error=f.getErrorMessage())
            # twistd exits 0 after reactor.stop(); make the failure visible to scripts.
            self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)

        d.addCallbacks(done, failed).addBoth(lambda _: self.reactor.stop())
