"""
PostgreSQL frozen (SIGSTOP) under a door in server-approval mode: the terminal still gets its
answer within --access-reply-budget, with the fallback decision (deny by default; cached: what
the rules in memory say), and the punch it resends later is never decided again.

Always on a private cluster (it freezes the server).
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.serverfixture import privateDatabase, sleep, startServer
from tm20.access.model import AccessRule
from tm20.model import LogQuery, Person, TerminalGroup
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal
from tm20.store.postgres import PostgresStore

BUDGET = 0.8
#: what the loopback round trip may add to the budget on a loaded machine
SLACK = 0.4


class FrozenDoorTests(TestCase):
    timeout = 180

    @inlineCallbacks
    def setUp(self) -> Any:
        self.cluster, self.url = yield privateDatabase(self, "tm20_door")

    @inlineCallbacks
    def answer(self, connection: TerminalConnection, enrollid: int) -> Any:
        """A real-time punch: (seconds until the door's answer, the answer)."""
        answers = connection.terminal.accessAnswers
        before = len(answers)
        started = time.monotonic()
        connection.punch(enrollid)
        while len(answers) == before:
            if time.monotonic() - started > 10:
                self.fail(f"no answer to {enrollid}'s punch")
            yield sleep(0.005)
        return time.monotonic() - started, answers[-1]

    @inlineCallbacks
    def test_frozenStoreAnswersWithinTheBudget(self) -> Any:
        store = PostgresStore(
            self.url,
            reactor=reactor,
            poolSize=2,
            statementTimeout=1.0,
            connectTimeout=1.0,
            reconnectDelay=(0.05, 0.3),
            healthInterval=0.5,
        )
        running = yield startServer(self, store=store, accessReplyBudget=BUDGET)
        yield store.createTerminal("DOOR1", None, True, None)
        yield store.putGroup(TerminalGroup(name="hq", terminals=("DOOR1",)), True)
        yield store.putPerson(Person(enrollid=1, name="Ann", groups=("hq",)), True)
        yield store.putAccessRule(AccessRule(id=0, persons=(1,), terminalGroups=("hq",)), True)
        access = running.context.access
        yield access.changed()
        door = TerminalConnection(
            SimulatedTerminal("DOOR1", serverApproval=True),
            running.wsURL(),
            reactor=reactor,
            ackTimeout=1.0,
            retryPolicy=lambda attempt: 0.05,
        )
        door.start()
        self.addCleanup(door.disconnect)
        yield door.whenRegistered()
        elapsed, answer = yield self.answer(door, 1)
        self.assertEqual((answer.opened, answer.result), (True, True))
        yield sleep(1.1)  # the next punch is another record (times have seconds)

        self.addCleanup(self.cluster.thaw)
        yield threads.deferToThread(self.cluster.freeze)
        elapsed, answer = yield self.answer(door, 1)
        self.assertEqual(
            (answer.opened, answer.result), (False, False), "deny: the door stays shut"
        )
        self.assertLess(elapsed, BUDGET + SLACK)
        # its resend (not stored: result false) waits for the next punch's turn; meanwhile the
        # operator chose the cache: a known enabled person passes, still not stored
        yield sleep(1.2)
        access.fallback = "cached"
        before = len(door.terminal.accessAnswers)
        started = time.monotonic()
        while len(door.terminal.accessAnswers) == before:
            yield sleep(0.005)
        # the resend of the first record comes first: never decided again (backlog)
        resent = door.terminal.accessAnswers[-1]
        self.assertFalse(resent.opened)
        self.assertLess(time.monotonic() - started, BUDGET + SLACK + 1.2)
        yield threads.deferToThread(self.cluster.thaw)
        yield door.whenAllLogsAcknowledged()
        logs = yield store.queryLogs(LogQuery(sn="DOOR1"))
        self.assertEqual(
            sorted((log.accessGranted, log.accessReason) for log in logs),
            [(False, "backlog"), (True, "rule")],
        )
        self.assertGreaterEqual(access.fellBack, 1)

    @inlineCallbacks
    def test_cachedFallbackLetsAKnownPersonIn(self) -> Any:
        store = PostgresStore(
            self.url,
            reactor=reactor,
            poolSize=2,
            statementTimeout=1.0,
            connectTimeout=1.0,
            reconnectDelay=(0.05, 0.3),
            healthInterval=0.5,
        )
        running = yield startServer(
            self, store=store, accessReplyBudget=BUDGET, accessFallback="cached"
        )
        yield store.createTerminal("DOOR1", None, True, None)
        yield store.putPerson(Person(enrollid=1, name="Ann", terminals=("DOOR1",)), True)
        yield store.putPerson(Person(enrollid=2, name="Bob", enabled=False), True)
        yield store.putAccessRule(AccessRule(id=0, persons=(1, 2), terminals=("DOOR1",)), True)
        yield running.context.access.changed()
        door = TerminalConnection(
            SimulatedTerminal("DOOR1", serverApproval=True),
            running.wsURL(),
            reactor=reactor,
            ackTimeout=60.0,
            retryPolicy=lambda attempt: 0.05,
        )
        door.start()
        self.addCleanup(door.disconnect)
        yield door.whenRegistered()
        self.addCleanup(self.cluster.thaw)
        yield threads.deferToThread(self.cluster.freeze)
        elapsed, answer = yield self.answer(door, 1)
        self.assertEqual((answer.opened, answer.result), (True, False))
        self.assertLess(elapsed, BUDGET + SLACK)
        reply = yield door.scanQrCode("not-a-code")
        self.assertEqual(reply["access"], 0)
