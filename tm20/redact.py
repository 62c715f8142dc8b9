"""
Terminal path secrets (C{ws://host:7788/t/<secret>}) kept out of logs, whatever their spelling.

A firmware's URL setting may produce C{/t//SECRET}, C{/T/SECRET}, C{/%74/SECRET} or
C{/t%2FSECRET}: every spelling that could be meant as C{/t/} has what follows it masked, in
text and in bytes (autobahn logs the raw opening handshake at debug level).
"""

from __future__ import annotations

import re
from typing import Any

#: What replaces a path secret (and the rest of its path).
MASK = "/t/***"

_SLASH = r"(?:/|%2[fF])"
_T = r"(?:[tT]|%[57]4)"
_REST = r"[^\s?#\"'<>]+"
_TEXT = re.compile(rf"{_SLASH}+{_T}{_SLASH}+{_REST}")
_BYTES = re.compile(rf"{_SLASH}+{_T}{_SLASH}+{_REST}".encode("ascii"))


def redactText(text: str) -> str:
    """C{text} with every path secret masked."""
    if "/" not in text and "%" not in text:
        return text
    return _TEXT.sub(MASK, text)


def redactBytes(data: bytes) -> bytes:
    """C{data} with every path secret masked."""
    if b"/" not in data and b"%" not in data:
        return data
    return _BYTES.sub(MASK.encode("ascii"), data)


def redactValue(value: Any) -> Any:
    """A log field's value with path secrets masked (text, bytes, and tuples or lists of them)."""
    if isinstance(value, str):
        return redactText(value)
    if isinstance(value, bytes | bytearray):
        return redactBytes(bytes(value))
    if isinstance(value, tuple | list) and any(isinstance(v, str | bytes) for v in value):
        return type(value)(redactValue(v) for v in value)
    return value


__all__ = ["MASK", "redactBytes", "redactText", "redactValue"]
