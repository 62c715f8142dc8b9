"""
Terminal identity: the hardware a serial number is bound to, and its optional secret.

The protocol has no authentication: a terminal is whoever says C{"sn": ...} in C{reg}.  Two
things make a claim harder to forge:

  - I{binding}: an approved terminal is bound to the C{cpusn} and C{mac} it first registered
    with (the C{mac} alone for firmwares that send no C{cpusn}, such as the TH900).  A later
    connection that claims the same C{sn} with other hardware (either value differing) is
    refused and the terminal is flagged, with what was claimed, for an operator to look at
    (and to reset, L{IStore.resetTerminalIdentity}, after replacing the hardware);
  - a I{secret}, for firmwares that let the operator set the server path: the terminal dials
    C{ws://host:7788/t/<secret>}; once an operator has set a secret on the terminal (stored as
    its sha256), connections for that C{sn} without it are refused.

Everything here is pure; L{tm20.services.registration} applies it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from tm20.model import Terminal
from tm20.protocol.messages import Register

__all__ = [
    "REASON_IDENTITY",
    "REASON_SECRET",
    "IdentityClaim",
    "claimRefusal",
    "hashSecret",
    "identityMismatch",
    "mismatchRecord",
    "normaliseMac",
    "secretMatches",
]

#: Reasons shown on a refused terminal's screen (no detail for an impostor to learn from).
REASON_IDENTITY = "identity mismatch: ask the operator"
REASON_SECRET = "secret missing or wrong: ask the operator"

_MAC_SEPARATORS = re.compile(r"[\s:.\-]")


def hashSecret(secret: str) -> str:
    """The stored form of a terminal secret: sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secretMatches(secretHash: str | None, secret: str | None) -> bool:
    """
    Whether C{secret} (from the connection's path) satisfies a terminal's C{secretHash}.

    A terminal without a secret accepts any connection; one with a secret only a connection
    that presents it (compared in constant time).
    """
    if not secretHash:
        return True
    if secret is None:
        return False
    return hmac.compare_digest(hashSecret(secret), secretHash.lower())


def normaliseMac(mac: str | None) -> str | None:
    """C{00-01-F5-02-7d-5f}, C{00:01:f5:02:7d:5f} and C{0001.f502.7d5f} are one address."""
    if mac is None:
        return None
    bare = _MAC_SEPARATORS.sub("", str(mac)).upper()
    return bare or None


@attrs.frozen
class IdentityClaim:
    """The hardware identity a C{reg} claims."""

    cpusn: str | None
    mac: str | None

    @classmethod
    def fromRegister(cls, message: Register) -> IdentityClaim:
        """The C{cpusn} and C{devinfo.mac} of a C{reg} (empty values count as absent)."""
        mac = message.devinfo.get("mac") if isinstance(message.devinfo, Mapping) else None
        return cls(
            cpusn=(message.cpusn or "").strip() or None,
            mac=str(mac).strip() or None if mac is not None else None,
        )

    @property
    def empty(self) -> bool:
        """Nothing to bind to."""
        return self.cpusn is None and self.mac is None


def identityMismatch(terminal: Terminal, claim: IdentityClaim) -> str | None:
    """
    Compare a claim with a terminal's binding.

    A terminal must present every value it is bound to: its C{cpusn}, and its C{mac} (in any
    notation) when it reported one at binding.  A C{cpusn} replayed with another C{mac} is other
    hardware.  A claim that omits a bound value does not match: an impostor could otherwise drop
    the field.  A terminal bound by C{mac} only (a firmware without C{cpusn}) may add a
    C{cpusn} later.  An unbound terminal matches anything.

    @return: C{None} when the claim matches, else what differs (for the log and the flag).
    """
    if terminal.boundCpusn and claim.cpusn != terminal.boundCpusn:
        return "cpusn missing" if claim.cpusn is None else "cpusn differs"
    if terminal.boundMac and normaliseMac(claim.mac) != normaliseMac(terminal.boundMac):
        return "mac missing" if claim.mac is None else "mac differs"
    return None


def claimRefusal(
    terminal: Terminal, claim: IdentityClaim, secret: str | None
) -> tuple[str, str] | None:
    """
    Whether a connection presenting C{secret} in its path and claiming C{claim} may be
    C{terminal}: its secret first (L{secretMatches}), then its binding (L{identityMismatch}).

    @return: C{None} when it may, else C{(problem, reason)}: what is wrong (for the log and the
        flag) and what the terminal's screen is told.
    """
    if not secretMatches(terminal.secretHash, secret):
        return ("secret wrong" if secret is not None else "secret missing"), REASON_SECRET
    mismatch = identityMismatch(terminal, claim)
    return None if mismatch is None else (mismatch, REASON_IDENTITY)


def mismatchRecord(
    problem: str, claim: IdentityClaim, peer: str, at: datetime, secretGiven: bool
) -> dict[str, Any]:
    """
    The C{identityMismatch} record stored on a flagged terminal: what was claimed, from where,
    when.  The secret itself is never recorded, only whether one was given.
    """
    return {
        "problem": problem,
        "claimedCpusn": claim.cpusn,
        "claimedMac": claim.mac,
        "peer": peer,
        "secretGiven": secretGiven,
        "at": at.isoformat(),
    }
