"""Sessions by sn: the newest connection wins, a stale close does not unregister it."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tm20.interfaces import ITerminalRegistry
from tm20.terminal.registry import TerminalRegistry


class RegistryTests(SynchronousTestCase):
    def test_interface(self) -> None:
        verifyObject(ITerminalRegistry, TerminalRegistry())

    def test_newestWins(self) -> None:
        r = TerminalRegistry()
        old, new = object(), object()
        self.assertIsNone(r.bind("S1", old))
        self.assertIs(r.bind("S1", new), old)
        r.unbind("S1", old)  # the stale socket's close arrives late
        self.assertIs(r.get("S1"), new)
        self.assertEqual(r.connected(), ["S1"])
        r.unbind("S1", new)
        self.assertIsNone(r.get("S1"))
        self.assertEqual(r.connected(), [])

    def test_rebindSameSession(self) -> None:
        r = TerminalRegistry()
        s = object()
        r.bind("S1", s)
        self.assertIsNone(r.bind("S1", s))

    def test_tracksUnregistered(self) -> None:
        r = TerminalRegistry()
        a, b = object(), object()
        r.track(a)
        r.track(b)
        r.bind("S1", a)
        self.assertEqual(set(r.sessions()), {a, b})
        r.untrack(a)
        self.assertEqual(r.sessions(), [b])

    def test_oneSessionOneSn(self) -> None:
        r = TerminalRegistry()
        s = object()
        r.track(s)
        r.bind("A", s)
        with self.assertRaises(ValueError):
            r.bind("B", s)
        self.assertEqual(r.connected(), ["A"])
        self.assertIsNone(r.get("B"))

    def test_closedSessionIsForgottenWithItsSn(self) -> None:
        r = TerminalRegistry()
        s = object()
        r.track(s)
        r.bind("A", s)
        r.untrack(s)  # its socket closed
        self.assertEqual((r.connected(), len(r)), ([], 0))

    def test_replacedSessionClosingLeavesTheNewOne(self) -> None:
        r = TerminalRegistry()
        old, new = object(), object()
        r.track(old)
        r.track(new)
        r.bind("A", old)
        self.assertIs(r.bind("A", new), old)
        r.untrack(old)  # the replaced socket's close arrives: A stays with the new one
        self.assertIs(r.get("A"), new)
        r.untrack(new)
        self.assertEqual(r.connected(), [])
