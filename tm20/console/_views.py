"""
What the console's pages show, worked out from the services' answers: the board's rows and
states, a user's credentials by type, the notes shown after an action.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from tm20.services.terminals import TerminalView
from tm20.views.model import describeTerminal

__all__ = [
    "ACTIONS",
    "BOARD_STATES",
    "DONE",
    "LOG_PAGE",
    "NOTES",
    "boardRow",
    "boardStates",
    "userRow",
]

#: The states the board counts and filters on, in the order shown.
BOARD_STATES = ("connected", "offline", "pending", "flagged", "silent", "inactive")
#: Logs per page of the search.
LOG_PAGE = 50
#: The commands the console offers on a terminal's page (more through the API).
ACTIONS = ("opendoor", "settime", "reboot")


def boardStates(view: TerminalView) -> list[str]:
    """The board's words for a terminal's states (the API's, with disconnected as offline)."""
    states = describeTerminal(view)["states"]
    return ["offline" if s == "disconnected" else s for s in states]


def ago(value: datetime | None, now: float) -> str:
    if value is None:
        return "never"
    seconds = max(0, int(now - value.timestamp()))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}min ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def boardRow(view: TerminalView, now: float) -> dict[str, Any]:
    """One row of the board (also what C{terminals.json} sends to the live board)."""
    terminal = view.terminal
    devinfo = terminal.devinfo or {}
    drift = view.watch.clockDrift if view.watch is not None else None
    return {
        "sn": terminal.sn,
        "name": terminal.name or "",
        "states": boardStates(view),
        "timezone": terminal.timezone or "",
        "model": terminal.modelname or "",
        "firmware": terminal.firmware or "",
        "lastSeen": terminal.lastSeen.isoformat() if terminal.lastSeen else None,
        "lastSeenAgo": ago(terminal.lastSeen, now),
        "drift": None if drift is None else round(float(drift)),
        "users": devinfo.get("useduser"),
        "logs": devinfo.get("usedlog"),
        "backlog": devinfo.get("usednewlog"),
        "url": f"/admin/terminals/{quote(terminal.sn, safe='')}/",
    }


DONE = {"approve": "approved", "reject": "rejected", "disable": "disabled", "enable": "enabled"}

NOTES = {
    "users-pulled": "Users pulled from the terminal.",
    "logs-pulled": "Logs pulled from the terminal.",
    "saved": "Saved.",
    "approved": "Approved: the terminal may register.",
    "rejected": "Rejected: the terminal is disconnected and may not register.",
    "disabled": "Disabled: the terminal is disconnected.",
    "enabled": "Enabled.",
    "identity-reset": "Identity reset: the next registration binds the terminal anew.",
    "access-pushed": "Access plan queued for the terminal (it gets it when connected).",
    "replayed": "Replay started: the events are delivered again from that id on.",
}


def userRow(user: Any) -> dict[str, Any]:
    kinds = {"fingerprint": 0, "password": 0, "card": 0, "face": 0, "palm": 0, "photo": 0}
    for credential in user.credentials:
        n = credential.backupnum
        if 0 <= n <= 9:
            kinds["fingerprint"] += 1
        elif n == 10:
            kinds["password"] += 1
        elif n == 11:
            kinds["card"] += 1
        elif 20 <= n <= 27:
            kinds["face"] += 1
        elif 30 <= n <= 37:
            kinds["palm"] += 1
        elif n == 50:
            kinds["photo"] += 1
    return {
        "enrollid": user.enrollid,
        "name": user.name or "",
        "admin": user.admin,
        "enabled": user.enabled,
        "credentials": ", ".join(f"{k} {v}" for k, v in kinds.items() if v) or "none",
    }
