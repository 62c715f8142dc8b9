"""
Versioned plain-SQL schema migrations, shipped inside the package.

A migration is a file C{tm20/store/migrations/<dialect>/NNNN_name.sql}: C{NNNN} is its version
(applied in ascending order, each exactly once), C{name} a lower-case word or words joined by
C{_}.  The stores record what they applied in a C{schema_migrations(version, name, applied_at)}
table that they create themselves (it is not part of any migration file), and apply each pending
migration in its own transaction.

Nothing here touches a database, so every backend (SQLite, PostgreSQL) shares it.

Statement splitting is deliberately simple (see L{splitStatements}): a statement ends with a line
whose last non-blank character is C{;}.  Write one statement per such line group and do not end a
line with C{;} inside a statement; the one exception handled is a dollar-quoted PostgreSQL body
(C{$$ ... $$}), inside which line-final semicolons do not split.  SQLite trigger bodies
(C{BEGIN ...; END;}) are not supported by this splitter.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import NamedTuple

#: The package holding the C{migrations/<dialect>/} folders.
MIGRATIONS_PACKAGE = "tm20.store"

_FILENAME = re.compile(r"^(?P<version>[0-9]{4})_(?P<name>[a-z0-9]+(?:_[a-z0-9]+)*)\.sql$")


class Migration(NamedTuple):
    """One migration file: C{(version, name, sql)}."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The statements of this migration, in order (see L{splitStatements})."""
        return splitStatements(self.sql)


def splitStatements(sql: str) -> list[str]:
    """
    Split a migration's text into statements.

    A statement ends at a line whose text, right-stripped, ends with C{;} (the C{;} is kept off
    the returned statement), unless that line is inside a C{$$}-quoted block.  Chunks holding
    only blank lines and C{--} comments are dropped; comments inside a statement are kept (both
    databases accept them).  Text after the last C{;} that is not only comments is returned as a
    final statement.

    @param sql: the text of a migration file.
    @return: the statements, without their final C{;}.
    """
    statements: list[str] = []
    current: list[str] = []
    inDollarQuote = False
    for line in sql.splitlines():
        if line.count("$$") % 2 == 1:
            inDollarQuote = not inDollarQuote
        stripped = line.rstrip()
        if not inDollarQuote and stripped.endswith(";"):
            current.append(stripped[:-1])
            _flush(current, statements)
            current = []
        else:
            current.append(line)
    _flush(current, statements)
    return statements


def _flush(lines: list[str], statements: list[str]) -> None:
    """Append C{lines} as one statement to C{statements} unless it is only comments/blanks."""
    meaningful = [line for line in lines if line.strip() and not line.strip().startswith("--")]
    if meaningful:
        statements.append("\n".join(lines).strip())


def loadMigrations(dialect: str, package: str = MIGRATIONS_PACKAGE) -> list[Migration]:
    """
    The migrations shipped for C{dialect}, ordered by version.

    @param dialect: the folder under C{migrations/}, e.g. C{"sqlite"} or C{"postgres"}.
    @param package: the package holding C{migrations/} (for tests).
    @return: the migrations, ascending by version.
    @raise ValueError: a C{.sql} file is misnamed, or two files share a version, or the
        dialect folder does not exist.
    """
    folder = resources.files(package).joinpath("migrations").joinpath(dialect)
    if not folder.is_dir():
        raise ValueError(f"no migrations for dialect {dialect!r} in {package}")
    migrations: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILENAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_lower_case_name.sql")
        version = int(match.group("version"))
        if version in migrations:
            raise ValueError(
                f"migrations {migrations[version].name!r} and {match.group('name')!r} "
                f"share version {version}"
            )
        migrations[version] = Migration(
            version, match.group("name"), entry.read_text(encoding="utf-8")
        )
    return [migrations[version] for version in sorted(migrations)]


def pendingMigrations(migrations: list[Migration], applied: set[int]) -> list[Migration]:
    """
    The migrations of C{migrations} not yet applied, in order.

    @param applied: the versions recorded in C{schema_migrations}.
    @raise ValueError: the database has a version this code does not know (it was migrated by a
        newer release): running older code on it is refused.
    """
    known = {migration.version for migration in migrations}
    unknown = sorted(applied - known)
    if unknown:
        raise ValueError(
            f"the database has schema versions {unknown} unknown to this release of tm20"
        )
    return [migration for migration in migrations if migration.version not in applied]


__all__ = ["Migration", "loadMigrations", "pendingMigrations", "splitStatements"]
