"""The command carried by a C{settled} notification (L{tm20.cluster.settled})."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from tm20.cluster.settled import (
    MAX_CARRIED,
    commandFromMessage,
    commandMessage,
    settledMessage,
)
from tm20.model import StoredCommand

COMMAND = StoredCommand(
    id=7,
    sn="AYTH0001",
    name="opendoor",
    payload={"cmd": "opendoor", "doornum": 1},
    status="succeeded",
    reply={"ret": "opendoor", "result": True},
    attempts=1,
    maxAttempts=3,
    actor="ops",
    createdAt=datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC),
    sentAt=datetime(2026, 11, 30, 12, 0, 1, tzinfo=UTC),
    finishedAt=datetime(2026, 11, 30, 12, 0, 2, tzinfo=UTC),
    expiresAt=None,
    warnings=({"field": "doornum", "detail": "ignored"},),
)


class SettledTests(SynchronousTestCase):
    def test_roundTrip(self) -> None:
        """Through JSON and back, the command is the same (times, reply, warnings)."""
        text = json.dumps(commandMessage(COMMAND))
        self.assertEqual(commandFromMessage(json.loads(text)), COMMAND)

    def test_roundTripNoReply(self) -> None:
        queued = StoredCommand(id=8, sn="AYTH0001", name="reboot", payload={}, status="queued")
        self.assertEqual(commandFromMessage(json.loads(json.dumps(commandMessage(queued)))), queued)

    def test_settledCarriesTheRow(self) -> None:
        message = settledMessage(COMMAND, True)
        self.assertEqual(
            (message["op"], message["command"], message["connected"]), ("settled", 7, True)
        )
        self.assertEqual(commandFromMessage(message["row"]), COMMAND)

    def test_tooLongNotCarried(self) -> None:
        """A command too long for a notification is left out: the waiting node reads it."""
        big = StoredCommand(
            id=9,
            sn="AYTH0001",
            name="getuserinfo",
            payload={},
            status="succeeded",
            reply={"record": "x" * MAX_CARRIED},
        )
        message = settledMessage(big, False)
        self.assertEqual(message, {"op": "settled", "command": 9, "connected": False})

    def test_notACommand(self) -> None:
        """A row that is not one (missing fields, a bad time) gives C{None}."""
        form = commandMessage(COMMAND)
        self.assertIsNone(commandFromMessage({}))
        self.assertIsNone(commandFromMessage({**form, "sentAt": "yesterday"}))
        self.assertIsNone(commandFromMessage({**form, "attempts": "many"}))
        del form["status"]
        self.assertIsNone(commandFromMessage(form))
