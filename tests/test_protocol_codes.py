"""
One table each for the WebSocket close codes (L{tm20.protocol.codes.CloseCode}) and the command
statuses (L{tm20.model.COMMAND_STATUSES}), used everywhere: no literal elsewhere in C{tm20}.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tm20.api._openapi import buildDocument
from tm20.model import COMMAND_FINAL, COMMAND_STATUSES, COMMAND_WAITING
from tm20.protocol.codes import CloseCode

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "tm20").rglob("*.py"))


class CloseCodeTests(SynchronousTestCase):
    def test_readmeNamesEveryCode(self) -> None:
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        paragraph = readme.split("**Close codes sent by the server.**", 1)[1].split("\n\n", 1)[0]
        for code in CloseCode:
            self.assertIn(str(code.value), paragraph, code)

    def test_noLiteralCloseCodes(self) -> None:
        """A close in C{tm20} names its code from the table (the simulator is a client)."""
        literal = re.compile(r"\b(close|sendClose)\(\s*\d")
        assigned = re.compile(r"^\s*CLOSE_\w+\s*=\s*\d", re.MULTILINE)
        for path in SOURCES:
            if "simulator" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            self.assertIsNone(literal.search(text), path)
            self.assertIsNone(assigned.search(text), path)


class CommandStatusTests(SynchronousTestCase):
    def test_tablesAgree(self) -> None:
        self.assertEqual(set(COMMAND_WAITING) | COMMAND_FINAL, set(COMMAND_STATUSES))
        self.assertEqual(set(COMMAND_WAITING) & COMMAND_FINAL, set())

    def test_openapiEnumIsTheTable(self) -> None:
        schemas = buildDocument()["components"]["schemas"]
        statuses = [
            schema["properties"]["status"]["enum"]
            for schema in schemas.values()
            if "command" in schema.get("properties", {})
            and "enum" in schema.get("properties", {}).get("status", {})
        ]
        self.assertTrue(statuses)
        for enum in statuses:
            self.assertEqual(enum, list(COMMAND_STATUSES))

    def test_noLiteralStatusesOutsideTheTable(self) -> None:
        literal = re.compile("[\"']({})[\"']".format("|".join(COMMAND_STATUSES)))
        for path in SOURCES:
            if path.name == "model.py" or "simulator" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if "status" in line.lower() and literal.search(line):
                    self.fail(f"{path}:{number}: a command status literal: {line.strip()}")
