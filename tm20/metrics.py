"""
The server's Prometheus metrics: one C{prometheus_client} registry of its own (never the
library's global default), fed by the parts that see each fact, and sampled at scrape time for
what is a state rather than an event (terminals by state, queue depths).

Every label has a bounded set of values: no C{sn} label (a fleet has thousands of terminals);
a command label is one of the commands this server handles, else C{other}.

Names (see README, "Health and metrics"):

  - C{tm20_terminals{state}}: known, connected, disconnected, pending, silent, log_gap,
    clock_drift (sampled);
  - C{tm20_connections_opened_total}, C{tm20_connections_closed_total},
    C{tm20_connections_refused_total{reason}}, C{tm20_upgrades_held_total},
    C{tm20_upgrades_waiting} (sampled);
  - C{tm20_messages_received_total{command}}, C{tm20_acks_total{command, result}},
    C{tm20_ack_latency_seconds{command}} (histogram: from the message to its reply);
  - C{tm20_store_commit_seconds} (histogram: a log batch until committed),
    C{tm20_store_batch_records} (histogram: records per batch);
  - C{tm20_log_queue_rows}, C{tm20_command_queue_workers} (sampled);
  - C{tm20_api_auth_failures_total};
  - C{tm20_logs_recovered_total}, C{tm20_log_recoveries_total{result}},
    C{tm20_clock_corrections_total};
  - C{tm20_access_decisions_total{decision, reason}},
    C{tm20_access_decision_latency_seconds{kind}} (histogram: from the request's arrival to
    its reply written), C{tm20_access_fallbacks_total{decision}}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = [
    "ACCESS_KINDS",
    "CONTENT_TYPE_LATEST",
    "REFUSAL_REASONS",
    "TERMINAL_STATES",
    "Metrics",
]

#: The values of C{tm20_access_decision_latency_seconds}'s C{kind} label: the terminal command
#: that asked (a punch, a scanned QR code, a typed PIN).
ACCESS_KINDS = {"sendlog": "log", "sendqrcode": "qrcode", "sendpin": "pin"}

#: The values of C{tm20_terminals}'s C{state} label.
TERMINAL_STATES = (
    "known",
    "connected",
    "disconnected",
    "pending",
    "silent",
    "log_gap",
    "clock_drift",
)

#: The values of C{tm20_connections_refused_total}'s C{reason} label.
REFUSAL_REASONS = (
    "total",  # --max-connections reached (503)
    "per-ip",  # --max-connections-per-ip reached (503)
    "network",  # not in --terminal-networks (403)
    "pending",  # reg refused: not approved
    "inactive",  # reg refused: disabled by the operator
    "identity",  # reg refused: hardware or secret does not match
    "sn_changed",  # reg refused: another sn on a connection registered as one terminal
    "busy",  # upgrade held past its bound while --max-registering were registering (503)
    "other",
)

#: Seconds: from a sub-millisecond ack to a commit stuck behind a slow disk.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)

Sample = Callable[[], Iterable[tuple[tuple[str, ...], float]]]


class _Sampled(Collector):
    """
    Gauges and counters computed when scraped, from callables registered with L{Metrics.sample}
    and L{Metrics.sampleCount}.
    """

    def __init__(self) -> None:
        self.gauges: list[tuple[str, str, tuple[str, ...], Sample]] = []
        self.counters: list[tuple[str, str, Callable[[], float]]] = []

    def collect(self) -> Iterator[Metric]:
        for name, documentation, labels, sample in self.gauges:
            family = GaugeMetricFamily(name, documentation, labels=list(labels))
            for values, value in sample():
                family.add_metric(list(values), value)
            yield family
        for name, documentation, count in self.counters:
            yield CounterMetricFamily(name, documentation, value=count())

    def describe(self) -> Iterator[Metric]:
        for name, documentation, labels, _ in self.gauges:
            yield GaugeMetricFamily(name, documentation, labels=list(labels))
        for name, documentation, _ in self.counters:
            yield CounterMetricFamily(name, documentation)


class Metrics:
    """
    The instruments, on their own registry (L{registry}).  Parts that count something hold a
    reference and call the C{prometheus_client} objects directly; sampled gauges are given as
    callables (L{sample}), called only at scrape time, which must not do I/O.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # the process's own: open files against their limit (one per terminal: README's "Open
        # files"), memory, CPU, start time (read from /proc at scrape time, on Linux)
        ProcessCollector(registry=r)
        # the garbage collector's passes by generation (a full pass is generation 2: README's
        # "The garbage collector")
        GCCollector(registry=r)
        self.connectionsRefused = Counter(
            "tm20_connections_refused",
            "Connections or registrations refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.upgradesHeld = Counter(
            "tm20_upgrades_held",
            "Terminal WebSocket upgrades held because --max-registering connections were"
            " registering.",
            registry=r,
        )
        self.messages = Counter(
            "tm20_messages_received",
            "Commands received from terminals, by command.",
            ["command"],
            registry=r,
        )
        self.acks = Counter(
            "tm20_acks",
            "Replies sent to terminal commands, by command and result (true/false).",
            ["command", "result"],
            registry=r,
        )
        self.ackLatency = Histogram(
            "tm20_ack_latency_seconds",
            "Seconds from a terminal command's arrival to its reply (a sendlog waits for"
            " the commit).",
            ["command"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.storeCommit = Histogram(
            "tm20_store_commit_seconds",
            "Seconds from handing a log batch to the store until it is committed.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.storeBatch = Histogram(
            "tm20_store_batch_records",
            "Records per log batch handed to the store.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.authFailures = Counter(
            "tm20_api_auth_failures",
            "REST API (and /metrics) requests refused for a missing or unknown token.",
            registry=r,
        )
        self.logsRecovered = Counter(
            "tm20_logs_recovered",
            "Logs the server fetched by itself (getnewlog/getalllog) and newly stored.",
            registry=r,
        )
        self.logRecoveries = Counter(
            "tm20_log_recoveries",
            "Log fetches started by the server itself, by result (ok/failed).",
            ["result"],
            registry=r,
        )
        self.clockCorrections = Counter(
            "tm20_clock_corrections",
            "settime commands queued because a terminal's clock drifted.",
            registry=r,
        )
        self.accessDecisions = Counter(
            "tm20_access_decisions",
            "Access decisions at the doors, by decision (granted/denied) and reason.",
            ["decision", "reason"],
            registry=r,
        )
        self.accessLatency = Histogram(
            "tm20_access_decision_latency_seconds",
            "Seconds from an access request's arrival (punch, QR code, PIN) to its reply"
            " written to the terminal.",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.accessFallbacks = Counter(
            "tm20_access_fallbacks",
            "Doors answered with the fallback (the decision not committed in time, or a"
            " policy failed), by what the door got (granted/denied).",
            ["decision"],
            registry=r,
        )
        for reason in REFUSAL_REASONS:
            self.connectionsRefused.labels(reason)
        for decision in ("granted", "denied"):
            self.accessFallbacks.labels(decision)
        for kind in ACCESS_KINDS.values():
            self.accessLatency.labels(kind)
        for result in ("ok", "failed"):
            self.logRecoveries.labels(result)
        self._sampled = _Sampled()
        r.register(self._sampled)
        #: With C{--workers}: the L{tm20.cluster.hostmetrics.HostMetrics} that gathers every
        #: worker's metrics for a scrape (C{None}: this process alone).
        self.host: Any = None

    def sample(
        self, name: str, documentation: str, labels: tuple[str, ...], sample: Sample
    ) -> None:
        """
        Add a gauge computed at scrape time: C{sample()} yields C{(labelValues, value)} pairs.
        """
        self._sampled.gauges.append((name, documentation, labels, sample))

    def sampleCount(self, name: str, documentation: str, count: Callable[[], float]) -> None:
        """
        Add a counter (C{name} without C{_total}) read at scrape time from C{count()}: a count
        that a part keeps anyway (the terminal registry's sockets opened and closed), not kept
        twice.
        """
        self._sampled.counters.append((name, documentation, count))

    def refused(self, reason: str) -> None:
        """Count a refused connection or registration (an unknown reason counts as C{other})."""
        self.connectionsRefused.labels(reason if reason in REFUSAL_REASONS else "other").inc()

    def accessDecided(self, granted: bool, reason: str, known: Any) -> None:
        """Count a decision (a reason not in C{known} counts as C{other})."""
        decision = "granted" if granted else "denied"
        self.accessDecisions.labels(decision, reason if reason in known else "other").inc()
        if reason == "fallback":
            self.accessFallbacks.labels(decision).inc()

    def accessAnswered(self, command: str, seconds: float) -> None:
        """An access request's reply (to C{command}) written C{seconds} after its arrival."""
        kind = ACCESS_KINDS.get(command)
        if kind is not None:
            self.accessLatency.labels(kind).observe(max(0.0, seconds))

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    async def scrape(self) -> bytes:
        """What C{GET /metrics} answers: L{render}, or every worker's (C{--workers})."""
        if self.host is None:
            return self.render()
        text: bytes = await self.host.scrape()
        return text


def commandLabel(command: str, known: Any) -> str:
    """C{command} when it is in C{known}, else C{other} (a terminal chooses its commands)."""
    return command if command in known else "other"
