"""
One worker of C{--workers N} (L{tm20.cluster.workers}): C{python -m tm20.cluster.worker}, run by
the parent with its settings and listening sockets in the environment.  Not for operators.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger, globalLogBeginner
from twisted.python.failure import Failure

from tm20.cluster.hostmetrics import METRICS_DIR_VARIABLE, HostMetrics
from tm20.cluster.workers import (
    CONFIG_VARIABLE,
    FDS_VARIABLE,
    INDEX_VARIABLE,
    LOGFILE_VARIABLE,
    configFromJSON,
)


def adoptedSockets(text: str, specs: list[str]) -> list[tuple[int, int, str]]:
    """
    C{"3:2:0,4:10:1"} -> C{[(3, AF_INET, specs[0]), (4, AF_INET6, specs[1])]}: each socket with
    the listening endpoint string it serves.
    """
    triples = []
    for item in text.split(","):
        fd, family, index = item.split(":")
        triples.append((int(fd), int(family), specs[int(index)]))
    return triples


def main() -> int:
    from twisted.internet import reactor

    from tm20.logs import makeObserver, openLogFile
    from tm20.service import TM20Service, buildServer, collectorFor, listenSpec

    config = configFromJSON(os.environ[CONFIG_VARIABLE])
    fds = adoptedSockets(
        os.environ[FDS_VARIABLE], [listenSpec(p, config.backlog) for p in config.ports]
    )
    from tm20.store import storeFromURL

    logFile = os.environ.get(LOGFILE_VARIABLE)
    stream = openLogFile(logFile) if logFile else None
    globalLogBeginner.beginLoggingTo(
        [makeObserver(config.logFormat, config.logLevel, stream=stream)],
        redirectStandardIO=False,
    )
    store = storeFromURL(config.database, reactor, poolSize=config.poolSize)
    server = buildServer(config, reactor, store)
    status = {"code": 0}

    def failed(_: Any) -> None:
        status["code"] = 1
        reactor.stop()

    tm20 = TM20Service(
        server,
        onStartFailure=failed,
        adopted=fds,
        collector=collectorFor(server),
    )
    metricsDir = os.environ.get(METRICS_DIR_VARIABLE)
    metrics = server.context.metrics
    if metricsDir and metrics is not None:
        host = HostMetrics(reactor, metricsDir, int(os.environ[INDEX_VARIABLE]), metrics)
        metrics.host = host

        def cannotServeMetrics(f: Failure) -> None:
            Logger().critical(
                "tm20 could not start: cannot serve metrics on {path}: {why}",
                path=host.path,
                why=f.getErrorMessage(),
            )
            failed(f)

        reactor.callWhenRunning(
            lambda: Deferred.fromCoroutine(host.start()).addErrback(cannotServeMetrics)
        )
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: Deferred.fromCoroutine(host.stop())
        )
    reactor.callWhenRunning(tm20.startService)
    reactor.addSystemEventTrigger("before", "shutdown", tm20.stopService)
    reactor.run()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
