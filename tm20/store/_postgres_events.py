"""
The event log, delivery streams and webhooks of L{tm20.store.postgres.PostgresStore}
(L{tm20.interfaces.IEventStore}), as a mixin of that store: what is PostgreSQL's own (the lock
below, appending events in one statement); the operations are written once in
L{tm20.store._eventsql}.

B{Ids become visible in order.}  A C{bigserial} alone does not give that: two transactions take
ids 10 and 11, the one with 11 commits first, and a reader whose cursor moves to 11 never sees
10.  So the transaction-level advisory lock L{EVENTS_LOCK_KEY} separates writers from readers:

  - every transaction that appends events takes it in I{shared} mode before its
    C{INSERT INTO events} (L{appendEventRows}: just before, as its last statement; a COPY
    ingest flush: with its first statement) and holds it to its commit, so a transaction
    holding an event id not yet committed always holds the shared lock.  Writers never wait
    for each other: concurrent group commits (of this process or another) commit side by
    side, their fsyncs shared, instead of one at a time;
  - a read of the log's order that must see every id taken so far (L{lastEventId}, opening a
    stream at the head; L{listEvents} when it cannot do without, below) first takes it in
    I{exclusive} mode: it waits until every writer holding an id has committed (or rolled
    back), and writers arriving meanwhile wait behind it.  Its C{SELECT} then (a new snapshot,
    C{READ COMMITTED}) sees every id taken so far that will ever be committed, and any id taken
    later is larger.  A reader that sees id N therefore already sees every smaller id still in
    the log.

The lock is released at the commit, after the transaction became visible.  Readers are short
(one C{SELECT}); the cost of a read is to wait for the writers in flight, and writers queue
behind a waiting reader — with a webhook delivering every punch, a fifth of ingest.  So
L{tm20.store._eventsql.listEvents} first reads without the lock: the ids after its cursor that
follow it without a gap (C{after + 1}, C{after + 2}, …) are all committed, so no event can ever
appear among them, and their events are a complete answer up to the last of them.  It waits
only when a gap comes before any event of its query (an id held by a writer in flight, or left
unused by one that rolled back: the wait tells which, and the read goes past it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from tm20.events.model import NewEvent
from tm20.store._dialect import EVENTS_LOCK_KEY
from tm20.store._eventstore import EventStoreMixin
from tm20.store._pgpool import Cursor
from tm20.store._rows import dumpJSON


def textArray(values: Sequence[str | None]) -> str:
    """A PostgreSQL array literal of text elements (every element quoted; C{None} is NULL)."""
    return (
        "{"
        + ",".join(
            "NULL"
            if value is None
            else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            for value in values
        )
        + "}"
    )


async def appendEvents(
    cur: Cursor, events: Iterable[NewEvent], now: datetime, commit: bool = False
) -> int:
    """
    Insert C{events} in order, in the caller's transaction, under L{EVENTS_LOCK_KEY} (shared):
    call it as the transaction's last statement (C{commit}: it also commits the transaction,
    in the same round trip).  @return: how many (every one of C{events}).
    """
    return await appendEventRows(
        cur, [(e.type, e.sn, dumpJSON(e.payload)) for e in events], now, commit
    )


async def appendEventRows(
    cur: Cursor, rows: Sequence[tuple[str, str | None, str]], now: datetime, commit: bool = False
) -> int:
    """
    L{appendEvents} for events given as C{(type, sn, payload JSON text)}.  @return: how many.
    """
    if not rows:
        return 0
    # one round trip: the lock, then the rows (two statements of one query string, in order),
    # and the COMMIT when asked
    await cur.execute(
        "SELECT pg_advisory_xact_lock_shared(%s);"
        " INSERT INTO events (type, sn, payload, created_at)"
        " SELECT u.type, u.sn, u.payload::json, %s"
        " FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS u(type, sn, payload, n)"
        " ORDER BY u.n",
        (
            EVENTS_LOCK_KEY,
            now,
            textArray([row[0] for row in rows]),
            textArray([row[1] for row in rows]),
            textArray([row[2] for row in rows]),
        ),
        commit=commit,
    )
    return len(rows)


async def terminalTimezones(cur: Cursor, sns: Iterable[str]) -> dict[str, str | None]:
    """The time zone of each terminal of C{sns} that exists."""
    await cur.execute(
        "SELECT sn, timezone FROM terminals WHERE sn = ANY(%s::text[])", (textArray(list(sns)),)
    )
    return {row[0]: row[1] for row in cur.fetchall()}


class PostgresEventsMixin(EventStoreMixin):
    """
    L{tm20.interfaces.IEventStore} for L{tm20.store.postgres.PostgresStore}: the operations of
    L{tm20.store._eventstore}; the lock of the module docstring is taken by L{appendEventRows}
    (writers) and by the readers of the log's order (the dialect's C{waitForEventWriters}).
    """


__all__ = [
    "EVENTS_LOCK_KEY",
    "PostgresEventsMixin",
    "appendEventRows",
    "appendEvents",
    "terminalTimezones",
    "textArray",
]
