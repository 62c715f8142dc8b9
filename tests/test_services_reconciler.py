"""L{tm20.services.reconciler.Reconciler}: the periodic check, on an injected clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tm20.model import SYNC_SYNCED, PersonSync
from tm20.services.reconciler import Reconciler, commandEnrollid


class _Fakes:
    def __init__(self) -> None:
        self.connected = ["A", "B", "C"]
        self.synced = {"A", "B"}  # C holds no fleet person
        self.busy: set[str] = set()
        self.refreshed: list[str] = []
        self.looks: list[list[str]] = []
        self.pendingLook: Deferred[set[str]] | None = None

    # registry, commands, pulls, store: just what the periodic check uses
    def isConnected(self, sn: str) -> bool:
        return sn in self.connected

    def listPersonSync(self, sn: str, enrollid: Any) -> Any:
        return succeed([PersonSync(sn, 1, SYNC_SYNCED, True)] if sn in self.synced else [])

    def terminalsWithPersons(self, sns: list[str]) -> Any:
        self.looks.append(sorted(sns))
        if self.pendingLook is not None:
            return self.pendingLook
        return succeed({sn for sn in sns if sn in self.synced})

    def refreshUsers(self, sn: str) -> Any:
        self.refreshed.append(sn)
        return succeed(None)


class PeriodicTests(SynchronousTestCase):
    def test_everyIntervalEachConnectedTerminalWithPersons(self) -> None:
        clock = Clock()
        fakes = _Fakes()
        registry = type("Registry", (), {"connected": lambda self: list(fakes.connected)})()
        pulls = type(
            "Pulls",
            (),
            {
                "busy": lambda self, sn: sn in fakes.busy,
                "refreshUsers": lambda self, sn: fakes.refreshUsers(sn),
            },
        )()
        reconciler = Reconciler(
            fakes, None, fakes, None, pulls, clock, registry=registry, interval=600
        )
        passes: list[str] = []
        reconciler.reconcileTerminal = lambda sn: passes.append(sn) or succeed(None)  # type: ignore[method-assign,func-returns-value]
        reconciler.start()
        clock.advance(599)
        self.assertEqual(fakes.refreshed, [])
        clock.advance(1)
        self.assertEqual(fakes.refreshed, ["A", "B"])
        self.assertEqual(passes, ["A", "B"])
        fakes.busy.add("A")  # a pull of A is running: A is left for next time
        clock.advance(600)
        self.assertEqual(fakes.refreshed, ["A", "B", "B"])
        reconciler.stop()
        clock.advance(6000)
        self.assertEqual(len(fakes.refreshed), 3)

    def test_noStateKeptForTerminalsWithoutPersons(self) -> None:
        """A registration of a terminal without fleet persons leaves no state behind."""
        clock = Clock()
        fakes = _Fakes()
        fakes.synced = set()
        fakes.personsForTerminal = lambda sn: succeed([])  # type: ignore[attr-defined]
        reconciler = Reconciler(fakes, None, fakes, None, None, clock)
        reconciler.terminalRegistered("C")
        self.assertEqual(reconciler._terminals, {})

    def test_registrationsLookedAtTogether(self) -> None:
        """
        The terminals registered while one look is in flight are looked at together, in one
        query; only those with persons are reconciled, and no state is kept for the others.
        """
        clock = Clock()
        fakes = _Fakes()
        fakes.synced = {"B"}
        fakes.pendingLook = Deferred()
        reconciled: list[str] = []
        reconciler = Reconciler(fakes, None, fakes, None, None, clock)

        def reconcile(sn: str) -> Deferred[None]:
            reconciled.append(sn)
            return succeed(None)

        self.patch(reconciler, "reconcileTerminal", reconcile)
        reconciler.terminalRegistered("A")
        for sn in ("C", "B", "D"):
            reconciler.terminalRegistered(sn)
        self.assertEqual(fakes.looks, [["A"]])
        first, fakes.pendingLook = fakes.pendingLook, None
        first.callback(set())
        self.assertEqual(fakes.looks, [["A"], ["B", "C", "D"]])
        self.assertEqual(reconciled, ["B"])
        self.assertEqual(reconciler._terminals, {})

    def test_noIntervalNoLoop(self) -> None:
        clock = Clock()
        reconciler = Reconciler(None, None, None, None, None, clock, interval=0)
        reconciler.start()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_commandEnrollid(self) -> None:
        self.assertEqual(commandEnrollid({"cmd": "setuserinfo", "enrollid": 4}), 4)
        self.assertEqual(
            commandEnrollid({"cmd": "setusername", "record": [{"enrollid": 9, "name": "x"}]}), 9
        )
        self.assertIsNone(commandEnrollid({"cmd": "reboot"}))
