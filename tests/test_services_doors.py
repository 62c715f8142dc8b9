"""
The rules the doors share, called as the console would call them (no L{tm20.api} involved): on
a real server with a real SQLite store.  The REST door's translation of the same rules is
tested in tests/test_api_*.py and tests/test_fleet_persons.py.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import TestCase

from tests.serverfixture import startServer
from tm20.model import AuditEntry
from tm20.services.errors import ServiceError
from tm20.services.personadmin import PersonAdmin
from tm20.services.terminals import NotCancellable, TerminalService
from tm20.services.webhooks import WebhookService


class DoorRulesTests(TestCase):
    async def _start(self) -> Any:
        running = await startServer(self)
        self.context = running.context
        self.terminals = TerminalService(self.context)
        self.admin = PersonAdmin(self.context, self.terminals.audit)

    async def _audit(self) -> list[tuple[str, str, str | None]]:
        entries: list[AuditEntry] = await self.context.store.listAuditEntries(100, None)
        return sorted((e.actor, e.action, e.target) for e in entries)

    async def _refused(self, awaitable: Any) -> ServiceError:
        try:
            await awaitable
        except ServiceError as e:
            return e
        self.fail("not refused")

    async def test_personsAndGroupsOneWay(self) -> None:
        await self._start()
        persons, groups = self.admin.persons, self.admin.groups
        group = await self.admin.create("ann", groups, {"name": "hall"})
        self.assertEqual(group.name, "hall")
        conflict = await self._refused(self.admin.create("ann", groups, {"name": "hall"}))
        self.assertEqual(
            (conflict.status, conflict.code, conflict.field), (409, "conflict", "name")
        )
        person = await self.admin.create(
            "ann",
            persons,
            {"enrollid": 7, "name": "Bo", "groups": ["hall"], "credentials": []},
        )
        self.assertEqual((person.enrollid, person.groups), (7, ("hall",)))
        unknown = await self._refused(
            self.admin.create("ann", persons, {"enrollid": 8, "groups": ["nowhere"]})
        )
        self.assertEqual((unknown.status, unknown.field), (400, "groups[0]"))
        updated = await self.admin.update("bob", persons, 7, {"name": "Bo B."})
        self.assertEqual(updated.name, "Bo B.")
        for kind, key in ((persons, 99), (groups, "nope")):
            for change in (
                self.admin.get(kind, key),
                self.admin.update("bob", kind, key, {}),
                self.admin.delete("bob", kind, key),
            ):
                missing = await self._refused(change)
                self.assertEqual((missing.status, missing.code), (404, "not_found"))
        await self.admin.delete("bob", persons, 7)
        await self.admin.delete("bob", groups, "hall")
        self.assertEqual(
            await self._audit(),
            [
                ("ann", "group.create", "hall"),
                ("ann", "person.create", "7"),
                ("bob", "group.delete", "hall"),
                ("bob", "person.delete", "7"),
                ("bob", "person.update", "7"),
            ],
        )

    async def test_terminalCreateDeleteCancel(self) -> None:
        await self._start()
        bad = await self._refused(
            self.terminals.create("ann", "bad sn!", None, True, None, True, {})
        )
        self.assertEqual((bad.status, bad.field), (400, "sn"))
        zone = await self._refused(
            self.terminals.create("ann", "AYTH0001", None, True, "Mars/Base", True, {})
        )
        self.assertEqual((zone.status, zone.field), (400, "timezone"))
        terminal = await self.terminals.create("ann", "AYTH0001", "Door", True, None, False, {})
        self.assertEqual((terminal.name, terminal.active), ("Door", False))
        again = await self._refused(
            self.terminals.create("ann", "AYTH0001", None, True, None, True, {})
        )
        self.assertEqual(again.status, 409)
        queued = await self.context.store.enqueueCommand("AYTH0001", "getuserlist", {}, "ann", 3)
        cancelled = await self.terminals.cancelCommand("bob", queued.id)
        self.assertEqual(cancelled.status, "cancelled")
        twice = await self._refused(self.terminals.cancelCommand("bob", queued.id))
        self.assertIsInstance(twice, NotCancellable)
        self.assertEqual((twice.status, twice.code), (409, "not_cancellable"))
        self.assertIn("was already cancelled", twice.detail)
        unknown = await self._refused(self.terminals.cancelCommand("bob", 999))
        self.assertEqual(unknown.status, 404)
        await self.terminals.delete("bob", "AYTH0001")
        self.assertIsNone(await self.context.store.getTerminal("AYTH0001"))
        gone = await self._refused(self.terminals.delete("bob", "AYTH0001"))
        self.assertEqual(gone.status, 404)
        self.assertEqual(
            await self._audit(),
            [
                ("ann", "terminal.create", "AYTH0001"),
                ("bob", "command.cancel", "AYTH0001"),
                ("bob", "terminal.delete", "AYTH0001"),
            ],
        )

    async def test_webhooks(self) -> None:
        await self._start()
        service = WebhookService(self.context, self.terminals.audit)
        url = "http://127.0.0.1:9/hook"
        badType = await self._refused(service.create("ann", {"url": url, "types": ["x.nope"]}))
        self.assertEqual((badType.status, badType.field), (400, "types[0]"))
        badSecret = await self._refused(service.create("ann", {"url": url, "secret": "short"}))
        self.assertEqual((badSecret.status, badSecret.field), (400, "secret"))
        webhook = await service.create("ann", {"url": url, "secret": None, "types": ["log.*"]})
        self.assertEqual(webhook.types, ("log.*",))
        changed = await service.update("bob", webhook.id, {"description": "payroll"})
        self.assertEqual(changed.description, "payroll")
        await service.delete("bob", webhook.id)
        self.assertEqual((await self._refused(service.get(webhook.id))).status, 404)
        self.assertEqual(
            await self._audit(),
            [
                ("ann", "webhook.create", url),
                ("bob", "webhook.delete", str(webhook.id)),
                ("bob", "webhook.update", str(webhook.id)),
            ],
        )
