"""
The follow-up work of many registrations at once goes to the store in batches: the clock check's
watch write (L{tm20.services.clockdrift}), the log-gap count (L{tm20.services.loggaps}) and the
command queue's look for waiting commands (L{tm20.services.queue}) each make one store call for
the terminals registered while the previous call ran, not one per terminal, and each terminal
gets its own answer.  Deterministic: in-memory transport, injected C{Clock}, a real SQLite store
that answers synchronously (L{tests.syncstore}); the first call of each batched method is held
until the test lets it go, so that the next registrations pile up behind it as they would behind
a busy database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.memoryws import MemoryTerminal
from tests.syncstore import fired, stopSync, syncSQLiteStore
from tm20.config import ServerConfig
from tm20.service import buildServer

T0 = 1_777_550_377.0  # 2026-04-30 11:59:37 UTC
COUNT = 12


class _Held:
    """
    Wraps a store method: records the terminals of each call (its C{sn}s, or the first item of
    each change); holds the answers until released.
    """

    def __init__(self, method: Callable[[Any], Deferred[Any]]) -> None:
        self.method = method
        self.calls: list[list[Any]] = []
        self.held: list[tuple[Deferred[Any], Any]] = []

    def __call__(self, argument: Any) -> Deferred[Any]:
        self.calls.append([a[0] if isinstance(a, tuple) else a for a in argument])
        d: Deferred[Any] = Deferred()
        self.held.append((d, argument))
        return d

    def release(self) -> None:
        while self.held:  # an answer may start the next batch's call
            d, argument = self.held.pop(0)
            self.method(argument).chainDeferred(d)


class FollowUpBatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = syncSQLiteStore(self.mktemp() + ".sqlite3", self.clock)
        self.addCleanup(stopSync, self.store)
        config = ServerConfig(
            clockDriftThreshold=60.0,
            defaultTimezone="Europe/Paris",
            fetchMissingLogs=False,  # a gap is recorded, not fetched (no pull commands)
        )
        self.server = buildServer(config, reactor, self.store, clock=self.clock)
        self.held = {
            name: _Held(getattr(self.store, name))
            for name in ("updateWatches", "countLogsOfTerminals", "terminalsWithPendingCommands")
        }
        for name, held in self.held.items():
            self.patch(self.store, name, held)
        self.claims: list[str] = []
        claimCommand = self.store.claimCommand

        def countedClaim(sn: str, expired: Any) -> Deferred[Any]:
            self.claims.append(sn)
            return claimCommand(sn, expired)

        self.patch(self.store, "claimCommand", countedClaim)

    def connect(self) -> MemoryTerminal:
        term = MemoryTerminal(self.server.factory, "/pub/chat")
        self.addCleanup(term.lose)
        return term

    def reg(self, sn: str, offset: float) -> dict[str, Any]:
        local = datetime.fromtimestamp(T0 + offset, ZoneInfo("Europe/Paris"))
        devinfo = {"time": local.strftime("%Y-%m-%d %H:%M:%S"), "usedlog": 5, "usednewlog": 0}
        return {"cmd": "reg", "sn": sn, "devinfo": devinfo}

    def test_registrationsFollowedUpInBatches(self) -> None:
        """
        Twelve terminals register while the first one's follow-up calls are in the store: two
        calls of each batched method (the first terminal, then the eleven others together);
        every terminal's clock drift is recorded, its logs counted (a gap of 5 each), and only
        the terminal with a waiting command has its queue claimed (and gets the command).
        """
        sns = [f"T{i:02d}" for i in range(COUNT)]
        for sn in sns:
            fired(self.store.recordTerminalSeen(sn, None, {}, True))
        fired(self.store.enqueueCommand("T07", "opendoor", {"cmd": "opendoor"}, "ops", 3))
        terms = {}
        for sn in sns:
            terms[sn] = term = self.connect()
            term.send(self.reg(sn, 600.0 if sn == "T03" else 0.0))
            [answer] = term.messages()
            self.assertEqual((answer["ret"], answer["result"]), ("reg", True))
        for name, held in self.held.items():
            self.assertEqual(held.calls, [sns[:1]], name)
        for held in self.held.values():
            held.release()
        for name, held in self.held.items():
            self.assertEqual(held.calls, [sns[:1], sns[1:]], name)
        watches = {sn: fired(self.store.getWatch(sn)) for sn in sns}
        self.assertEqual(
            {sn: w.clockDrift for sn, w in watches.items()},
            {sn: 600.0 if sn == "T03" else 0.0 for sn in sns},
        )
        self.assertEqual({sn: w.logGap for sn, w in watches.items()}, dict.fromkeys(sns, 5))
        self.assertEqual(self.claims[:1], ["T07"])
        self.assertEqual(set(self.claims), {"T07"})
        [command] = terms["T07"].messages()
        self.assertEqual(command["cmd"], "opendoor")
        self.assertEqual([sn for sn in sns if sn != "T07" and terms[sn].messages()], [])
