"""
The OpenAPI document: it lists exactly the Klein routes, and schemathesis (a property-based
client generating requests from it) finds no server error and no answer that contradicts it,
against the live API with a simulated terminal connected.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase

from tests.test_api_support import ADMIN, ApiTestCase, simulated
from tm20.api._openapi import OPERATIONS, ValidationError, buildDocument, kleinPath, validate
from tm20.services.ratelimit import FailureRateLimiter

#: Checks run by schemathesis.  Left out: positive_data_acceptance, because some rules are not
#: expressible in the schema (a time zone must exist, a destructive command needs confirm, a
#: cursor must be one the API gave), so schema-valid requests are rightly refused with 400.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
)


def _werkzeugToOpenAPI(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


class OpenAPIDocumentTests(ApiTestCase):
    # schemathesis fuzzes every operation (some 90 with access control): over a minute on a
    # loaded machine
    timeout = 300

    @inlineCallbacks
    def test_documentMatchesTheKleinRoutes(self) -> Any:
        yield self.start()
        api = self.running.server.root.children[b"api"]
        klein = api._app
        routes = set()
        for rule in klein.url_map.iter_rules():
            for method in rule.methods:
                if method in ("HEAD", "OPTIONS"):
                    continue
                routes.add((method, _werkzeugToOpenAPI(rule.rule)))
        document = buildDocument()
        documented = {
            (method.upper(), path)
            for path, operations in document["paths"].items()
            for method in operations
        }
        self.assertEqual(routes, documented)
        self.assertEqual(len(documented), len(OPERATIONS))
        r = yield self.call("GET", "/api/openapi.json")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, json.loads(json.dumps(document)))

    @inlineCallbacks
    def test_schemathesis(self) -> Any:
        """Schemathesis against the live API (part of make test)."""
        yield self.start(commandTimeout=2.0)
        # The ignored_auth check probes every operation without (and with a wrong) token, all
        # from 127.0.0.1: with the default budget of 10 failures the rest of the run would be
        # answered 429.  The limit itself is tested in tests/test_api_ratelimit.py.
        self.limitFailures(FailureRateLimiter(reactor, burst=1_000_000))
        # Webhooks it creates point to made-up hosts: their CRUD is fuzzed, their delivery is
        # not (tests/test_events_api.py delivers to real receivers).
        events = self.running.context.events
        events.runner.sinks = []
        yield Deferred.fromCoroutine(events.runner.refresh())
        yield self.connect(simulated("ZX0006827500", users=3, logs=20))
        r = yield self.call("GET", "/api/openapi.json")
        # schemathesis keeps a cache in its working directory: run it in a scratch one
        workdir = tempfile.mkdtemp(prefix="tm20-schemathesis-")
        self.addCleanup(shutil.rmtree, workdir, True)
        path = os.path.join(workdir, "openapi.json")
        with open(path, "wb") as f:
            f.write(r.raw)
        executable = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        self.assertTrue(
            os.path.exists(executable),
            "schemathesis is not installed: pip install -e '.[dev]'",
        )
        args = [
            "run",
            path,
            "--url",
            self.url("/api"),
            "-H",
            f"Authorization: Bearer {ADMIN}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            "15",
            "--seed",
            "20261125",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            # an SSE stream never ends: tests/test_events_sse.py covers it
            "--exclude-operation-id",
            "streamEvents",
            "--report-dir",
            os.path.join(workdir, "reports"),
        ]
        env = dict(os.environ, NO_COLOR="1", SCHEMATHESIS_TELEMETRY="false")
        out, err, code = yield getProcessOutputAndValue(executable, args, env=env, path=workdir)
        output = (out + err).decode("utf-8", "replace")
        self.assertEqual(code, 0, output[-6000:])
        self.assertIn(f"Tested: {len(OPERATIONS) - 1}", output)

    # A subprocess fuzzing every operation: over a minute on a loaded machine (main too).
    test_schemathesis.timeout = 240  # type: ignore[attr-defined]


class DocumentUnitTests(SynchronousTestCase):
    def test_everyOperationIsDocumented(self) -> None:
        document = buildDocument()
        for op in OPERATIONS:
            operation = document["paths"][op.path][op.method.lower()]
            self.assertEqual(operation["operationId"], op.operationId)
            for status in ("400", "401", "403", "429", "503"):
                self.assertIn(status, operation["responses"])
            self.assertIn("Retry-After", operation["responses"]["429"]["headers"])
            self.assertEqual(operation["x-scope"], op.scope)
            kleinPath(op.path)  # converts

    def test_kleinPath(self) -> None:
        self.assertEqual(
            kleinPath("/terminals/{sn}/users/{enrollid}/"),
            "/terminals/<segment:sn>/users/<int:enrollid>/",
        )
        self.assertEqual(kleinPath("/commands/{id}"), "/commands/<int:id>")

    def test_validate(self) -> None:
        validate({"sn": "A", "name": None}, "TerminalCreate")
        for body, field in (
            ({}, "sn"),
            ({"sn": ""}, "sn"),
            ({"sn": "A", "x": 1}, "x"),
            ({"sn": "A", "approved": 1}, "approved"),
        ):
            with self.assertRaises(ValidationError) as e:
                validate(body, "TerminalCreate")
            self.assertEqual(e.exception.field, field)
        with self.assertRaises(ValidationError) as e:
            validate(
                {"enrollid": 1, "credentials": [{"backupnum": 0, "record": True}]}, "UserCreate"
            )
        self.assertEqual(e.exception.field, "credentials[0].record")
