"""
pytest configuration for the tests.

The tests are trial C{TestCase}s (they also run under C{trial}), so they take no pytest fixtures:
shared resources live in modules (PostgreSQL in L{tests.pgharness}, started on first use).  Here
only the report header says which PostgreSQL the PostgreSQL tests will use.
"""

from __future__ import annotations

import os

from tests import pgharness


def pytest_report_header() -> str:
    """One line in pytest's header: the PostgreSQL used (never the password)."""
    given = os.environ.get(pgharness.URL_VARIABLE)
    if given:
        return f"PostgreSQL: {pgharness.URL_VARIABLE} ({pgharness.redact(given)})"
    return "PostgreSQL: a private throwaway cluster (initdb/pg_ctl), started on first use"
