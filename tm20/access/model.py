"""
The values of access control: rules with weekly windows, holidays, visitor codes, per-group
settings, and the decision taken at a door.  Plain immutable values; nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime

import attrs

#: Reasons recorded with a decision (C{access_reason}).
REASON_RULE = "rule"  # granted by a rule, or no rule covers this person at this door
REASON_WINDOW = "window"  # rules cover the person here, but not at this time
REASON_HOLIDAY = "holiday"  # the matching window falls on a holiday the rule does not cover
REASON_DISABLED = "disabled"  # the person is disabled: never passes
REASON_EXPIRED = "expired"  # outside the person's validity window
REASON_UNKNOWN = "unknown"  # no such person (denied unless the door's group allows unknowns)
REASON_BACKLOG = "backlog"  # not real time (an old record): never grants
REASON_POLICY = "policy"  # an IAccessPolicy plugin denied
REASON_FALLBACK = "fallback"  # the decision could not be committed (or a policy failed) in time
REASON_QR_VALID = "qr_valid"
REASON_QR_UNKNOWN = "qr_unknown"
REASON_QR_EXPIRED = "qr_expired"  # outside the code's validity (not yet valid, or expired)
REASON_QR_USED = "qr_used"  # single-use code already used
REASON_QR_REVOKED = "qr_revoked"
REASON_QR_DOOR = "qr_door"  # the code is not valid at this door

REASONS = (
    REASON_RULE,
    REASON_WINDOW,
    REASON_HOLIDAY,
    REASON_DISABLED,
    REASON_EXPIRED,
    REASON_UNKNOWN,
    REASON_BACKLOG,
    REASON_POLICY,
    REASON_FALLBACK,
    REASON_QR_VALID,
    REASON_QR_UNKNOWN,
    REASON_QR_EXPIRED,
    REASON_QR_USED,
    REASON_QR_REVOKED,
    REASON_QR_DOOR,
)

#: Day names of weekly windows, Monday first (C{datetime.weekday()} order).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Per-group settings for what no person / no code matches.
UNKNOWN_DENY = "deny"
UNKNOWN_ALLOW = "allow"


@attrs.frozen
class Window:
    """
    A weekly time window in the terminal's own time zone: on C{days} from C{start} (inclusive)
    to C{end} (exclusive), C{HH:MM}; C{end} may be C{24:00}.  When C{end <= start} the window
    runs past midnight into the next day.
    """

    days: tuple[str, ...]
    start: str
    end: str


@attrs.frozen
class AccessRule:
    """
    Who (C{persons}: enrollids; C{personGroups}: persons assigned to these terminal groups) may
    pass which doors (C{terminals}; C{terminalGroups}) when (C{windows}; none: at any time).
    On a holiday of the door the rule grants only if C{holidays} is true.
    """

    id: int
    description: str | None = None
    persons: tuple[int, ...] = ()
    personGroups: tuple[str, ...] = ()
    terminals: tuple[str, ...] = ()
    terminalGroups: tuple[str, ...] = ()
    windows: tuple[Window, ...] = ()
    holidays: bool = False
    createdAt: datetime | None = None
    updatedAt: datetime | None = None


@attrs.frozen
class Holiday:
    """Days (C{YYYY-MM-DD}, inclusive, terminal-local) closed to rules without C{holidays}."""

    id: int
    name: str
    start: str
    end: str
    #: the doors concerned (none: every terminal)
    terminalGroups: tuple[str, ...] = ()
    createdAt: datetime | None = None


@attrs.frozen
class QrCode:
    """
    A code a terminal reads (C{sendqrcode}, or typed: C{sendpin}) for a person (C{enrollid})
    or a visitor (C{visitorName}), valid from C{validFrom} until C{validUntil} (aware UTC) at
    C{terminals} / C{terminalGroups}; C{singleUse} codes pass once (C{usedAt}, C{usedSn}).
    """

    id: int
    #: the sha256 (hex) of the code's text: the text itself is shown once, at creation
    codeHash: str
    enrollid: int | None = None
    visitorName: str | None = None
    validFrom: datetime | None = None
    validUntil: datetime | None = None
    terminals: tuple[str, ...] = ()
    terminalGroups: tuple[str, ...] = ()
    singleUse: bool = False
    usedAt: datetime | None = None
    usedSn: str | None = None
    revokedAt: datetime | None = None
    createdAt: datetime | None = None


@attrs.frozen
class GroupAccess:
    """What the doors of terminal group C{group} do with an unknown enrollid or code."""

    group: str
    unknownEnrollid: str = UNKNOWN_DENY
    unknownCode: str = UNKNOWN_DENY
    updatedAt: datetime | None = None


@attrs.frozen
class PersonAccess:
    """What a decision needs of a fleet person (kept in the snapshot)."""

    enrollid: int
    name: str | None = None
    enabled: bool = True
    validFrom: str | None = None
    validUntil: str | None = None
    groups: tuple[str, ...] = ()
    #: terminals it is assigned to directly (besides its groups' terminals)
    terminals: tuple[str, ...] = ()


@attrs.frozen
class Decision:
    """
    The answer at a door.

    @ivar consume: a single-use code to mark used in the same transaction as the record.
    """

    granted: bool
    reason: str
    enrollid: int | None = None
    name: str | None = None
    ruleId: int | None = None
    qrcodeId: int | None = None
    consume: bool = False

    def denied(self, reason: str) -> Decision:
        """This decision turned into a denial for C{reason}."""
        return attrs.evolve(self, granted=False, reason=reason, consume=False)


@attrs.frozen
class AccessRequest:
    """What a policy (L{tm20.interfaces.IAccessPolicy}) is asked about."""

    sn: str
    kind: str
    enrollid: int | None
    qrcodeId: int | None
    decision: Decision
    localTime: str


__all__ = [
    "AccessRequest",
    "DAYS",
    "REASONS",
    "UNKNOWN_ALLOW",
    "UNKNOWN_DENY",
    "AccessRule",
    "Decision",
    "GroupAccess",
    "Holiday",
    "PersonAccess",
    "QrCode",
    "Window",
]
