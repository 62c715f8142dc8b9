"""
Which serial numbers (C{sn}) a terminal may register with.

The C{sn} is the terminal's only name: it keys everything stored for the terminal and is the
C{{sn}} of every REST path (percent-encoded).  So an accepted C{sn} must be text an operator can
read, type and put in a URL:

  - 1 to L{MAX_SN_LENGTH} characters (real serial numbers have 10 to 12: C{ZX0006827500});
  - no control, format, unassigned, private-use or surrogate characters (Unicode categories
    C{Cc}, C{Cf}, C{Cn}, C{Co}, C{Cs}), no spaces or separators (C{Zs}, C{Zl}, C{Zp}), and none of
    the other characters that show as nothing (L{INVISIBLE}: variation selectors, Hangul fillers,
    the blank Braille pattern, ...).  So no tab, newline, NUL, zero-width space (U+200B), BOM
    (U+FEFF), bidirectional override, no-break space, ideographic space...;
  - not C{.} or C{..}, which HTTP clients remove from a URL path.

Anything else is allowed: letters of any script, digits, punctuation (C{/}, C{%}, C{?} and C{#}
are percent-encoded in a URL).

Nothing here does I/O.
"""

from __future__ import annotations

import unicodedata

__all__ = ["INVISIBLE", "MAX_SN_LENGTH", "snProblem"]

#: The longest C{sn} accepted, in characters.
MAX_SN_LENGTH = 64

#: Characters outside the refused categories that render as nothing: the Unicode
#: Default_Ignorable_Code_Point characters of categories C{Mn} and C{Lo}, plus U+2800.
INVISIBLE = frozenset(
    [
        0x034F,  # combining grapheme joiner
        0x115F,  # Hangul choseong filler
        0x1160,  # Hangul jungseong filler
        0x17B4,  # Khmer vowel inherent aq
        0x17B5,  # Khmer vowel inherent aa
        *range(0x180B, 0x1810),  # Mongolian free variation selectors (0x180E is Cf)
        0x2800,  # Braille pattern blank
        0x3164,  # Hangul filler
        *range(0xFE00, 0xFE10),  # variation selectors
        0xFFA0,  # halfwidth Hangul filler
        *range(0xE0100, 0xE01F0),  # variation selectors supplement
    ]
)

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zs", "Zl", "Zp"})


def _refused(char: str) -> bool:
    return ord(char) in INVISIBLE or unicodedata.category(char) in _REFUSED_CATEGORIES


def snProblem(sn: str) -> str | None:
    """
    Check a serial number against the rule of this module.

    @param sn: the C{sn} as received (the parser has already trimmed surrounding whitespace).
    @return: C{None} when it is acceptable, else what is wrong with it, short enough to show
        on a terminal's screen (e.g. C{"has an invisible or control character (U+200B)"}).
    """
    if not sn:
        return "is empty"
    if len(sn) > MAX_SN_LENGTH:
        return f"is longer than {MAX_SN_LENGTH} characters"
    if sn.isascii():
        # the usual case: printable ASCII without space is "!" to "~"
        bad = next((c for c in sn if not "!" <= c <= "~"), None)
    else:
        bad = next((c for c in sn if _refused(c)), None)
    if bad is not None:
        return f"has an invisible, space or control character (U+{ord(bad):04X})"
    if sn in (".", ".."):
        return "cannot be . or .."
    return None
