"""
Policy plugins (L{tm20.interfaces.IAccessPolicy}) and the reply budget, on a real server with
simulated terminals in server-approval mode (SQLite):

  - the README's example plugin, written to a C{tm20/plugins/} folder and found by
    C{twisted.plugin}, denies a blacklisted person the rules let through, with its message;
  - a policy that never answers, or fails, makes the door fall back within the budget;
  - a decision whose commit is held up by a lock (another connection holding SQLite's write
    lock) is answered with the fallback in time, and recorded as such once it commits.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater

import tm20.plugins
from tests.test_api_support import READER, ApiTestCase
from tests.test_metrics import families, value
from tm20.access.model import AccessRule
from tm20.model import LogQuery, Person
from tm20.services.access import pluginPolicies
from tm20.simulator.device import SimulatedTerminal
from tm20.store.sqlite import SQLiteStore

README = Path(__file__).resolve().parents[1] / "README.md"
_EXAMPLE = re.compile(
    r"<!-- access-policy-example: (?P<path>\S+) -->\n```python\n(?P<code>.*?)\n```", re.S
)
BUDGET = 0.3


class Never:
    name = "never"

    def check(self, request: Any) -> Deferred[Any]:
        return Deferred()


class Broken:
    name = "broken"

    def check(self, request: Any) -> Any:
        raise RuntimeError("the booking system is down")


class PolicyTests(ApiTestCase):
    timeout = 60

    def makeStore(self) -> Any:
        self.path = self.mktemp() + ".sqlite3"
        return SQLiteStore(self.path, reactor=reactor)

    @inlineCallbacks
    def site(self, **config: Any) -> Any:
        yield self.start(accessReplyBudget=BUDGET, **config)
        store = self.running.context.store
        yield store.createTerminal("DOOR1", None, True, None)
        for enrollid in (1, 2):
            yield store.putPerson(Person(enrollid=enrollid, terminals=("DOOR1",)), True)
        yield store.putAccessRule(AccessRule(id=0, persons=(1, 2), terminals=("DOOR1",)), True)
        yield self.running.context.access.changed()
        self.door = yield self.connect(
            SimulatedTerminal("DOOR1", serverApproval=True), ackTimeout=60.0
        )

    @inlineCallbacks
    def punch(self, enrollid: int) -> Any:
        answers = self.door.terminal.accessAnswers
        before = len(answers)
        started = time.monotonic()
        self.door.punch(enrollid)
        yield self.until(lambda: len(answers) > before, f"the answer to {enrollid}")
        return time.monotonic() - started, answers[-1]

    @inlineCallbacks
    def test_readmeExamplePluginDenies(self) -> Any:
        match = _EXAMPLE.search(README.read_text(encoding="utf-8"))
        assert match is not None, "the policy plugin example is missing from README.md"
        folder = Path(self.mktemp()).resolve() / Path(match.group("path")).parent
        folder.mkdir(parents=True)
        (folder / Path(match.group("path")).name).write_text(match.group("code") + "\n")
        tm20.plugins.__path__.append(str(folder))
        self.addCleanup(tm20.plugins.__path__.remove, str(folder))
        policies = pluginPolicies()
        self.assertEqual([p.name for p in policies], ["blacklist"])
        blacklist = Path(self.mktemp())
        blacklist.write_text("2\n")
        os.environ["TM20_BLACKLIST"] = str(blacklist)
        self.addCleanup(os.environ.pop, "TM20_BLACKLIST", None)
        yield self.site()
        self.running.context.access.policies = policies
        _, answer = yield self.punch(1)
        self.assertTrue(answer.opened)
        _, answer = yield self.punch(2)
        self.assertEqual((answer.opened, answer.message), (False, "Please see the front desk"))
        logs = yield self.running.context.store.queryLogs(LogQuery(enrollid=2))
        self.assertEqual((logs[0].accessGranted, logs[0].accessReason), (False, "policy"))

    @inlineCallbacks
    def test_aPolicyThatNeverAnswersOrFailsFallsBack(self) -> Any:
        yield self.site()
        access = self.running.context.access
        for policy in (Never(), Broken()):
            access.policies = [policy]
            yield deferLater(reactor, 1.05, lambda: None)  # a new record each time
            elapsed, answer = yield self.punch(1)
            self.assertEqual((answer.opened, answer.result), (False, True), policy.name)
            self.assertLess(elapsed, BUDGET + 0.4)
        logs = yield self.running.context.store.queryLogs(LogQuery(access="denied"))
        self.assertEqual([log.accessReason for log in logs], ["fallback", "fallback"])
        access.policies = []
        yield deferLater(reactor, 1.05, lambda: None)
        _, answer = yield self.punch(1)
        self.assertTrue(answer.opened)
        # /metrics: two fallbacks (denied), one decision by the rules
        fams = yield self.metrics()
        self.assertEqual(
            value(fams, "tm20_access_fallbacks", "tm20_access_fallbacks_total", decision="denied"),
            2,
        )
        self.assertEqual(
            value(fams, "tm20_access_fallbacks", "tm20_access_fallbacks_total", decision="granted"),
            0,
        )
        decided = "tm20_access_decisions"
        self.assertEqual(
            value(fams, decided, f"{decided}_total", decision="denied", reason="fallback"), 2
        )
        self.assertEqual(
            value(fams, decided, f"{decided}_total", decision="granted", reason="rule"), 1
        )
        latency = "tm20_access_decision_latency_seconds"
        self.assertEqual(value(fams, latency, f"{latency}_count", kind="log"), 3)
        # the policy that never answers was waited for (half the budget) before the reply was
        # written: a lower bound from arrival to reply, whatever the machine's speed
        self.assertGreaterEqual(value(fams, latency, f"{latency}_sum", kind="log"), BUDGET / 2)

    @inlineCallbacks
    def metrics(self) -> Any:
        r = yield self.call("GET", "/metrics", token=READER)
        self.assertEqual(r.status, 200, r.text)
        return families(r.text)

    @inlineCallbacks
    def test_aLateCommitIsRecordedAsTheFallback(self) -> Any:
        yield self.site(accessFallback="cached")
        blocker = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        self.addCleanup(blocker.close)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
        elapsed, answer = yield self.punch(1)
        self.assertEqual((answer.opened, answer.result), (True, False), "cached: known person")
        self.assertLess(elapsed, BUDGET + 0.4)
        blocker.execute("COMMIT")
        store = self.running.context.store

        @inlineCallbacks
        def corrected() -> Any:
            logs = yield store.queryLogs(LogQuery(enrollid=1))
            return logs and logs[0].accessReason == "fallback"

        yield self.until(corrected, "the late decision recorded as the fallback")
        r = yield self.call("GET", "/api/events/?type=access.*")
        self.assertEqual(
            [(e["type"], e["data"]["reason"], e["data"]["replaces"]) for e in r.json["items"]],
            [("access.granted", "rule", False), ("access.granted", "fallback", True)],
        )
        fams = yield self.metrics()
        self.assertEqual(
            value(fams, "tm20_access_fallbacks", "tm20_access_fallbacks_total", decision="granted"),
            1,
        )
        self.assertEqual(
            value(
                fams,
                "tm20_access_decisions",
                "tm20_access_decisions_total",
                decision="granted",
                reason="fallback",
            ),
            1,
        )
