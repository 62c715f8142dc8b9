"""
C{/metrics} for the whole host with C{--workers N} (L{tm20.cluster.workers}).

The workers share the listening port, so a scrape reaches one of them, chosen by the kernel.
Each worker therefore also serves its own metrics, unauthenticated, on a Unix socket in a
directory only the service's user can enter (created by the parent, removed when it stops:
L{METRICS_DIR_VARIABLE}); the worker that answers a scrape reads every sibling's socket, adds
the label C{worker="wI"} (I: the worker's index, kept by its replacements) to each series, its
own included, and answers with them all.  C{tm20_worker_scraped{worker}} says, per worker,
whether its metrics are in this answer (0: it did not answer within L{PEER_TIMEOUT} seconds, or
is being replaced).

Why not C{prometheus_client}'s multiprocess mode: most of tm20's gauges are computed at scrape
time from the process's state (L{tm20.metrics.Metrics.sample}: terminals by state, queue depths,
sink backlog), which that mode cannot collect; and it would sum every process's counters into
one series, losing which worker is busy.

A replaced worker's counters start again from 0 under the same label: Prometheus' C{rate()}
takes that as a counter reset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import UNIXClientEndpoint, UNIXServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["METRICS_DIR_VARIABLE", "PEER_TIMEOUT", "WORKER_LABEL", "HostMetrics", "merge"]

#: The directory of the workers' metrics sockets (set by the parent for its workers).
METRICS_DIR_VARIABLE = "TM20_WORKER_METRICS_DIR"
#: The label naming the worker a series comes from.
WORKER_LABEL = "worker"
#: Seconds the answering worker waits for each sibling's metrics.
PEER_TIMEOUT = 2.0
_SUFFIX = ".sock"


class _Serve(Protocol):
    """Write this worker's metrics (text format) and close."""

    def __init__(self, render: Callable[[], bytes]) -> None:
        self.render = render

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.render())
        self.transport.loseConnection()


class _ServeFactory(Factory):
    def __init__(self, render: Callable[[], bytes]) -> None:
        self.render = render

    def buildProtocol(self, addr: Any) -> _Serve:
        return _Serve(self.render)


class _Read(Protocol):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.callback(b"".join(self.chunks))


def workerName(index: int) -> str:
    return f"w{index}"


class _Merged(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def merge(texts: dict[str, str], scraped: dict[str, bool]) -> bytes:
    """
    One exposition of several workers' metrics (C{texts}: worker name -> its text format), each
    series labelled with its worker, plus C{tm20_worker_scraped{worker}} from C{scraped}.
    """
    families: dict[str, Metric] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for s in family.samples:
                labels = {**s.labels, WORKER_LABEL: worker}
                merged.samples.append(Sample(s.name, labels, s.value, s.timestamp, s.exemplar))
    up = GaugeMetricFamily(
        "tm20_worker_scraped",
        "1 when this worker's metrics are in this answer, 0 when it did not answer in time.",
        labels=[WORKER_LABEL],
    )
    for worker, ok in sorted(scraped.items()):
        up.add_metric([worker], 1.0 if ok else 0.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged([*families.values(), up]))
    return generate_latest(registry)


class HostMetrics:
    """One worker's side: serve its own metrics to its siblings, gather theirs on a scrape."""

    log = Logger()

    def __init__(self, reactor: Any, directory: str, index: int, metrics: Any) -> None:
        """
        @param metrics: this worker's L{tm20.metrics.Metrics}.
        """
        self.reactor = reactor
        self.directory = directory
        self.name = workerName(index)
        self.metrics = metrics
        self.path = os.path.join(directory, self.name + _SUFFIX)
        self.port: IListeningPort | None = None

    async def start(self) -> None:
        """Listen on this worker's socket (replacing the one a predecessor left)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        endpoint = UNIXServerEndpoint(self.reactor, self.path, mode=0o600)
        self.port = await endpoint.listen(_ServeFactory(self.metrics.render))

    async def stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            stopping = port.stopListening()
            if stopping is not None:
                await stopping

    def _siblings(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(
            n[: -len(_SUFFIX)] for n in names if n.endswith(_SUFFIX) and n != self.name + _SUFFIX
        )

    def _fetch(self, worker: str) -> Deferred[bytes]:
        path = os.path.join(self.directory, worker + _SUFFIX)
        endpoint = UNIXClientEndpoint(self.reactor, path, timeout=PEER_TIMEOUT)
        reader = _Read()
        connecting: Deferred[Any] = endpoint.connect(Factory.forProtocol(lambda: reader))
        connecting.addErrback(lambda f: reader.done.errback(f) if not reader.done.called else None)

        def gaveUp(f: Failure) -> Failure:
            # past the deadline: stop connecting, or drop the connection that is too slow
            connecting.cancel()
            if reader.transport is not None:
                reader.transport.loseConnection()
            return f

        reader.done.addTimeout(PEER_TIMEOUT, self.reactor)
        reader.done.addErrback(gaveUp)
        return reader.done

    async def scrape(self) -> bytes:
        """This worker's metrics and its siblings', each labelled with its worker."""
        siblings = self._siblings()
        results: list[tuple[bool, Any]] = await DeferredList(
            [self._fetch(w) for w in siblings], consumeErrors=True
        )
        texts = {self.name: self.metrics.render().decode()}
        scraped = {self.name: True}
        for worker, (ok, value) in zip(siblings, results, strict=True):
            scraped[worker] = ok
            if ok:
                texts[worker] = value.decode()
            else:
                self.log.warn(
                    "metrics of worker {worker} not read: {why}",
                    worker=worker,
                    why=value.getErrorMessage(),
                )
        return merge(texts, scraped)
