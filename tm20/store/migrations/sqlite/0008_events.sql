-- The event log (an outbox): every fact the server stores is also written here, in the same
-- transaction, with a strictly increasing id (see tm20.events).  Sinks (webhooks, plugins) read
-- it behind their own cursor in sink_streams; each delivery attempt is kept in sink_attempts.

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    type        TEXT    NOT NULL,
    sn          TEXT,
    payload     TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE INDEX events_type_id ON events (type, id);

CREATE INDEX events_sn_id ON events (sn, id);

CREATE INDEX events_created_at ON events (created_at);

-- One row per delivery stream (a webhook subscription, a sink plugin): where it is.
CREATE TABLE sink_streams (
    key           TEXT    NOT NULL PRIMARY KEY,
    cursor        INTEGER NOT NULL DEFAULT 0,
    state         TEXT    NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'failing', 'disabled')),
    failures      INTEGER NOT NULL DEFAULT 0,
    retry_at      TEXT,
    failing_since TEXT,
    last_error    TEXT,
    updated_at    TEXT    NOT NULL
);

CREATE TABLE sink_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    stream      TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    first_event INTEGER NOT NULL,
    last_event  INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
    status      INTEGER,
    latency_ms  REAL    NOT NULL,
    error       TEXT,
    response    TEXT
);

CREATE INDEX sink_attempts_stream_id ON sink_attempts (stream, id);

CREATE INDEX sink_attempts_at ON sink_attempts (at);

-- Webhook subscriptions; their delivery state is the sink stream 'webhook:<id>'.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    url         TEXT    NOT NULL,
    types       TEXT    NOT NULL,
    sn          TEXT,
    secret      TEXT    NOT NULL,
    description TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
