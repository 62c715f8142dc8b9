-- The event log (an outbox): the same tables as tm20/store/migrations/sqlite/0008_events.sql.
-- Writers take the advisory lock tm20.store.postgres.EVENTS_LOCK_KEY before inserting events
-- and hold it to their commit, so ids become visible in increasing order (a reader that saw
-- id N will never later see a smaller one appear).

CREATE TABLE events (
    id          bigserial   PRIMARY KEY,
    type        text        NOT NULL,
    sn          text,
    payload     json        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX events_type_id ON events (type, id);

CREATE INDEX events_sn_id ON events (sn, id);

CREATE INDEX events_created_at ON events (created_at);

CREATE TABLE sink_streams (
    key           text        NOT NULL PRIMARY KEY,
    cursor        bigint      NOT NULL DEFAULT 0,
    state         text        NOT NULL DEFAULT 'active'
                  CHECK (state IN ('active', 'failing', 'disabled')),
    failures      integer     NOT NULL DEFAULT 0,
    retry_at      timestamptz,
    failing_since timestamptz,
    last_error    text,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE sink_attempts (
    id          bigserial   PRIMARY KEY,
    stream      text        NOT NULL,
    at          timestamptz NOT NULL,
    first_event bigint      NOT NULL,
    last_event  bigint      NOT NULL,
    events      integer     NOT NULL,
    ok          boolean     NOT NULL,
    status      integer,
    latency_ms  double precision NOT NULL,
    error       text,
    response    text
);

CREATE INDEX sink_attempts_stream_id ON sink_attempts (stream, id);

CREATE INDEX sink_attempts_at ON sink_attempts (at);

CREATE TABLE webhooks (
    id          bigserial   PRIMARY KEY,
    url         text        NOT NULL,
    types       json        NOT NULL,
    sn          text,
    secret      text        NOT NULL,
    description text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
