"""The expiry of queued commands: defaults by kind, and commands stored before expiries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twisted.trial.unittest import SynchronousTestCase

from tm20.model import StoredCommand
from tm20.protocol.commands import COMMANDS
from tm20.services import expiry
from tm20.services.expiry import defaultExpiry, expiryOf

T = datetime(2026, 4, 30, 11, 59, 37, tzinfo=UTC)


def _command(name: str, expiresAt: datetime | None) -> StoredCommand:
    return StoredCommand(
        id=1, sn="S", name=name, payload={}, status="queued", createdAt=T, expiresAt=expiresAt
    )


class ExpiryTests(SynchronousTestCase):
    def test_theDefaultsNameRealCommands(self) -> None:
        """Every name in the short and erasing lists is a command (a typo would make it a week)."""
        for name in expiry._SHORT_LIVED | expiry._ERASING:
            assert name in COMMANDS, name

    def test_defaultsByKind(self) -> None:
        assert defaultExpiry("opendoor") == defaultExpiry("reboot") == 60
        assert defaultExpiry("cleanlog") == defaultExpiry("initsys") == 3600
        assert defaultExpiry("setuserinfo") == defaultExpiry("setdevlock") == 7 * 86400
        assert defaultExpiry("getnewlog") == 7 * 86400
        # every command without an explicit erase/momentary kind lives a week; none lives longer
        assert max(defaultExpiry(name) for name in COMMANDS) <= expiry.MAX_EXPIRY

    def test_expiryOfAStoredCommand(self) -> None:
        assert expiryOf(_command("opendoor", T + timedelta(hours=2))) == T + timedelta(hours=2)

    def test_commandsStoredBeforeExpiriesGetTheDefaultOfTheirKind(self) -> None:
        """An opendoor queued before the upgrade (no expires_at) expires 60 s after its creation."""
        assert expiryOf(_command("opendoor", None)) == T + timedelta(seconds=60)
        assert expiryOf(_command("setuserinfo", None)) == T + timedelta(days=7)
