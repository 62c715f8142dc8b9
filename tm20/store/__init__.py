"""
Persistence: the L{tm20.interfaces.IStore} implementations (each also provides
L{tm20.interfaces.IWatchStore}, L{tm20.interfaces.IEventStore} and
L{tm20.interfaces.IPersonStore}; C{IStore} is the union of the store roles).

  - L{tm20.store.sqlite.SQLiteStore}: one embedded SQLite file (the default).
  - C{tm20.store.postgres.PostgresStore}: PostgreSQL, for production.

Pick one from a database URL with L{storeFromURL}.  The backends are imported only when chosen,
so importing this package loads no database driver.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from tm20.interfaces import IStore

#: The URL schemes L{storeFromURL} accepts.
ACCEPTED_SCHEMES = ("sqlite:", "postgresql://", "postgres://")


def storeFromURL(url: str, reactor: Any = None, poolSize: int | None = None) -> IStore:
    """
    The store a database URL names (not started).

      - C{sqlite:PATH}: a SQLite file, relative to the working directory or absolute
        (C{sqlite:tm20.sqlite3}, C{sqlite:/var/lib/tm20/tm20.sqlite3}); the URL-like
        C{sqlite:///var/lib/tm20/tm20.sqlite3} also names an absolute path.
      - C{postgresql://...} or C{postgres://...}: a PostgreSQL database, through
        C{tm20.store.postgres.PostgresStore.fromURL}.

    @param url: the database URL.
    @param reactor: the reactor the store runs on (the global one when C{None}).
    @param poolSize: connections of the PostgreSQL pool (its default when C{None}); SQLite
        always uses one.
    @raise ValueError: an unknown scheme, an empty or in-memory SQLite path, or a PostgreSQL URL
        when the PostgreSQL store cannot be imported.
    """
    if url.startswith("sqlite:"):
        path = url[len("sqlite:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ValueError(f"no file in SQLite URL {url!r}; expected sqlite:PATH")
        if path == ":memory:":
            raise ValueError("an in-memory SQLite database is not supported; give a file path")
        from tm20.store.sqlite import SQLiteStore

        return SQLiteStore(path, reactor=reactor)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            postgres = importlib.import_module("tm20.store.postgres")
        except ImportError as e:
            raise ValueError(f"PostgreSQL store not available: {e}") from e
        options = {} if poolSize is None else {"poolSize": poolSize}
        return cast(IStore, postgres.PostgresStore.fromURL(url, reactor, **options))
    raise ValueError(
        f"unsupported database URL {_redact(url)!r}; expected one of "
        + ", ".join(f"{scheme}..." for scheme in ACCEPTED_SCHEMES)
    )


def _redact(url: str) -> str:
    """C{url} without a password that may follow C{user:} before C{@}."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


__all__ = ["ACCEPTED_SCHEMES", "storeFromURL"]
