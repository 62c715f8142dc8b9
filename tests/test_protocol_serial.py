"""The serial-number rule of C{reg} (L{tm20.protocol.serial}), and the parser applying it."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from tm20.protocol.messages import ProtocolError, Register
from tm20.protocol.parser import parseFrame
from tm20.protocol.replies import REG_FAILED, failure, regInvalid, regRefused
from tm20.protocol.serial import MAX_SN_LENGTH, snProblem

ACCEPTED = [
    "ZX0006827500",
    "zx12345678",
    "AI07F123456",
    "A/B",  # addressable as A%2FB
    "50%",
    "a?b#c",
    "Zürich-Tür-3",
    "東京本社",
    "x" * MAX_SN_LENGTH,
    "...",
    "e\u0301",  # a combining accent on a letter is visible
]

REFUSED = [
    ("", "is empty"),
    ("x" * (MAX_SN_LENGTH + 1), f"is longer than {MAX_SN_LENGTH} characters"),
    ("ZX\u200b0001", "(U+200B)"),  # zero-width space (Cf)
    ("\ufeffZX1", "(U+FEFF)"),  # byte order mark (Cf)
    ("ZX\u202e1", "(U+202E)"),  # right-to-left override (Cf)
    ("ZX\u00ad1", "(U+00AD)"),  # soft hyphen (Cf)
    ("ZX 1", "(U+0020)"),
    ("ZX\u00a01", "(U+00A0)"),  # no-break space (Zs)
    ("ZX\u30001", "(U+3000)"),  # ideographic space (Zs)
    ("ZX\u20281", "(U+2028)"),  # line separator (Zl)
    ("ZX\t1", "(U+0009)"),
    ("ZX\n1", "(U+000A)"),
    ("ZX\x001", "(U+0000)"),
    ("ZX\x7f1", "(U+007F)"),
    ("ZX\x851", "(U+0085)"),  # C1 control
    ("ZX\ue0001", "(U+E000)"),  # private use (Co)
    ("ZX\u31641", "(U+3164)"),  # Hangul filler: a letter that shows as nothing
    ("ZX\ufe0f1", "(U+FE0F)"),  # variation selector
    ("\u2800", "(U+2800)"),  # blank Braille pattern
    ("ZX\U000e00011", "(U+E0001)"),  # language tag (Cf)
    (".", "cannot be . or .."),
    ("..", "cannot be . or .."),
]


class SerialNumberTests(SynchronousTestCase):
    def test_accepted(self) -> None:
        for sn in ACCEPTED:
            assert snProblem(sn) is None

    def test_refused(self) -> None:
        for sn, problem in REFUSED:
            found = snProblem(sn)
            assert found is not None and problem in found

    def test_regRefusesABadSn(self) -> None:
        for sn, problem in [r for r in REFUSED if r[0].strip()]:
            frame = json.dumps({"cmd": "reg", "sn": sn, "devinfo": {}})
            with self.assertRaises(ProtocolError) as caught:
                parseFrame(frame)
            assert (caught.exception.cmd, caught.exception.field) == ("reg", "sn")
            assert problem in caught.exception.problem

    def test_regTrimsBeforeTheRule(self) -> None:
        assert parseFrame(b'{"cmd":"reg","sn":" ZX1\\n"}') == Register("ZX1", None, {})

    def test_otherCommandsKeepTheirSnUnchecked(self) -> None:
        message = parseFrame('{"cmd":"sendlog","sn":"ZX\u200b1","record":[]}')
        assert message.sn == "ZX\u200b1"

    def test_aRefusedRegAlwaysCarriesText(self) -> None:
        assert failure("reg") == {"ret": "reg", "result": False, "reason": REG_FAILED}
        assert failure("reg", 1) == {"ret": "reg", "result": False, "reason": REG_FAILED}
        assert failure("reg", "why") == {"ret": "reg", "result": False, "reason": "why"}
        assert failure("sendlog") == {"ret": "sendlog", "result": False, "reason": 1}
        assert regInvalid("sn: is empty") == regRefused("invalid reg: sn: is empty")
        long = regRefused("x" * 500)["reason"]
        assert len(long) == 100 and long.endswith("...")
