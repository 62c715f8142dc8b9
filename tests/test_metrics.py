"""
C{GET /metrics} (Prometheus text format from C{prometheus_client}, its own registry, a read
token), C{GET /ready}, and the Grafana dashboard in C{docs/} built on the metrics.  The output is
read with C{prometheus_client}'s own parser.
"""

from __future__ import annotations

import json
import os
import re
import resource
import tempfile
from collections.abc import Iterable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.test.requesthelper import DummyRequest

from tests.serverfixture import registeredClient
from tests.test_api_support import ADMIN, READER, WRITER, simulated
from tests.watchsupport import WatchTestCase, postgresStore
from tm20.interfaces import IStore
from tm20.metrics import TERMINAL_STATES, Metrics
from tm20.probes import ReadyResource
from tm20.simulator.device import SimulatedTerminal
from tm20.store.sqlite import SQLiteStore

DASHBOARD = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "grafana-dashboard.json")


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    """The value of the sample C{sample} (default: the family's name) with exactly C{labels}."""
    wanted = sample or name
    found = [
        s.value
        for s in fams[name].samples
        if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    if len(found) != 1:
        raise AssertionError(f"{wanted}{labels}: {found!r} in {fams[name].samples!r}")
    return float(found[0])


def exposedNames(fams: dict[str, Any]) -> set[str]:
    """Every series name a query may use: the samples, and the names of empty families too."""
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in fams.values():
        names.update(s.name for s in family.samples)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def dashboardQueries() -> list[str]:
    with open(DASHBOARD, encoding="utf-8") as f:
        dashboard = json.load(f)
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def metricNames(exprs: Iterable[str]) -> set[str]:
    return {m for e in exprs for m in re.findall(r"\b(?:tm20|process|python_gc)_[a-z0-9_]+", e)}


class MetricsEndpointTests(WatchTestCase):
    """A live server with simulated terminals, scraped as Prometheus would."""

    @inlineCallbacks
    def scrape(self, token: str = READER) -> Any:
        r = yield self.call("GET", "/metrics", token=token)
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.headers["content-type"].startswith("text/plain"), r.headers)
        return families(r.text)

    @inlineCallbacks
    def test_needsATokenWithTheReadScope(self) -> Any:
        yield self.start()
        r = yield self.call("GET", "/metrics", token=None)
        self.assertEqual((r.status, r.json["error"]), (401, "unauthorized"))
        r = yield self.call("GET", "/metrics", token="wrong-token-0123456789")
        self.assertEqual(r.status, 401)
        r = yield self.call("GET", "/metrics", token=WRITER)
        self.assertEqual((r.status, r.json["error"]), (403, "forbidden"))
        fams = yield self.scrape(ADMIN)
        self.assertEqual(value(fams, "tm20_api_auth_failures", "tm20_api_auth_failures_total"), 2)
        r = yield self.call("POST", "/metrics", token=READER)
        self.assertEqual(r.status, 405)

    @inlineCallbacks
    def test_trafficIsCountedWithoutTerminalLabels(self) -> Any:
        yield self.start()
        connection = yield self.connect(SimulatedTerminal("MET1", logs=25))
        yield connection.whenAllLogsAcknowledged()
        client = yield registeredClient(self, self.running, sn="MET2")
        reply = yield client.request({"cmd": "whatnot", "sn": "MET2"})
        self.assertIs(reply["result"], False)
        # the queues' workers looking for commands after each registration are done
        yield self.until(lambda: self.api.queue.activeWorkers == 0, "queue workers idle")
        fams = yield self.scrape()

        received = "tm20_messages_received_total"
        self.assertGreaterEqual(value(fams, "tm20_messages_received", received, command="reg"), 2)
        self.assertEqual(value(fams, "tm20_messages_received", received, command="sendlog"), 3)
        self.assertEqual(value(fams, "tm20_messages_received", received, command="other"), 1)
        self.assertEqual(
            value(fams, "tm20_acks", "tm20_acks_total", command="sendlog", result="true"), 3
        )
        self.assertEqual(
            value(fams, "tm20_acks", "tm20_acks_total", command="other", result="false"), 1
        )
        self.assertEqual(
            value(
                fams,
                "tm20_ack_latency_seconds",
                "tm20_ack_latency_seconds_count",
                command="sendlog",
            ),
            3,
        )
        self.assertEqual(fams["tm20_ack_latency_seconds"].type, "histogram")
        self.assertEqual(value(fams, "tm20_connections_opened", "tm20_connections_opened_total"), 2)
        # read from the terminal registry's count when scraped, exposed as a counter
        self.assertEqual(fams["tm20_connections_opened"].type, "counter")
        self.assertEqual(
            value(fams, "tm20_store_batch_records", "tm20_store_batch_records_sum"), 25
        )
        self.assertEqual(
            value(fams, "tm20_store_commit_seconds", "tm20_store_commit_seconds_count"), 3
        )
        self.assertEqual(value(fams, "tm20_terminals", state="connected"), 2)
        self.assertEqual(
            {s.labels["state"] for s in fams["tm20_terminals"].samples}, set(TERMINAL_STATES)
        )
        self.assertEqual(value(fams, "tm20_log_queue_rows"), 0)
        self.assertEqual(value(fams, "tm20_command_queue_workers"), 0)
        self.assertEqual(value(fams, "tm20_reconciler_backlog"), 0)
        # No per-terminal label, no sn in any label value; not the library's default registry.
        for family in fams.values():
            for sample in family.samples:
                self.assertNotIn("sn", sample.labels)
                self.assertFalse(
                    {"MET1", "MET2"} & set(sample.labels.values()), (family.name, sample)
                )
        # the process's own series (open files against the limit) and the garbage collector's
        # are registered on ours; the library's default registry would bring python_info too
        self.assertNotIn("python_info", fams)
        self.assertIn("python_gc_collections", fams)

        yield client.close() if hasattr(client, "close") else None
        yield connection.disconnect()

        def closed() -> Any:
            d = self.call("GET", "/metrics", token=READER)
            return d.addCallback(
                lambda r: (
                    value(
                        families(r.text), "tm20_connections_closed", "tm20_connections_closed_total"
                    )
                    >= 1
                )
            )

        yield self.until(closed, "connection closed counted")

    @inlineCallbacks
    def test_terminalsByStateAtTheCensus(self) -> Any:
        yield self.start()
        yield self.call("POST", "/api/terminals/", {"sn": "PEND1", "approved": False})
        yield self.connect(simulated("UP1"))
        r = yield self.call(
            "POST", "/api/terminals/PEND1/command/", {"command": "gettime", "wait": False}
        )
        self.assertEqual(r.status, 202, r.text)
        yield self.watch.silence.sweep()
        fams = yield self.scrape()
        self.assertEqual(value(fams, "tm20_command_queue_depth"), 1)
        self.assertEqual(value(fams, "tm20_terminals", state="known"), 2)
        self.assertEqual(value(fams, "tm20_terminals", state="pending"), 1)
        self.assertEqual(value(fams, "tm20_terminals", state="connected"), 1)
        self.assertEqual(value(fams, "tm20_terminals", state="disconnected"), 1)
        self.assertEqual(value(fams, "tm20_terminals", state="silent"), 0)

    @inlineCallbacks
    def test_refusedRegistrationsByReason(self) -> Any:
        yield self.start(requireWhitelist=True)
        yield self.call("POST", "/api/terminals/", {"sn": "OFF1", "active": False})
        for sn in ("NEW1", "OFF1"):
            client = yield self.rawClient()
            reply = yield client.request({"cmd": "reg", "sn": sn, "devinfo": {}})
            self.assertIs(reply["result"], False)
        yield self.call("POST", "/api/terminals/", {"sn": "ONE1"})
        client = yield self.rawClient()
        reply = yield client.request({"cmd": "reg", "sn": "ONE1", "devinfo": {}})
        self.assertIs(reply["result"], True)
        reply = yield client.request({"cmd": "reg", "sn": "OTHER1", "devinfo": {}})
        self.assertIs(reply["result"], False)
        fams = yield self.scrape()
        refused = "tm20_connections_refused_total"
        self.assertEqual(value(fams, "tm20_connections_refused", refused, reason="pending"), 1)
        self.assertEqual(value(fams, "tm20_connections_refused", refused, reason="inactive"), 1)
        self.assertEqual(value(fams, "tm20_connections_refused", refused, reason="network"), 0)
        self.assertEqual(value(fams, "tm20_connections_refused", refused, reason="sn_changed"), 1)

    @inlineCallbacks
    def test_refusedByNetworkAndConnectionCaps(self) -> Any:
        yield self.start(terminalNetworks=("10.0.0.0/8",), maxConnectionsPerIP=3)
        from tests.securitysupport import connectWS

        d = connectWS(self, self.running.port)
        yield self.assertFailure(d, ConnectionError)
        fams = yield self.scrape()
        refused = "tm20_connections_refused_total"
        self.assertEqual(value(fams, "tm20_connections_refused", refused, reason="network"), 1)

    @inlineCallbacks
    def test_dashboardQueriesOnlyExposedMetrics(self) -> Any:
        """Every metric the Grafana dashboard queries is in the /metrics output."""
        yield self.start()
        fams = yield self.scrape()
        queried = metricNames(dashboardQueries())
        self.assertGreaterEqual(len(queried), 15)
        missing = queried - exposedNames(fams)
        self.assertEqual(missing, set())

    @inlineCallbacks
    def rawClient(self) -> Any:
        from tests.serverfixture import connectRaw

        client = yield connectRaw(self, self.running)
        return client


class _HeldSink:
    """A sink whose deliveries never finish (a receiver that hangs)."""

    name = "held"

    def __init__(self, *specs: Any) -> None:
        self.specs = list(specs)
        self.pending: list[Deferred[Any]] = []

    def start(self, context: Any) -> None:
        pass

    def streams(self) -> list[Any]:
        return list(self.specs)

    def deliver(self, stream: Any, events: list[Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d

    def stop(self) -> None:
        for d in self.pending:
            if not d.called:
                d.cancel()


class SinkBacklogTests(WatchTestCase):
    """The event sinks' backlog and lag, from the streams' cursors."""

    @inlineCallbacks
    def test_hungReceiverShowsBacklogAndLag(self) -> Any:
        from tm20.events.sinks import StreamSpec

        yield self.start(sinks=[_HeldSink(StreamSpec("held:all", startAfter=0, batchSize=1))])
        yield self.connect(simulated("SINK1"))
        backlog = self.running.server.sinkBacklog

        def streamKnown() -> bool:
            return any(w.stream is not None for w in backlog.runner.workers.values())

        yield self.until(streamKnown, "the stream opened")
        self.clock.advance(100)  # the oldest undelivered event is now 100 s old
        yield backlog.measure()
        fams = yield self.scrape()
        self.assertEqual(value(fams, "tm20_event_sinks", state="active"), 1)
        self.assertGreaterEqual(value(fams, "tm20_event_sink_backlog_events", state="active"), 2)
        self.assertGreaterEqual(value(fams, "tm20_event_sink_lag_seconds", state="active"), 99)
        self.assertEqual(value(fams, "tm20_event_sink_backlog_events", state="failing"), 0)

    @inlineCallbacks
    def test_streamWantingNothingNewIsNotBehind(self) -> Any:
        """A stream's backlog counts only the events it wants."""
        from tm20.events.sinks import StreamSpec

        spec = StreamSpec("held:drift", types=("terminal.clock_drift",), startAfter=0)
        yield self.start(sinks=[_HeldSink(spec)])
        yield self.connect(simulated("SINK2"))
        backlog = self.running.server.sinkBacklog
        yield self.until(
            lambda: any(w.stream is not None for w in backlog.runner.workers.values()),
            "the stream opened",
        )
        yield backlog.measure()
        fams = yield self.scrape()
        self.assertEqual(value(fams, "tm20_event_sinks", state="active"), 1)
        self.assertEqual(value(fams, "tm20_event_sink_backlog_events", state="active"), 0)
        self.assertEqual(value(fams, "tm20_event_sink_lag_seconds", state="active"), 0)

    scrape = MetricsEndpointTests.scrape


class MetricsEndpointPostgresTests(MetricsEndpointTests):
    """The same on PostgreSQL (the log queue is PostgreSQL's group commit there)."""

    def makeStore(self) -> IStore:
        return postgresStore(self, "tm20_metrics")


class ReadyTests(WatchTestCase):
    @inlineCallbacks
    def test_readyWhenListeningWithAWritableMigratedStore(self) -> Any:
        yield self.start()
        r = yield self.call("GET", "/ready", token=None)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["checks"], {"listening": True, "store": True, "migrations": True})
        self.assertIs(r.json["ready"], True)
        self.assertEqual(r.json["store"]["state"], "ok")
        r = yield self.call("DELETE", "/ready", token=None)
        self.assertEqual(r.status, 405)


class ReadyResourceTests(TestCase):
    """Each check can fail /ready on its own."""

    def render(self, resource: ReadyResource) -> tuple[int, Any]:
        request = DummyRequest([b""])
        request.method = b"GET"
        body = resource.render(request)
        return request.responseCode or 200, json.loads(body)

    @inlineCallbacks
    def test_eachCheck(self) -> Any:
        path = os.path.join(tempfile.mkdtemp(prefix="tm20-ready-"), "r.sqlite3")
        store = SQLiteStore(path, reactor=reactor)
        resource = ReadyResource(store, lambda: True)
        code, body = self.render(resource)
        self.assertEqual(code, 503)
        self.assertEqual(body["checks"], {"listening": True, "store": False, "migrations": False})
        yield store.start()
        self.addCleanup(store.stop)
        code, body = self.render(resource)
        self.assertEqual((code, body["ready"]), (200, True))
        resource.listening = lambda: False
        code, body = self.render(resource)
        self.assertEqual((code, body["checks"]["listening"]), (503, False))
        resource.listening = lambda: True
        yield store.stop()
        code, body = self.render(resource)
        self.assertEqual((code, body["checks"]["store"]), (503, False))


class CensusTests(TestCase):
    """The census counts each sweep afresh, even after a sweep that failed halfway."""

    @inlineCallbacks
    def test_failedSweepLeavesNoPartialCount(self) -> Any:
        from twisted.internet.defer import fail
        from twisted.internet.task import Clock

        from tm20.services.watch import Watch

        path = os.path.join(tempfile.mkdtemp(prefix="tm20-census-"), "c.sqlite3")
        clock = Clock()
        clock.advance(1_777_550_377)
        store = SQLiteStore(path, reactor=reactor, clock=clock)
        yield store.start()
        self.addCleanup(store.stop)
        for sn in ("A", "B", "C"):
            yield store.recordTerminalSeen(sn, None, {}, sn != "C")
        watch = Watch(store, clock, _NoTerminals(), None, None, 3600.0, 60.0, 0.0, None)
        watch.silence.pageSize = 2
        real = store.watchPage
        calls = []

        def flaky(after: Any, limit: int) -> Any:
            calls.append(after)
            if len(calls) == 2:
                return fail(RuntimeError("database went away"))
            return real(after, limit)

        store.watchPage = flaky  # type: ignore[method-assign]
        yield self.assertFailure(watch.silence.sweep(), RuntimeError)
        yield watch.silence.sweep()
        self.assertEqual(
            {k: watch.counts[k] for k in ("known", "pending")}, {"known": 3, "pending": 1}
        )


class _NoTerminals:
    def connected(self) -> list[str]:
        return []

    def get(self, sn: str) -> None:
        return None


class MetricsUnitTests(SynchronousTestCase):
    def test_ownRegistryAndBoundedLabels(self) -> None:
        one, two = Metrics(), Metrics()  # two servers in one process do not collide
        one.refused("per-ip")
        one.refused("someone's made-up reason")
        fams = families(one.render().decode())
        refused = "tm20_connections_refused_total"
        self.assertEqual(value(fams, "tm20_connections_refused", refused, reason="per-ip"), 1)
        self.assertEqual(value(fams, "tm20_connections_refused", refused, reason="other"), 1)
        self.assertEqual(
            value(
                families(two.render().decode()),
                "tm20_connections_refused",
                refused,
                reason="per-ip",
            ),
            0,
        )

    def test_openFilesAgainstTheirLimit(self) -> None:
        fams = families(Metrics().render().decode())
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.assertEqual(value(fams, "process_max_fds"), soft)
        self.assertGreater(value(fams, "process_open_fds"), 0)
        self.assertGreater(value(fams, "process_resident_memory_bytes"), 0)

    def test_sampledAtScrapeTime(self) -> None:
        metrics = Metrics()
        depth = [3]
        metrics.sample("tm20_x_depth", "A depth.", (), lambda: [((), depth[0])])
        self.assertEqual(value(families(metrics.render().decode()), "tm20_x_depth"), 3)
        depth[0] = 5
        self.assertEqual(value(families(metrics.render().decode()), "tm20_x_depth"), 5)

    def test_dashboardIsValidJSONWithQueries(self) -> None:
        exprs = dashboardQueries()
        self.assertTrue(exprs)
        self.assertTrue(all(metricNames([e]) for e in exprs))
