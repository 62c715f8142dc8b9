"""
The server's replies to terminal-initiated commands (C{{"ret": cmd, "result": ...}}), and the
encoding of any outgoing frame.

Every terminal C{cmd} must be answered, or the terminal retransmits it (protocol notes, section 8);
the builders below follow the vendor's own demo servers, which send only the fields the terminal
needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "REG_FAILED",
    "encodeFrame",
    "failure",
    "failureFields",
    "regAccepted",
    "regInvalid",
    "regRefused",
    "sendlogAck",
    "sendlogAckFields",
    "senduserAck",
    "sendqrcodeReply",
    "success",
]

_RESERVED = frozenset({"ret", "result"})

#: The reason of a C{reg} that failed for no reason the terminal can act on (the database did not
#: answer, a handler failed): a refused C{reg} always carries text, which the terminal shows.
REG_FAILED = "registration failed: retry later"
#: The longest C{reason} text sent to a terminal (its screen is small).
MAX_REASON_LENGTH = 100


def _merge(payload: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if extra:
        clash = _RESERVED.intersection(extra)
        if clash:
            raise ValueError(f"extra fields may not override {sorted(clash)}")
        payload.update(extra)
    return payload


def regAccepted(
    cloudtime: str, nosenduser: bool | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """
    Accept a C{reg}.

    @param cloudtime: the terminal's local time now (L{tm20.protocol.timefmt.cloudTime}); the
        terminal sets its clock from it.
    @param nosenduser: C{True} asks the terminal not to push users enrolled on its keypad; C{None}
        leaves the key out (as the vendor demos do).
    @param extra: further keys (e.g. C{nosendlog}, C{nosendimage}); some firmwares dislike keys
        they do not know, so only send them on purpose.
    @raise ValueError: if C{extra} tries to set C{ret} or C{result}.
    """
    payload: dict[str, Any] = {"ret": "reg", "result": True, "cloudtime": cloudtime}
    if nosenduser is not None:
        payload["nosenduser"] = nosenduser
    return _merge(payload, extra)


def regRefused(reason: str) -> dict[str, Any]:
    """
    Refuse a C{reg}.

    @param reason: text the terminal shows on its screen, e.g. C{"did not reg"}; cut to
        L{MAX_REASON_LENGTH} characters.
    """
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 3] + "..."
    return {"ret": "reg", "result": False, "reason": reason}


def regInvalid(problem: str) -> dict[str, Any]:
    """
    Refuse a C{reg} that cannot be understood (no usable C{sn}, malformed JSON...).

    @param problem: what is wrong, e.g. C{"sn: is required to register"}.
    """
    return regRefused(f"invalid reg: {problem}")


def sendlogAck(
    count: int | None,
    logindex: int | None,
    cloudtime: str,
    access: int | bool | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """
    Acknowledge a stored C{sendlog} batch (send it only once the records are committed): the
    fields of L{sendlogAckFields} with C{ret}.
    """
    return {"ret": "sendlog", **sendlogAckFields(count, logindex, cloudtime, access, message)}


def sendlogAckFields(
    count: int | None,
    logindex: int | None,
    cloudtime: str,
    access: int | bool | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """
    The fields of a C{sendlog} acknowledgement, without C{ret} (what a handler returns: the
    dispatcher adds C{ret}).

    @param count: the batch's C{count}, echoed only when the terminal sent one.
    @param logindex: the batch's C{logindex}, echoed only when the terminal sent one.
    @param cloudtime: the terminal's local time now.
    @param access: in server-approval mode, 1 opens the door and 0 denies (always with
        C{result:true}: C{false} would mean "not stored" and cause a resend).
    @param message: text shown on an AI terminal.
    """
    payload: dict[str, Any] = {"result": True}
    if count is not None:
        payload["count"] = count
    if logindex is not None:
        payload["logindex"] = logindex
    payload["cloudtime"] = cloudtime
    if access is not None:
        payload["access"] = access
    if message is not None:
        payload["message"] = message
    return payload


def senduserAck(cloudtime: str) -> dict[str, Any]:
    """
    Acknowledge a C{senduser}.

    @param cloudtime: the terminal's local time now.
    """
    return {"ret": "senduser", "result": True, "cloudtime": cloudtime}


def sendqrcodeReply(
    access: int | bool,
    enrollid: int | None = None,
    username: str | None = None,
    message: str | None = None,
    voice: str | None = None,
) -> dict[str, Any]:
    """
    Answer a scanned QR code.

    @param access: 1 (or C{True}) opens the door, 0 denies.
    @param enrollid: the user the code belongs to, if any.
    @param username: the name to show.
    @param message: the text to show.
    @param voice: the text to speak.
    """
    payload: dict[str, Any] = {"ret": "sendqrcode", "result": True, "access": access}
    for key, value in (
        ("enrollid", enrollid),
        ("username", username),
        ("message", message),
        ("voice", voice),
    ):
        if value is not None:
            payload[key] = value
    return payload


def failure(cmd: str, reason: Any = 1) -> dict[str, Any]:
    """
    The generic failure reply, sent for any command that cannot be handled.

    @param cmd: the command answered.
    @param reason: the C{reason} code (1 is the protocol's generic error).  A C{reg} is refused
        with text (the terminal shows it): for C{reg}, a reason that is not text is replaced by
        L{REG_FAILED}.
    @return: C{{"ret": cmd, "result": false, "reason": reason}}.
    """
    if cmd == "reg":
        return regRefused(reason if isinstance(reason, str) else REG_FAILED)
    return {"ret": cmd, **failureFields(reason)}


def failureFields(reason: Any = 1) -> dict[str, Any]:
    """L{failure}'s fields without C{ret} (what a handler returns; not for C{reg})."""
    return {"result": False, "reason": reason}


def success(cmd: str, **fields: Any) -> dict[str, Any]:
    """
    The generic success reply.

    @param cmd: the command answered.
    @param fields: further keys (they may not be C{ret} or C{result}).
    @return: C{{"ret": cmd, "result": true, **fields}}.
    @raise ValueError: if C{fields} tries to set C{ret} or C{result}.
    """
    return _merge({"ret": cmd, "result": True}, fields)


#: The encoder of every frame: C{json.dumps} with options other than the defaults builds a new
#: C{JSONEncoder} per call (a tenth of a reply's cost).
_FRAME_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encodeFrame(payload: Mapping[str, Any]) -> bytes:
    """
    Encode a frame for the wire: compact JSON, non-ASCII kept as UTF-8 (names in any script).

    @param payload: a command or a reply.
    @raise ValueError: if C{payload} cannot be encoded (non-finite numbers, invalid text).
    @raise TypeError: if it holds values JSON cannot represent.
    """
    text = _FRAME_ENCODER.encode(payload)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"text cannot be encoded as UTF-8: {e.reason}") from None
