"""The durable command queue, with a fake store and command service on a Clock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tm20.errors import CommandTimeout, StoreUnavailable, TerminalGone
from tm20.model import StoredCommand, Terminal
from tm20.protocol.messages import CommandReply, ProtocolError
from tm20.services.queue import CommandQueue, CommandVanishedError, QueuedCommandTimeout


class FakeStore:
    """The command part of IStore, in memory, answering at once."""

    def __init__(self) -> None:
        self.commands: dict[int, StoredCommand] = {}
        self.terminals: dict[str, Terminal] = {}
        self.broken: Exception | None = None
        self.audits: list[Any] = []
        #: Store calls that claimed (alone or with an outcome), and transactions in all.
        self.claims = 0

    def _result(self, value: Any) -> Deferred[Any]:
        if self.broken is not None:
            return fail(self.broken)
        return succeed(value)

    def getTerminal(self, sn: str) -> Deferred[Any]:
        return self._result(self.terminals.get(sn))

    def enqueueCommand(
        self,
        sn: str,
        name: str,
        payload: Mapping[str, Any],
        actor: str | None,
        maxAttempts: int,
        expiresAt: Any = None,
        warnings: Any = (),
    ) -> Deferred[Any]:
        command = StoredCommand(
            id=len(self.commands) + 1,
            sn=sn,
            name=name,
            payload=dict(payload),
            status="queued",
            maxAttempts=maxAttempts,
            actor=actor,
            expiresAt=expiresAt,
            warnings=tuple(warnings),
        )
        self.commands[command.id] = command
        return self._result(command)

    def getCommand(self, commandId: int) -> Deferred[Any]:
        return self._result(self.commands.get(commandId))

    def submitCommand(
        self,
        sn: str,
        name: str,
        payload: Mapping[str, Any],
        actor: str | None,
        maxAttempts: int,
        expiresAt: Any = None,
        warnings: Any = (),
        audit: Any = None,
        claim: bool = False,
    ) -> Deferred[Any]:
        if self.broken is not None:
            return fail(self.broken)
        busy = any(c.sn == sn and c.status in ("queued", "sent") for c in self.commands.values())
        if audit is not None:
            self.audits.append(audit)
        d = self.enqueueCommand(sn, name, payload, actor, maxAttempts, expiresAt, warnings)
        if claim and not busy:
            d.addCallback(lambda command: self.updateCommand(command.id, "sent", None, True))
        return d

    def pendingCommands(self, sn: str) -> Deferred[Any]:
        return self._result(
            [c for c in self.commands.values() if c.sn == sn and c.status in ("queued", "sent")]
        )

    def terminalsWithPendingCommands(self, sns: Any) -> Deferred[Any]:
        if self.broken is not None:
            return fail(self.broken)
        return self._result(
            {c.sn for c in self.commands.values() if c.sn in sns and c.status in ("queued", "sent")}
        )

    def claimCommand(self, sn: str, expired: Any) -> Deferred[Any]:
        self.claims += 1
        if self.broken is not None:
            return fail(self.broken)
        pending = [
            c for c in self.commands.values() if c.sn == sn and c.status in ("queued", "sent")
        ]
        if not pending:
            return succeed(None)
        command = min(pending, key=lambda c: c.id)
        if expired(command):
            return succeed((command, False))
        return self.updateCommand(command.id, "sent", None, True).addCallback(
            lambda sent: (sent, True)
        )

    def finishAndClaimCommand(
        self,
        commandId: int,
        status: str,
        reply: Mapping[str, Any] | None,
        attempted: bool,
        sn: str,
        expired: Any,
    ) -> Deferred[Any]:
        d = self.updateCommand(commandId, status, reply, attempted)

        def claim(updated: Any) -> Any:
            return self.claimCommand(sn, expired).addCallback(lambda claimed: (updated, claimed))

        return d.addCallback(claim)

    def updateCommand(
        self, commandId: int, status: str, reply: Mapping[str, Any] | None, attempted: bool
    ) -> Deferred[Any]:
        if self.broken is not None:
            return fail(self.broken)
        command = self.commands.get(commandId)
        if command is None:
            return succeed(None)
        command = attrs.evolve(
            command,
            status=status,
            reply=reply if reply is not None else command.reply,
            attempts=command.attempts + (1 if attempted else 0),
        )
        self.commands[commandId] = command
        return succeed(command)


class FakeCommands:
    """A command service whose replies the test gives."""

    def __init__(self) -> None:
        self.connected: set[str] = set()
        self.sent: list[tuple[str, Mapping[str, Any], Deferred[Any]]] = []

    def isConnected(self, sn: str) -> bool:
        return sn in self.connected

    def execute(self, sn: str, payload: Mapping[str, Any], timeout: float | None = None) -> Any:
        d: Deferred[Any] = Deferred()
        self.sent.append((sn, payload, d))
        return d

    def answer(self, result: bool = True, **fields: Any) -> None:
        sn, payload, d = self.sent[-1]
        d.callback(CommandReply(ret=payload["cmd"], sn=sn, result=result, fields=fields))


class FakeRegistration:
    def cloudTimeFor(self, terminal: Terminal | None) -> str:
        return "2030-01-02 03:04:05" if terminal and terminal.timezone else "2000-01-01 00:00:00"


class QueueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = FakeStore()
        self.commands = FakeCommands()
        self.queue = CommandQueue(
            self.store, self.commands, FakeRegistration(), Clock(), maxAttempts=3
        )

    def submit(self, name: str = "gettime", params: Any = None, wait: bool = False) -> Any:
        return self.queue.submit("SN1", name, params or {}, "tester", wait=wait)

    def status(self, commandId: int) -> str:
        return self.store.commands[commandId].status

    def test_offlineCommandIsQueued(self) -> None:
        command = self.successResultOf(self.submit(wait=True))
        self.assertEqual((command.status, command.actor), ("queued", "tester"))
        self.assertEqual(self.commands.sent, [])

    def test_deliveredInOrderOneAtATimeAfterReg(self) -> None:
        first = self.successResultOf(self.submit("setdevinfo", {"volume": 1}))
        second = self.successResultOf(self.submit("setdevinfo", {"volume": 2}))
        self.commands.connected.add("SN1")
        self.queue.deliverPending("SN1")
        self.assertEqual([p["volume"] for _, p, _ in self.commands.sent], [1])
        self.assertEqual((self.status(first.id), self.status(second.id)), ("sent", "queued"))
        self.commands.answer()
        self.assertEqual([p["volume"] for _, p, _ in self.commands.sent], [1, 2])
        # a command submitted meanwhile waits its turn
        third = self.successResultOf(self.submit())
        self.assertEqual(len(self.commands.sent), 2)
        self.commands.answer()
        self.assertEqual(self.commands.sent[-1][1], {"cmd": "gettime"})
        self.commands.answer()
        self.assertEqual([self.status(c.id) for c in (first, second, third)], ["succeeded"] * 3)
        self.assertEqual(self.store.commands[first.id].attempts, 1)
        self.successResultOf(self.queue.idle("SN1"))

    def test_registrationWhileTheOldDeliveryFails(self) -> None:
        """
        A terminal registers on a new connection while the delivery on its old one is still
        failing: the queued command is delivered on the new connection, not left until the next
        registration.
        """
        self.commands.connected.add("SN1")
        command = self.successResultOf(self.submit())
        self.assertEqual(len(self.commands.sent), 1)
        self.queue.deliverPending("SN1")  # the new connection registered
        self.commands.sent[0][2].errback(TerminalGone("old connection closed"))
        self.assertEqual(len(self.commands.sent), 2)
        self.commands.answer()
        self.assertEqual(self.status(command.id), "succeeded")
        self.successResultOf(self.queue.idle("SN1"))

    def test_observersSeeEveryAttempt(self) -> None:
        """Observers get the command as stored after each delivery attempt."""
        seen: list[tuple[int, str]] = []
        self.queue.observers.append(lambda c: seen.append((c.id, c.status)))
        self.queue.observers.append(lambda c: 1 / 0)  # a failing observer is logged, no more
        self.commands.connected.add("SN1")
        command = self.successResultOf(self.submit())
        self.commands.sent[-1][2].errback(CommandTimeout("late"))
        self.commands.answer()
        self.assertEqual(seen, [(command.id, "queued"), (command.id, "succeeded")])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_waitGetsTheReply(self) -> None:
        self.commands.connected.add("SN1")
        d = self.submit(wait=True)
        self.assertNoResult(d)
        self.commands.answer(time="2024-01-01 00:00:00")
        command = self.successResultOf(d)
        self.assertEqual(command.status, "succeeded")
        self.assertEqual(
            command.reply, {"ret": "gettime", "result": True, "time": "2024-01-01 00:00:00"}
        )

    def test_waitedCommandStoredSentAtOnce(self) -> None:
        """
        A waited-for command for a connected terminal with an idle queue is stored C{sent}
        with its audit entry in one store call, and delivered without a claim of its own; its
        outcome is stored with the (empty) claim of the next.
        """
        self.commands.connected.add("SN1")
        audit = ("tester", "command.submit", "SN1", {"command": "gettime"})
        d = self.queue.submit("SN1", "gettime", {}, "tester", wait=True, audit=audit)
        self.assertEqual(self.store.audits, [audit])
        (command,) = self.store.commands.values()
        self.assertEqual((command.status, command.attempts), ("sent", 1))
        self.assertEqual(len(self.commands.sent), 1)
        self.assertEqual(self.store.claims, 0)
        self.commands.answer()
        self.assertEqual(self.successResultOf(d).status, "succeeded")
        self.assertEqual(self.store.claims, 1)  # the next one's, with the outcome
        self.successResultOf(self.queue.idle("SN1"))

    def test_waitedCommandBehindOlderOnes(self) -> None:
        """With an older command pending, a waited-for one is queued behind it, not sent first."""
        older = self.successResultOf(self.submit("setdevinfo", {"volume": 1}))
        self.commands.connected.add("SN1")
        d = self.submit(wait=True)
        self.assertEqual([p.get("volume") for _, p, _ in self.commands.sent], [1])
        self.assertEqual(self.status(older.id), "sent")
        newer = max(self.store.commands)
        self.assertEqual(self.status(newer), "queued")
        self.commands.answer()
        self.assertEqual(self.commands.sent[-1][1], {"cmd": "gettime"})
        self.commands.answer()
        self.assertEqual(self.successResultOf(d).status, "succeeded")
        self.assertEqual((self.status(older.id), self.status(newer)), ("succeeded", "succeeded"))

    def test_waitedCommandWhileTheQueueWorks(self) -> None:
        """A waited-for command posted while the worker delivers is queued and delivered next."""
        self.commands.connected.add("SN1")
        first = self.submit(wait=True)
        second = self.submit("setdevinfo", {"volume": 3}, wait=True)
        self.assertEqual(len(self.commands.sent), 1)
        self.assertEqual(self.status(max(self.store.commands)), "queued")
        self.commands.answer()
        self.assertEqual(self.successResultOf(first).status, "succeeded")
        self.assertEqual(self.commands.sent[-1][1], {"cmd": "setdevinfo", "volume": 3})
        self.commands.answer()
        self.assertEqual(self.successResultOf(second).status, "succeeded")

    def test_submitWithAuditStoreFailure(self) -> None:
        """The store refusing the command: the caller gets the error and the queue is idle."""
        self.commands.connected.add("SN1")
        self.store.broken = StoreUnavailable("down")
        self.failureResultOf(self.submit(wait=True), StoreUnavailable)
        self.successResultOf(self.queue.idle("SN1"))
        self.store.broken = None
        d = self.submit(wait=True)
        self.commands.answer()
        self.assertEqual(self.successResultOf(d).status, "succeeded")

    def test_resultFalseFails(self) -> None:
        self.commands.connected.add("SN1")
        d = self.submit("getuserinfo", {"enrollid": 5}, wait=True)
        self.commands.answer(result=False)
        self.assertEqual(self.successResultOf(d).status, "failed")

    def test_timeoutsAreRetriedThenGivenUp(self) -> None:
        self.commands.connected.add("SN1")
        d = self.submit(wait=True)
        self.commands.sent[-1][2].errback(CommandTimeout("late"))
        error = self.failureResultOf(d, QueuedCommandTimeout).value
        self.assertEqual((error.command.status, error.command.attempts), ("queued", 1))
        self.assertEqual(len(self.commands.sent), 2)  # tried again at once
        self.commands.sent[-1][2].errback(CommandTimeout("late"))
        self.commands.sent[-1][2].errback(CommandTimeout("late"))
        self.assertEqual(len(self.commands.sent), 3)
        command = self.store.commands[error.command.id]
        self.assertEqual((command.status, command.attempts), ("timed_out", 3))

    def test_disconnectRequeuesUntilTheLastAttempt(self) -> None:
        self.commands.connected.add("SN1")
        d = self.submit(wait=True)
        self.commands.connected.discard("SN1")
        self.commands.sent[-1][2].errback(TerminalGone("gone"))
        command = self.successResultOf(d)
        self.assertEqual((command.status, command.attempts), ("queued", 1))
        for attempt in (2, 3):
            self.commands.connected.add("SN1")
            self.queue.deliverPending("SN1")
            self.assertEqual(len(self.commands.sent), attempt)
            self.commands.connected.discard("SN1")
            self.commands.sent[-1][2].errback(TerminalGone("gone"))
        self.assertEqual(self.status(command.id), "failed")
        self.queue.deliverPending("SN1")
        self.assertEqual(len(self.commands.sent), 3)

    def test_settimeGetsTheTerminalsTime(self) -> None:
        self.store.terminals["SN1"] = Terminal(sn="SN1", timezone="Asia/Tokyo")
        command = self.successResultOf(self.submit("settime"))
        self.assertEqual(command.payload, {"cmd": "settime", "cloudtime": "2030-01-02 03:04:05"})
        given = self.successResultOf(self.submit("settime", {"cloudtime": "2024-01-15 10:30:00"}))
        self.assertEqual(given.payload["cloudtime"], "2024-01-15 10:30:00")

    def test_settimeUsesTheTerminalGiven(self) -> None:
        """A caller that has just read the terminal gives it: its time zone is used as is."""
        self.store.terminals["SN1"] = Terminal(sn="SN1", timezone="Europe/Paris")
        given = Terminal(sn="SN1", timezone="Asia/Tokyo")
        payload = self.successResultOf(self.queue.buildPayload("SN1", "settime", {}, given))
        self.assertEqual(payload, {"cmd": "settime", "cloudtime": "2030-01-02 03:04:05"})

    def test_payloadGivenIsNotBuiltAgain(self) -> None:
        """
        The frame a caller built (and so validated) with L{CommandQueue.buildPayload} is stored
        as given: the parameters are not validated a second time.
        """
        payload = self.successResultOf(self.queue.buildPayload("SN1", "opendoor", {"doornum": 1}))
        d = self.queue.submit("SN1", "opendoor", {"doornum": 7}, "tester", False, None, payload)
        command = self.successResultOf(d)
        self.assertEqual(command.payload, {"cmd": "opendoor", "doornum": 1})
        self.assertEqual(self.store.commands[command.id].payload, payload)

    def test_invalidParamsStoreNothing(self) -> None:
        error = self.failureResultOf(self.submit("opendoor", {"doornum": 7}), ProtocolError)
        self.assertEqual(error.value.field, "doornum")
        self.assertEqual(self.store.commands, {})

    def test_expiresInOutOfRangeStoresNothing(self) -> None:
        for value in (0, -1, 31 * 86400):
            d = self.queue.submit("SN1", "gettime", {}, "tester", wait=False, expiresIn=value)
            self.failureResultOf(d, ValueError)
        self.assertEqual(self.store.commands, {})

    def test_storeFailureFailsTheWaiters(self) -> None:
        self.commands.connected.add("SN1")
        d = self.submit(wait=True)
        self.store.broken = StoreUnavailable("down")
        self.commands.answer()
        self.failureResultOf(d, StoreUnavailable)
        self.assertEqual(self.flushLoggedErrors(), [])
        self.store.broken = None
        self.queue.deliverPending("SN1")  # the worker starts again
        self.assertEqual(len(self.commands.sent), 2)

    def test_commandDeletedMeanwhile(self) -> None:
        self.commands.connected.add("SN1")
        d = self.submit(wait=True)
        self.store.commands.clear()  # the terminal was deleted, and its commands
        self.commands.answer()
        self.failureResultOf(d, CommandVanishedError)

    def test_maxAttemptsAtLeastOne(self) -> None:
        self.assertRaises(
            ValueError, CommandQueue, self.store, self.commands, None, Clock(), maxAttempts=0
        )
