"""
Tests for the pure helpers of L{tm20.store._ops} (building statements).  The drivers themselves
run in the store contract (C{test_op*} in L{tests.storecontract}), on both real databases.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tm20.store._ops import _sqliteMarkers, inList, whereAll


class WhereAllTests(SynchronousTestCase):
    def test_keepsConditionsWithAValue(self) -> None:
        """Conditions whose value is C{None} are left out; the others are joined by C{AND}."""
        self.assertEqual(
            whereAll([("sn = %s", "A"), ("id < %s", None), ("enrollid > %s", 0)]),
            (" WHERE sn = %s AND enrollid > %s", ("A", 0)),
        )

    def test_none(self) -> None:
        """No condition with a value: no C{WHERE} at all."""
        self.assertEqual(whereAll([("sn = %s", None)]), ("", ()))
        self.assertEqual(whereAll([]), ("", ()))


class InListTests(SynchronousTestCase):
    def test_markers(self) -> None:
        """One marker per value."""
        self.assertEqual(inList(["a", "b", "c"]), ("(%s, %s, %s)", ("a", "b", "c")))

    def test_empty(self) -> None:
        """C{IN ()} is not SQL: an empty list is refused."""
        self.assertRaises(ValueError, inList, [])


class SQLiteMarkersTests(SynchronousTestCase):
    def test_positionalAndNamed(self) -> None:
        """C{%s} becomes C{?}, C{%(name)s} becomes C{:name}."""
        self.assertEqual(_sqliteMarkers("a = %s AND b = %s"), "a = ? AND b = ?")
        self.assertEqual(
            _sqliteMarkers("a = %(sn)s OR b = COALESCE(%(sn)s, %(x_1)s)"),
            "a = :sn OR b = COALESCE(:sn, :x_1)",
        )
