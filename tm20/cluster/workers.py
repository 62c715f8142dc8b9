"""
C{--workers N}: one parent process opens the listening sockets and runs N worker processes
that adopt them (C{IReactorSocket.adoptStreamPort}); the kernel spreads new connections over
the workers.  Each worker is a full tm20 and a node of the cluster (its own node id, on the
shared PostgreSQL database), so any of them answers for any terminal (L{tm20.cluster.routing}).

The parent serves nothing itself: it supervises.  A worker that exits while the service runs is
replaced (after 1 s, doubling up to 30 s while workers keep dying within a minute of their
start); C{SIGTERM} to the parent stops every worker (C{SIGTERM}, C{SIGKILL} after
L{STOP_TIMEOUT} seconds) and then the parent.

Workers get their settings as JSON in L{CONFIG_VARIABLE} and their sockets as C{FD:FAMILY:INDEX}
triples in L{FDS_VARIABLE} (INDEX: the port of C{config.ports} the socket serves); they log to the parent's standard output and error (the log of
C{twistd -n}), or, when twistd writes a log file, each to its own beside it
(C{twistd.log.worker0}, ...: L{LOGFILE_VARIABLE}).  C{tcp}, C{tcp6}, C{unix} and C{ssl} ports can be
shared: for an C{ssl} port the parent opens a plain TCP socket (after reading the certificate and
key, so that a bad one stops the start at once) and each worker runs TLS on the connections it
accepts (L{tm20.cluster.tlsport}).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

import attrs
from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from tm20.cluster.hostmetrics import METRICS_DIR_VARIABLE
from tm20.cluster.identity import defaultNodeId
from tm20.cluster.tlsport import isTLS, readTLSPort
from tm20.config import ServerConfig
from tm20.logs import installObserver

__all__ = [
    "CONFIG_VARIABLE",
    "FDS_VARIABLE",
    "INDEX_VARIABLE",
    "SHAREABLE",
    "WorkersService",
    "configFromJSON",
    "configToJSON",
]

CONFIG_VARIABLE = "TM20_WORKER_CONFIG"
INDEX_VARIABLE = "TM20_WORKER_INDEX"
LOGFILE_VARIABLE = "TM20_WORKER_LOGFILE"
FDS_VARIABLE = "TM20_WORKER_FDS"
#: The parent's pid: a worker whose parent is gone stops (L{tm20.cluster.worker.watchParent}).
PARENT_VARIABLE = "TM20_WORKER_PARENT"
#: Endpoint types whose listening socket workers can adopt (C{ssl}: a TCP socket, TLS in the
#: workers; its family follows its interface).
SHAREABLE = {
    "tcp": socket.AF_INET,
    "tcp6": socket.AF_INET6,
    "unix": socket.AF_UNIX,
    "ssl": socket.AF_INET,
}
#: Seconds a stopping worker gets before SIGKILL.
STOP_TIMEOUT = 30.0
_FIRST_DELAY, _LARGEST_DELAY, _STABLE_AFTER = 1.0, 30.0, 60.0


def configToJSON(config: ServerConfig) -> str:
    return json.dumps(attrs.asdict(config))


def configFromJSON(text: str) -> ServerConfig:
    values: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items()
    }
    return ServerConfig(**values)


def endpointFamily(spec: str) -> int:
    """
    The address family of a listening endpoint workers can share.

    @raise ValueError: for any other endpoint type (systemd, ...), saying why.
    """
    kind = spec.split(":", 1)[0]
    if kind not in SHAREABLE:
        raise ValueError(
            f"--workers cannot share the port {spec!r}: only tcp, tcp6, unix and ssl ports can"
            " be adopted by worker processes (run with --workers 1 for other endpoint types)"
        )
    return SHAREABLE[kind]


class _Worker(ProcessProtocol):
    def __init__(self, owner: WorkersService, index: int, nodeId: str) -> None:
        self.owner = owner
        self.index = index
        self.nodeId = nodeId
        self.ended: Deferred[None] = Deferred()
        self.startedAt = owner.reactor.seconds()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.owner.workerEnded(self, reason)


class WorkersService(service.Service):
    """The parent of C{--workers N} (see the module docstring)."""

    log = Logger()
    name = "tm20-workers"

    def __init__(
        self,
        config: ServerConfig,
        reactor: Any,
        logObserver: ILogObserver | None = None,
        executable: str = sys.executable,
        logFile: str | None = None,
    ) -> None:
        """
        @param logFile: the parent's log file when twistd writes one (C{--logfile}, or
            daemonized): worker I writes C{LOGFILE.workerI} beside it.  C{None}: the workers
            write to the parent's standard output and error.
        """
        from tm20.service import listenSpec

        self.config = config
        self.reactor = reactor
        self.executable = executable
        self._logObserver = logObserver
        self.logFile = None if logFile is None else os.path.abspath(logFile)
        self.specs = [listenSpec(p, config.backlog) for p in config.ports]
        for spec in self.specs:
            endpointFamily(spec)  # refuse what cannot be shared before anything starts
        self.baseId = config.nodeId or defaultNodeId()
        self.ports: list[Any] = []
        self.workers: dict[int, _Worker] = {}
        self._delays: dict[int, float] = {}
        self._generation = 0
        self._stopping = False
        #: Workers started in all (replacements included), for tests and logs.
        self.spawned = 0
        #: The workers' metrics sockets (L{tm20.cluster.hostmetrics}), while running.
        self.metricsDir: str | None = None

    def setServiceParent(self, parent: Any) -> None:
        installObserver(parent, self._logObserver)
        super().setServiceParent(parent)

    def startService(self) -> None:
        super().startService()
        self._start().addErrback(self._startFailed)

    @inlineCallbacks
    def _start(self) -> Any:
        for spec in self.specs:
            if isTLS(spec):
                # a plain TCP socket: the workers run TLS (with the options read here first,
                # so that a key or certificate that cannot be read stops the start now)
                tls = readTLSPort(spec)
                port = self.reactor.listenTCP(tls.port, Factory(), tls.backlog, tls.interface)
                family = tls.family
            else:
                port = yield serverFromString(self.reactor, spec).listen(Factory())
                family = endpointFamily(spec)
            port.stopReading()  # the workers accept; the parent only holds the socket
            self.ports.append((port, family))
            self.log.info(
                "listening on {endpoint} for {n} workers", endpoint=spec, n=self.config.workers
            )
        self.metricsDir = tempfile.mkdtemp(prefix="tm20-metrics-")  # mode 0700
        for index in range(self.config.workers):
            self._spawn(index)

    def _startFailed(self, f: Failure) -> None:
        from tm20.startup import explain, processExit

        self.log.critical("tm20 could not start: {error}", error=explain(f, self.config.database))
        processExit.fail(self.reactor)

    def _spawn(self, index: int) -> None:
        if self._stopping:
            return
        self._generation += 1
        nodeId = f"{self.baseId}-w{index}.{self._generation}"
        config = attrs.evolve(self.config, nodeId=nodeId, workers=1)
        childFDs: dict[int, Any] = {0: "w", 1: 1, 2: 2}
        pairs = []
        for number, (port, family) in enumerate(self.ports):
            childFd = 3 + number
            childFDs[childFd] = port.fileno()
            pairs.append(f"{childFd}:{int(family)}:{number}")
        env = dict(os.environ)
        env[CONFIG_VARIABLE] = configToJSON(config)
        env[FDS_VARIABLE] = ",".join(pairs)
        env[INDEX_VARIABLE] = str(index)
        env[PARENT_VARIABLE] = str(os.getpid())
        if self.metricsDir is not None:
            env[METRICS_DIR_VARIABLE] = self.metricsDir
        if self.logFile is not None:
            env[LOGFILE_VARIABLE] = f"{self.logFile}.worker{index}"
        worker = _Worker(self, index, nodeId)
        self.reactor.spawnProcess(
            worker,
            self.executable,
            [self.executable, "-m", "tm20.cluster.worker"],
            env=env,
            childFDs=childFDs,
        )
        self.workers[index] = worker
        self.spawned += 1
        pid = getattr(worker.transport, "pid", None)
        self.log.info(
            "worker {index} started: node {node}, pid {pid}", index=index, node=nodeId, pid=pid
        )

    def workerEnded(self, worker: _Worker, reason: Failure) -> None:
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        if self._stopping:
            self.log.info("worker {index} stopped", index=worker.index)
            return
        lived = self.reactor.seconds() - worker.startedAt
        delay = self._delays.get(worker.index, _FIRST_DELAY)
        delay = _FIRST_DELAY if lived >= _STABLE_AFTER else delay
        self._delays[worker.index] = min(_LARGEST_DELAY, delay * 2)
        self.log.warn(
            "worker {index} (node {node}) exited (status {code}, signal {signal}); replacing it"
            " in {delay:g}s",
            index=worker.index,
            node=worker.nodeId,
            code=code,
            signal=sig,
            delay=delay,
        )
        self.reactor.callLater(delay, self._spawn, worker.index)

    @inlineCallbacks
    def stopService(self) -> Any:
        super().stopService()
        self._stopping = True
        workers = list(self.workers.values())
        for worker in workers:
            self._signal(worker, signal.SIGTERM)
        if workers:
            waiting = DeferredList([w.ended for w in workers], consumeErrors=True)

            def kill() -> None:
                for w in workers:
                    self._signal(w, signal.SIGKILL)

            timer = self.reactor.callLater(STOP_TIMEOUT, kill)
            yield waiting
            if timer.active():
                timer.cancel()
        for port, _ in self.ports:
            yield port.stopListening()
        self.ports = []
        if self.metricsDir is not None:
            shutil.rmtree(self.metricsDir, ignore_errors=True)
            self.metricsDir = None
        self.log.info("tm20 workers stopped")

    def _signal(self, worker: _Worker, number: int) -> None:
        try:
            if worker.transport is not None:
                worker.transport.signalProcess(number)
        except Exception:
            pass  # already gone
