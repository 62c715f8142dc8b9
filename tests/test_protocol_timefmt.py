"""Tests for L{tm20.protocol.timefmt}."""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from tm20.protocol.timefmt import (
    cloudTime,
    formatTime,
    isValidDate,
    normaliseDate,
    normaliseMonthDay,
    normaliseTime,
    parseDate,
    parseTime,
)

# 2016-03-25 13:49:30 UTC
_POSIX = datetime(2016, 3, 25, 13, 49, 30, tzinfo=UTC).timestamp()


class TimeTests(SynchronousTestCase):
    def test_normalisePadded(self) -> None:
        assert normaliseTime("2016-03-25 13:49:30") == "2016-03-25 13:49:30"

    def test_normaliseUnpadded(self) -> None:
        assert normaliseTime("2018-11-1 8:5:3") == "2018-11-01 08:05:03"

    def test_normaliseExtraSpaces(self) -> None:
        assert normaliseTime("  2018-11-01   08:05:03 ") == "2018-11-01 08:05:03"

    def test_invalid(self) -> None:
        for bad in [
            "2016-03-25T13:49:30",
            "2016-03-25T13:49:30Z",
            "2016-13-01 00:00:00",
            "2016-02-30 00:00:00",
            "2016-03-25 24:00:00",
            "2016-03-25 13:60:00",
            "2016-03-25",
            "",
            "2016-03-25 13:49:30.123",
            "２０１６-03-25 13:49:30",
        ]:
            with self.assertRaises(ValueError):
                normaliseTime(bad)

    def test_canonicalReturnedAsIs(self) -> None:
        """The usual canonical value takes the fast path: the very same string comes back."""
        for value in [
            "2016-03-25 13:49:30",
            "2024-02-28 23:59:59",
            "0001-01-01 00:00:00",
            "9999-12-28 23:59:59",
        ]:
            assert normaliseTime(value) is value

    def test_lateDaysOfTheMonth(self) -> None:
        for value, expected in [
            ("2024-02-29 00:00:00", "2024-02-29 00:00:00"),  # leap day: checked by the calendar
            ("2024-01-31 12:00:00", "2024-01-31 12:00:00"),
            ("2024-04-30 12:00:00", "2024-04-30 12:00:00"),
            ("2024-01-01 23:59:59\n", "2024-01-01 23:59:59"),  # trailing space dropped
        ]:
            assert normaliseTime(value) == expected

    def test_canonicalLookingButInvalid(self) -> None:
        for bad in [
            "2023-02-29 00:00:00",
            "2024-04-31 00:00:00",
            "0000-01-01 00:00:00",
            "2024-00-01 00:00:00",
            "2024-01-00 00:00:00",
            "2024-01-01 23:59:60",
        ]:
            with self.assertRaises(ValueError):
                normaliseTime(bad)

    def test_notAString(self) -> None:
        for bad in [None, 20160325, 1.5, b"2016-03-25 13:49:30"]:
            with self.assertRaises(ValueError):
                normaliseTime(bad)  # type: ignore[arg-type]

    def test_parseTimeIsNaive(self) -> None:
        assert parseTime("2018-11-1 8:5:3") == datetime(2018, 11, 1, 8, 5, 3)

    def test_formatTimeDropsMicrosecondsAndZone(self) -> None:
        dt = datetime(2016, 3, 5, 1, 2, 3, 999999, tzinfo=UTC)
        assert formatTime(dt) == "2016-03-05 01:02:03"

    def test_formatTimeSmallYear(self) -> None:
        assert formatTime(datetime(999, 1, 1)) == "0999-01-01 00:00:00"


class DateTests(SynchronousTestCase):
    def test_unpadded(self) -> None:
        assert normaliseDate("2018-11-1") == "2018-11-01"
        assert parseDate("2018-12-30").day == 30

    def test_valid(self) -> None:
        for good in ["2018-11-1", "2000-01-01", "2045-01-01"]:
            assert isValidDate(good)

    def test_invalid(self) -> None:
        for bad in ["2018-11-31", "2018-11-01 00:00:00", "18-11-01", "", None, 20181101]:
            assert not isValidDate(bad)

    def test_monthDay(self) -> None:
        assert normaliseMonthDay("2-29") == "02-29"
        with self.assertRaises(ValueError):
            normaliseMonthDay("02-30")
        with self.assertRaises(ValueError):
            normaliseMonthDay("13-01")


class CloudTimeTests(SynchronousTestCase):
    def test_zone(self) -> None:
        assert cloudTime(_POSIX, "Europe/Paris") == "2016-03-25 14:49:30"

    def test_zoneDaylightSaving(self) -> None:
        summer = datetime(2016, 7, 1, 12, 0, 0, tzinfo=UTC).timestamp()
        assert cloudTime(summer, "Europe/Paris") == "2016-07-01 14:00:00"

    def test_utc(self) -> None:
        assert cloudTime(_POSIX + 0.9, "UTC") == "2016-03-25 13:49:30"

    def test_serverLocal(self) -> None:
        expected = datetime.fromtimestamp(_POSIX).strftime("%Y-%m-%d %H:%M:%S")
        assert cloudTime(_POSIX, None) == expected

    def test_unknownZone(self) -> None:
        for bad in ["Mars/Olympus", "", "../etc/passwd", "Europe"]:
            with self.assertRaises(ValueError):
                cloudTime(_POSIX, bad)
