"""
One worker of C{--workers N} (L{tm20.cluster.workers}): C{python -m tm20.cluster.worker}, run by
the parent with its settings and listening sockets in the environment.  Not for operators.
"""

from __future__ import annotations

import os
import signal
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
    PARENT_VARIABLE,
    configFromJSON,
)

#: C{prctl}'s option that sends a signal when the parent exits (Linux).
_PR_SET_PDEATHSIG = 1


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


def watchParent(parent: int) -> bool:
    """
    Ask Linux to send this worker C{SIGTERM} when its parent exits — killed with C{SIGKILL}, by
    the OOM killer, or crashed, with no chance to stop its workers —, so that the worker stops
    as on the parent's own C{SIGTERM} instead of serving on as an orphan holding the port.

    @param parent: the pid the parent gave (L{PARENT_VARIABLE}).
    @return: C{False} when the parent is gone already (before the request could be made).
    """
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    return os.getppid() == parent


def main() -> int:
    from twisted.internet import reactor

    if not watchParent(int(os.environ[PARENT_VARIABLE])):
        return 1

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
