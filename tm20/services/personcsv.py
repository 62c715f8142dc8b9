"""
CSV import of persons, for a first roll-out (no biometrics).

The first line names the columns (any order; only C{enrollid} is required)::

    enrollid,name,admin,enabled,validFrom,validUntil,groups,terminals,card,password

  - C{enrollid}: 1 to 999999999999.
  - C{name}: up to 100 characters.
  - C{admin}: 0, 1 or 2 (default 0).
  - C{enabled}: C{true}/C{false} (also C{1}/C{0}, C{yes}/C{no}; default true).
  - C{validFrom}, C{validUntil}: C{YYYY-MM-DD HH:MM:SS} terminal-local, or empty.
  - C{groups}, C{terminals}: names / serial numbers separated by C{;}.
  - C{card} (slot 11), C{password} (slot 10, up to 8 digits): numbers, or empty.

An empty cell leaves the field as it is for a person that exists (default for a new one).  A
row is the body of a C{POST /api/persons/} (new C{enrollid}) or a C{PATCH} (existing one); any
error (named by line and column) refuses the whole file.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import attrs

__all__ = ["COLUMNS", "CsvError", "CsvRow", "parsePersonsCSV"]

COLUMNS = (
    "enrollid",
    "name",
    "admin",
    "enabled",
    "validFrom",
    "validUntil",
    "groups",
    "terminals",
    "card",
    "password",
)
#: The most rows one import takes.
MAX_ROWS = 50_000

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@attrs.frozen
class CsvError:
    """One problem: the line (1 is the header) and the column."""

    line: int
    field: str
    detail: str


@attrs.frozen
class CsvRow:
    """One person row: its line and the body fields it gives."""

    line: int
    enrollid: int
    body: dict[str, Any]


def _int(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError("must be a whole number")
    return int(text)


def parsePersonsCSV(text: str) -> tuple[list[CsvRow], list[CsvError]]:
    """The rows of a persons CSV, and every problem found (rows are only usable with none)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [CsvError(1, "enrollid", "the file is empty: a header line is required")]
    except csv.Error as e:
        return [], [CsvError(1, "header", str(e))]
    columns = [h.strip() for h in header]
    errors: list[CsvError] = []
    for name in columns:
        if name not in COLUMNS:
            errors.append(CsvError(1, name, "unknown column; expected " + ", ".join(COLUMNS)))
    if "enrollid" not in columns:
        errors.append(CsvError(1, "enrollid", "the enrollid column is required"))
    if len(set(columns)) != len(columns):
        errors.append(CsvError(1, "header", "a column is named twice"))
    if errors:
        return [], errors
    rows: list[CsvRow] = []
    seen: dict[int, int] = {}
    try:
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(rows) >= MAX_ROWS:
                errors.append(CsvError(line, "enrollid", f"more than {MAX_ROWS} rows"))
                break
            if len(record) != len(columns):
                errors.append(
                    CsvError(line, "row", f"{len(record)} cells for {len(columns)} columns")
                )
                continue
            row = _row(line, dict(zip(columns, (c.strip() for c in record), strict=True)), errors)
            if row is None:
                continue
            if row.enrollid in seen:
                errors.append(CsvError(line, "enrollid", f"also on line {seen[row.enrollid]}"))
                continue
            seen[row.enrollid] = line
            rows.append(row)
    except csv.Error as e:
        errors.append(CsvError(reader.line_num, "row", str(e)))
    return rows, errors


def _row(line: int, cells: dict[str, str], errors: list[CsvError]) -> CsvRow | None:
    before = len(errors)
    body: dict[str, Any] = {}
    enrollid = 0
    try:
        enrollid = _int(cells["enrollid"])
        if not 1 <= enrollid <= 999_999_999_999:
            raise ValueError("must be 1 to 999999999999")
    except ValueError as e:
        errors.append(CsvError(line, "enrollid", str(e)))
    for name, value in cells.items():
        if name == "enrollid" or value == "":
            continue
        try:
            if name == "name":
                if len(value) > 100:
                    raise ValueError("must have at most 100 characters")
                body["name"] = value
            elif name == "admin":
                admin = _int(value)
                if admin not in (0, 1, 2):
                    raise ValueError("must be 0, 1 or 2")
                body["admin"] = admin
            elif name == "enabled":
                if value.lower() not in _TRUE + _FALSE:
                    raise ValueError("must be true or false")
                body["enabled"] = value.lower() in _TRUE
            elif name in ("validFrom", "validUntil"):
                body[name] = value
            elif name in ("groups", "terminals"):
                items = [item.strip() for item in value.split(";") if item.strip()]
                body[name] = sorted(set(items))
            elif name in ("card", "password"):
                number = _int(value)
                if name == "password" and len(value) > 8:
                    raise ValueError("must have at most 8 digits")
                body.setdefault("credentials", []).append(
                    {"backupnum": 11 if name == "card" else 10, "record": number}
                )
        except ValueError as e:
            errors.append(CsvError(line, name, str(e)))
    if len(errors) > before:
        return None
    return CsvRow(line, enrollid, body)
