"""The real server with simulated terminals over loopback: ingest, resends, paging, commands."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.serverfixture import startServer
from tm20.model import LogQuery
from tm20.protocol.commands import buildCommand
from tm20.protocol.parser import logRecordsOf
from tm20.simulator.client import TerminalConnection
from tm20.simulator.device import SimulatedTerminal


class SimulatedTerminalsTests(TestCase):
    timeout = 120

    def connect(
        self, running: Any, terminal: SimulatedTerminal, **options: Any
    ) -> TerminalConnection:
        connection = TerminalConnection(
            terminal, running.wsURL("/pub/chat"), reactor=reactor, **options
        )
        connection.start()
        self.addCleanup(connection.disconnect)
        return connection

    @inlineCallbacks
    def test_uploadTenThousandLogsInBatches(self) -> Any:
        running = yield startServer(self)
        terminal = SimulatedTerminal("SIM000001", logs=10_000, users=0, seed=1)
        connection = self.connect(running, terminal, batchSize=100)
        yield connection.whenRegistered()
        yield connection.whenAllLogsAcknowledged()
        store = running.context.store
        punches = yield store.countLogs("SIM000001")
        doors = yield store.queryDoorEvents(LogQuery(sn="SIM000001", limit=100_000))
        self.assertEqual(punches + len(doors), 10_000)
        self.assertEqual(connection.stats.logsAcknowledged, 10_000)
        self.assertEqual(connection.stats.resends, 0)

    @inlineCallbacks
    def test_droppedAcksAreResentWithoutDuplicates(self) -> Any:
        running = yield startServer(self)
        terminal = SimulatedTerminal("SIM000002", logs=500, seed=2)
        connection = self.connect(running, terminal, batchSize=10)
        connection.dropNextAck = 5  # five batches: sent, stored, socket dropped before the ack
        yield connection.whenAllLogsAcknowledged()
        self.assertGreaterEqual(connection.stats.resends, 5)
        self.assertGreaterEqual(connection.stats.reconnects, 5)
        store = running.context.store
        punches = yield store.countLogs("SIM000002")
        doors = yield store.queryDoorEvents(LogQuery(sn="SIM000002", limit=10_000))
        self.assertEqual(punches + len(doors), 500)
        self.assertEqual(running.context.ingest.duplicates, connection.stats.resends * 10)

    @inlineCallbacks
    def test_manyTerminalsAtOnce(self) -> Any:
        running = yield startServer(self)
        connections = [
            self.connect(running, SimulatedTerminal(f"SIM1{i:05d}", logs=100, seed=i), batchSize=10)
            for i in range(50)
        ]
        yield gatherResults([c.whenAllLogsAcknowledged() for c in connections])
        self.assertEqual(len(running.context.registry.connected()), 50)
        store = running.context.store
        total = yield store.countLogs(None)
        doors = yield store.queryDoorEvents(LogQuery(limit=100_000))
        self.assertEqual(total + len(doors), 50 * 100)

    @inlineCallbacks
    def test_pageThroughUsersAndLogs(self) -> Any:
        running = yield startServer(self)
        for style in ("doc", "th900"):
            sn = f"SIMPAGE{style}"
            terminal = SimulatedTerminal(sn, users=95, logs=230, seed=3, pagingStyle=style)
            connection = self.connect(running, terminal, batchSize=1000)
            yield connection.whenRegistered()
            commands = running.context.commands
            users = yield commands.page(sn, "getuserlist")
            self.assertEqual(len({(u["enrollid"], u["backupnum"]) for u in users}), len(users))
            self.assertEqual({u["enrollid"] for u in users}, set(terminal.users))
            self.assertEqual(len(users), sum(len(u.credentials) for u in terminal.users.values()))
            pages: list[int] = []
            logs = yield commands.page(
                sn, "getalllog", {}, onPage=lambda records, pages=pages: pages.append(len(records))
            )
            self.assertEqual(len(logs), 230, style)
            self.assertEqual(sum(pages), 230)

    @inlineCallbacks
    def test_everyCommandAnswered(self) -> Any:
        running = yield startServer(self)
        terminal = SimulatedTerminal("SIMCMD", users=3, logs=0, seed=4)
        connection = self.connect(running, terminal)
        yield connection.whenRegistered()
        execute = running.context.commands.execute
        reply = yield execute("SIMCMD", buildCommand("opendoor", {"doornum": 1}))
        self.assertIs(reply.result, True)
        reply = yield execute("SIMCMD", buildCommand("getdevinfo", {}))
        self.assertIn("volume", reply.fields)
        reply = yield execute(
            "SIMCMD",
            buildCommand(
                "setuserinfo",
                {"enrollid": 77, "name": "Zoé", "backupnum": 11, "admin": 0, "record": 123456},
            ),
        )
        self.assertIs(reply.result, True)
        reply = yield execute(
            "SIMCMD", buildCommand("getuserinfo", {"enrollid": 77, "backupnum": 11})
        )
        self.assertEqual(reply.fields["record"], 123456)
        self.assertEqual(reply.fields["name"], "Zoé")
        reply = yield execute("SIMCMD", buildCommand("gettime", {}))
        self.assertIn("time", reply.fields)

    @inlineCallbacks
    def test_logPullGoesThroughTheLogQueue(self) -> Any:
        """
        The pages of a log pull are stored through the ingest service's group commit (its bound
        and backpressure apply to them, as to pushed batches), not beside it.
        """
        running = yield startServer(self)
        terminal = SimulatedTerminal("SIMPULLQ", logs=120, seed=6)
        connection = self.connect(running, terminal, batchSize=10)
        yield connection.whenAllLogsAcknowledged()
        queue = running.context.ingest.queue
        before = queue.flushes
        submitted: list[int] = []
        submit = queue.submit

        def counted(sn: str, records: Any) -> Any:
            submitted.append(len(records))
            return submit(sn, records)

        queue.submit = counted
        result = yield running.context.pulls.pullLogs("SIMPULLQ", allLogs=True)
        self.assertEqual((result.received, result.inserted), (120, 0))
        self.assertEqual(sum(submitted), 120)
        self.assertGreater(queue.flushes, before)
        self.assertEqual(queue.pendingRows, 0)

    @inlineCallbacks
    def test_pulledLogsStoredOnce(self) -> Any:
        running = yield startServer(self)
        terminal = SimulatedTerminal("SIMPULL", logs=120, seed=5)
        connection = self.connect(running, terminal, batchSize=10)
        yield connection.whenAllLogsAcknowledged()
        store = running.context.store
        before = yield store.countLogs("SIMPULL")

        def storePage(records: list[Any]) -> Any:
            from tm20.protocol.messages import CommandReply

            typed = logRecordsOf(
                CommandReply(ret="getalllog", sn="SIMPULL", result=True, fields={"record": records})
            )
            return store.addLogs("SIMPULL", list(typed))

        yield running.context.commands.page("SIMPULL", "getalllog", {}, onPage=storePage)
        self.assertEqual((yield store.countLogs("SIMPULL")), before)
