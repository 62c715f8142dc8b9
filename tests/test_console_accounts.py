"""
Console accounts and sessions (L{tm20.services.accounts} over L{tm20.store._accountsql}) on a
real SQLite file and a real PostgreSQL database: the same operations, written once.  Time is a
C{Clock}, so idle expiry is exact; argon2 runs with cheap parameters (still real hashing).
"""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from io import StringIO
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tm20 import admin
from tm20.model import ConsoleSession
from tm20.services.accounts import AccountService, roleAllows, sessionHash
from tm20.services.errors import ServiceError
from tm20.store.postgres import PostgresStore
from tm20.store.sqlite import SQLiteStore

from . import pgharness

T0 = 1_800_000_000.0
PASSWORD = "correct horse battery"


def cheapHasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class _AccountContract:
    """Mixed into a trial TestCase whose C{openStore} gives a started store."""

    store: Any
    clock: Clock
    accounts: AccountService

    def openStore(self) -> Deferred[Any]:
        raise NotImplementedError

    @inlineCallbacks
    def setUp(self) -> Generator[Deferred[Any], Any, None]:
        self.clock = Clock()
        self.clock.advance(T0)
        self.store = yield self.openStore()
        self.accounts = AccountService(
            self.store, self.clock, idleTimeout=600, hasher=cheapHasher(), inThread=maybeDeferred
        )

    @inlineCallbacks
    def test_createListAndDuplicate(self) -> Generator[Deferred[Any], Any, None]:
        test: TestCase = self  # type: ignore[assignment]
        created = yield self.accounts.create("alice", "operator", PASSWORD)
        test.assertEqual(
            (created.name, created.role, created.disabled), ("alice", "operator", False)
        )
        test.assertNotIn(PASSWORD, created.passwordHash)
        test.assertTrue(created.passwordHash.startswith("$argon2id$"))
        yield self.accounts.create("bob", "viewer", PASSWORD)
        listed = yield self.accounts.list()
        test.assertEqual(
            [(a.name, a.role) for a in listed], [("alice", "operator"), ("bob", "viewer")]
        )
        with test.assertRaises(ServiceError) as raised:
            yield self.accounts.create("alice", "admin", PASSWORD)
        test.assertEqual((raised.exception.status, raised.exception.code), (409, "conflict"))

    @inlineCallbacks
    def test_rulesNameRolePassword(self) -> Generator[Deferred[Any], Any, None]:
        test: TestCase = self  # type: ignore[assignment]
        for name, role, password, field in (
            ("", "viewer", PASSWORD, "name"),
            ("al ice", "viewer", PASSWORD, "name"),
            ("alice", "root", PASSWORD, "role"),
            ("alice", "viewer", "short", "password"),
        ):
            with test.assertRaises(ServiceError) as raised:
                yield self.accounts.create(name, role, password)
            test.assertEqual((raised.exception.status, raised.exception.field), (400, field))
        test.assertEqual((yield self.accounts.list()), [])

    @inlineCallbacks
    def test_loginSessionAndIdleExpiry(self) -> Generator[Deferred[Any], Any, None]:
        test: TestCase = self  # type: ignore[assignment]
        yield self.accounts.create("alice", "admin", PASSWORD)
        test.assertIsNone((yield self.accounts.login("alice", "wrong password!")))
        test.assertIsNone((yield self.accounts.login("nobody", PASSWORD)))
        who = yield self.accounts.login("alice", PASSWORD)
        test.assertIsNotNone(who.token)
        test.assertEqual(who.actor, "console:alice")
        # only the token's hash is stored
        test.assertEqual(who.session.tokenHash, sessionHash(who.token))
        # used within the idle time: alive, and its idle clock restarts
        self.clock.advance(599)
        found = yield self.accounts.session(who.token)
        test.assertEqual(found.account.name, "alice")
        test.assertEqual(found.session.csrf, who.session.csrf)
        self.clock.advance(599)
        test.assertIsNotNone((yield self.accounts.session(who.token)))
        # unused longer than the idle time: gone for good
        self.clock.advance(601)
        test.assertIsNone((yield self.accounts.session(who.token)))
        self.clock.advance(-700)  # even if the clock came back
        test.assertIsNone((yield self.accounts.session(who.token)))
        test.assertIsNone((yield self.accounts.session("")))
        test.assertIsNone((yield self.accounts.session("not-a-session")))

    @inlineCallbacks
    def test_logoutPasswdDisableEndSessions(self) -> Generator[Deferred[Any], Any, None]:
        test: TestCase = self  # type: ignore[assignment]
        yield self.accounts.create("alice", "operator", PASSWORD)
        first = yield self.accounts.login("alice", PASSWORD)
        yield self.accounts.logout(first.token)
        test.assertIsNone((yield self.accounts.session(first.token)))

        second = yield self.accounts.login("alice", PASSWORD)
        yield self.accounts.setPassword("alice", "another long password")
        test.assertIsNone((yield self.accounts.session(second.token)))
        test.assertIsNone((yield self.accounts.login("alice", PASSWORD)))

        third = yield self.accounts.login("alice", "another long password")
        yield self.accounts.setDisabled("alice", True)
        test.assertIsNone((yield self.accounts.session(third.token)))
        test.assertIsNone((yield self.accounts.login("alice", "another long password")))
        yield self.accounts.setDisabled("alice", False)
        test.assertIsNotNone((yield self.accounts.login("alice", "another long password")))

        with test.assertRaises(ServiceError) as raised:
            yield self.accounts.setPassword("nobody", "another long password")
        test.assertEqual(raised.exception.status, 404)

    @inlineCallbacks
    def test_sessionOfUnknownAccountRefused(self) -> Generator[Deferred[Any], Any, None]:
        test: TestCase = self  # type: ignore[assignment]
        with test.assertRaises(ValueError):
            yield self.store.createSession(ConsoleSession("h", "ghost", "c", T0, T0))

    def test_roles(self) -> None:
        test: TestCase = self  # type: ignore[assignment]
        test.assertTrue(roleAllows("admin", "operator"))
        test.assertTrue(roleAllows("operator", "viewer"))
        test.assertFalse(roleAllows("viewer", "operator"))
        test.assertFalse(roleAllows("operator", "admin"))
        test.assertFalse(roleAllows("root", "viewer"))


class SQLiteAccountTests(_AccountContract, TestCase):
    path: Path | None = None

    def openStore(self) -> Deferred[Any]:
        if self.path is None:
            self.path = Path(tempfile.mkdtemp(prefix="tm20-accounts-")) / "db.sqlite3"
        store = SQLiteStore(str(self.path), reactor=reactor)
        self.addCleanup(store.stop)
        return store.start().addCallback(lambda _: store)

    @inlineCallbacks
    def test_sessionsSurviveARestart(self) -> Generator[Deferred[Any], Any, None]:
        yield self.accounts.create("alice", "viewer", PASSWORD)
        who = yield self.accounts.login("alice", PASSWORD)
        yield self.store.stop()
        reopened = yield self.openStore()
        accounts = AccountService(
            reopened, self.clock, idleTimeout=600, hasher=cheapHasher(), inThread=maybeDeferred
        )
        found = yield accounts.session(who.token)
        self.assertEqual((found.account.name, found.session.csrf), ("alice", who.session.csrf))


class PostgresAccountTests(_AccountContract, TestCase):
    def openStore(self) -> Deferred[Any]:
        url = pgharness.createDatabase("tm20_accounts")
        self.addCleanup(pgharness.dropDatabase, url)
        store = PostgresStore(url, reactor=reactor)
        self.addCleanup(store.stop)
        return store.start().addCallback(lambda _: store)


class AdminUserCommandTests(TestCase):
    """C{tm20-admin user ...} on a real SQLite file."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tm20-admin-user-"))
        self.database = f"sqlite:{self.dir / 'db.sqlite3'}"
        (self.dir / "pw").write_text("a long enough password\nignored\n")

    def run_(self, *argv: str, prompt: Any = None) -> Deferred[tuple[int, str, str]]:
        out, err = StringIO(), StringIO()
        d = admin.run(reactor, [*argv, "--database", self.database], out, err, {}, prompt=prompt)
        return d.addCallback(lambda code: (code, out.getvalue(), err.getvalue()))

    @inlineCallbacks
    def test_createListPasswdDisable(self) -> Generator[Deferred[Any], Any, None]:
        code, out, err = yield self.run_(
            "user", "create", "alice", "--role", "operator", "--password-file", str(self.dir / "pw")
        )
        self.assertEqual((code, err), (0, ""))
        self.assertIn("alice", out)
        code, out, _ = yield self.run_("user", "list")
        self.assertEqual(code, 0)
        self.assertRegex(out, r"alice\toperator\tenabled\t")
        answers = iter(["a new long password", "a new long password"])
        code, out, err = yield self.run_("user", "passwd", "alice", prompt=lambda _: next(answers))
        self.assertEqual((code, err), (0, ""))
        code, _, _ = yield self.run_("user", "disable", "alice")
        self.assertEqual(code, 0)
        code, out, _ = yield self.run_("user", "list")
        self.assertRegex(out, r"alice\toperator\tdisabled\t")

    @inlineCallbacks
    def test_refusals(self) -> Generator[Deferred[Any], Any, None]:
        code, _, err = yield self.run_(
            "user", "create", "bob", "--role", "root", "--password-file", str(self.dir / "pw")
        )
        self.assertEqual(code, admin.EXIT_USAGE)
        self.assertIn("--role", err)
        answers = iter(["a long enough password", "a different password"])
        code, _, err = yield self.run_(
            "user", "create", "bob", "--role", "viewer", prompt=lambda _: next(answers)
        )
        self.assertEqual(code, admin.EXIT_USAGE)
        self.assertIn("differ", err)
        answers = iter(["short", "short"])
        code, _, err = yield self.run_(
            "user", "create", "bob", "--role", "viewer", prompt=lambda _: next(answers)
        )
        self.assertEqual(code, admin.EXIT_FAILED)
        self.assertIn("at least", err)
        code, _, err = yield self.run_("user", "disable", "nobody")
        self.assertEqual(code, admin.EXIT_FAILED)
        self.assertIn("no account", err)
