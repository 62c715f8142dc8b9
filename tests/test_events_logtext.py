"""
The hot-path builder of log events (L{logEventText}) writes exactly the text the stores wrote
from L{logEvent}'s payload, and L{localToUTC}'s fast path agrees with C{strptime}.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tm20.events.payloads import localToUTC, logEvent, logEventText
from tm20.store._rows import dumpJSON

_ZONES = st.sampled_from(
    [None, "UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Not/AZone"]
)
_TIMES = st.one_of(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S")
    ),
    st.sampled_from(
        [
            "2026-03-29 02:30:00",  # does not exist in Paris
            "2026-10-25 02:30:00",  # exists twice in Paris
            "2026-2-3 4:05:06",  # not canonical: strptime reads it
            "2026-02-30 10:00:00",  # no such day
            "2026-01-01T10:00:00",
            "2026-01-01 10:0000.1",
            "garbage",
            "",
        ]
    ),
)
_TEXT = st.text(max_size=12)
_EXTRA = st.dictionaries(
    st.text(max_size=6),
    st.one_of(st.integers(-5, 5), st.text(max_size=6), st.floats(allow_nan=False), st.none()),
    max_size=3,
)


def _slowLocalToUTC(time: str, timezone: str | None) -> str | None:
    try:
        local = datetime.strptime(time, "%Y-%m-%d %H:%M:%S")
        aware = local.astimezone() if timezone is None else local.replace(tzinfo=ZoneInfo(timezone))
    except Exception:
        return None
    return aware.astimezone(UTC).isoformat()


class LogEventTextTests(SynchronousTestCase):
    @settings(max_examples=400, deadline=None)
    @given(
        sn=_TEXT,
        logId=st.integers(1, 2**40),
        enrollid=st.integers(0, 10**9),
        time=_TIMES,
        mode=st.integers(0, 255),
        inout=st.integers(0, 255),
        event=st.integers(0, 255),
        temp=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
        verifymode=st.one_of(st.none(), st.integers(0, 255)),
        image=st.one_of(st.none(), st.just("base64data")),
        extra=_EXTRA,
        receivedAt=_TEXT,
        timezone=_ZONES,
    )
    def test_sameTextAsThePayload(
        self,
        sn: str,
        logId: int,
        enrollid: int,
        time: str,
        mode: int,
        inout: int,
        event: int,
        temp: float | None,
        verifymode: int | None,
        image: str | None,
        extra: dict[str, object],
        receivedAt: str,
        timezone: str | None,
    ) -> None:
        record = {
            "enrollid": enrollid,
            "time": time,
            "mode": mode,
            "inout": inout,
            "event": event,
            "temp": temp,
            "verifymode": verifymode,
            "image": image,
            "extra": extra,
        }
        expected = logEvent(sn, logId, record, receivedAt, timezone)
        kind, text = logEventText(
            sn,
            logId,
            enrollid,
            time,
            mode,
            inout,
            event,
            temp,
            verifymode,
            image is not None,
            dumpJSON(extra),
            receivedAt,
            timezone,
        )
        self.assertEqual(kind, expected.type)
        self.assertEqual(text, dumpJSON(expected.payload))
        self.assertEqual(json.loads(text), json.loads(dumpJSON(expected.payload)))

    @settings(max_examples=400, deadline=None)
    @given(time=_TIMES, timezone=_ZONES)
    def test_fastPathAgreesWithStrptime(self, time: str, timezone: str | None) -> None:
        self.assertEqual(localToUTC(time, timezone), _slowLocalToUTC(time, timezone))

    def test_ambiguousAndMissingTimes(self) -> None:
        # fold=0: the first of a repeated hour, the offset before a skipped one
        self.assertEqual(
            localToUTC("2026-10-25 02:30:00", "Europe/Paris"), "2026-10-25T00:30:00+00:00"
        )
        self.assertEqual(
            localToUTC("2026-03-29 02:30:00", "Europe/Paris"), "2026-03-29T01:30:00+00:00"
        )

    def test_hourShortcutAcrossTransitions(self) -> None:
        """
        The remembered offset of an hour (L{localToUTC}'s shortcut) gives what C{strptime}
        gives for every minute of the days around DST transitions, the half-hour one of Lord
        Howe and St John's at one minute past midnight included, read in any order (the hours of a transition are never remembered).
        """
        days = {
            "Europe/Paris": ["2026-03-28", "2026-03-29", "2026-10-25", "2026-10-26"],
            "America/New_York": ["2026-03-08", "2026-11-01"],
            "Australia/Lord_Howe": ["2026-04-05", "2026-10-04"],
            # transitions at 00:01 local, inside an hour
            "America/St_Johns": ["2006-04-02", "2006-10-29"],
        }
        for timezone, dates in days.items():
            for date in dates:
                times = [
                    f"{date} {h:02d}:{m:02d}:{s:02d}"
                    for h in range(24)
                    for m in range(60)
                    for s in (0, 59)
                ]
                for time in times + list(reversed(times)):
                    self.assertEqual(
                        localToUTC(time, timezone),
                        _slowLocalToUTC(time, timezone),
                        (time, timezone),
                    )

    def test_wholeHourShortcutAcrossDays(self) -> None:
        """
        The remembered UTC text of an hour (zones whose offset is whole hours) gives what
        C{strptime} gives for every minute of hours whose UTC day, month or year is another,
        east and west of UTC; zones with a half- or quarter-hour offset (Kolkata, Kathmandu,
        Chatham, St John's) give the same through the subtraction.
        """
        zones = [
            None,
            "UTC",
            "Europe/Paris",
            "America/New_York",
            "Pacific/Kiritimati",
            "Pacific/Pago_Pago",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Pacific/Chatham",
            "America/St_Johns",
        ]
        hours = [
            "2025-12-31 23",
            "2026-01-01 00",
            "2026-02-28 22",
            "2024-02-29 01",
            "2026-07-01 02",
        ]
        for timezone in zones:
            for hour in hours:
                for m in range(60):
                    for s in (0, 7, 59):
                        time = f"{hour}:{m:02d}:{s:02d}"
                        self.assertEqual(
                            localToUTC(time, timezone),
                            _slowLocalToUTC(time, timezone),
                            (time, timezone),
                        )

    def test_invalidMinuteOrSecondOfARememberedHour(self) -> None:
        """
        Once an hour's UTC text is remembered, a time of that hour with an impossible minute or
        second is still refused (C{None}), as C{strptime} refuses it.
        """
        for timezone in ("Europe/Paris", "Asia/Kolkata", None):
            self.assertIsNotNone(localToUTC("2026-01-15 10:00:00", timezone))
            for tail in (":60:00", ":00:60", ":00:61", ":5a:00", ":-1:00", ": 1:00", ":0 :00"):
                time = "2026-01-15 10" + tail
                self.assertIsNone(localToUTC(time, timezone), (time, timezone))
                self.assertIsNone(_slowLocalToUTC(time, timezone), (time, timezone))
