"""
The source text of JSON values: what a terminal sent, byte for byte, for the quarantine.

Only used when a record is refused (rare), so it may read the frame a second time.
"""

from __future__ import annotations

import json
import re

__all__ = ["arrayElementsOf"]

_WHITESPACE = re.compile(r"[ \t\n\r]*")
#: Skips any value (numbers of any length, NaN included) without building Python objects of note.
_SCANNER = json.JSONDecoder(parse_int=len, parse_float=len, parse_constant=len)


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _value(text: str, index: int) -> int:
    """The index just past the JSON value starting at C{index}."""
    _, end = _SCANNER.raw_decode(text, index)
    return end


def _expect(text: str, index: int, char: str) -> int:
    if text[index : index + 1] != char:
        raise ValueError(f"expected {char!r} at {index}")
    return index + 1


def _topLevelMember(text: str, key: str) -> tuple[int, int] | None:
    """
    Where the value of top-level member C{key} is, as C{(start, end)}: the last one spelled
    exactly C{key} or, when there is none, the last one whose name trims to C{key} (the parser's
    rule for padded keys).
    """
    exact: tuple[int, int] | None = None
    padded: tuple[int, int] | None = None
    index = _expect(text, _skip(text, 0), "{")
    index = _skip(text, index)
    if text[index : index + 1] == "}":
        return None
    while True:
        name, index = _SCANNER.raw_decode(text, index)
        if not isinstance(name, str):
            raise ValueError("a member name must be a string")
        index = _skip(text, _expect(text, _skip(text, index), ":"))
        start = index
        index = _value(text, index)
        if name == key:
            exact = (start, index)
        elif name.strip() == key:
            padded = (start, index)
        index = _skip(text, index)
        if text[index : index + 1] == "}":
            return exact or padded
        index = _skip(text, _expect(text, index, ","))


def _elements(text: str, start: int) -> list[str]:
    out: list[str] = []
    index = _skip(text, _expect(text, start, "["))
    if text[index : index + 1] == "]":
        return out
    while True:
        end = _value(text, index)
        out.append(text[index:end])
        index = _skip(text, end)
        if text[index : index + 1] == "]":
            return out
        index = _skip(text, _expect(text, index, ","))


def arrayElementsOf(text: str, key: str) -> list[str] | None:
    """
    The source text of each element of the array that is the top-level member C{key} of the JSON
    object C{text}.

    @return: the texts, in order; C{None} when C{text} is not an object with such an array.
    """
    try:
        where = _topLevelMember(text, key)
        if where is None:
            return None
        return _elements(text, where[0])
    except (ValueError, IndexError):
        return None
