-- What the server watches on each terminal by itself (tm20.model.TerminalWatch): silence, logs
-- missing from the server, clock drift.  One row per terminal, created on first need.
-- The same columns as tm20/store/migrations/sqlite/0009_terminal_watch.sql.

CREATE TABLE terminal_watch (
    sn                 text COLLATE "C" NOT NULL PRIMARY KEY
                       REFERENCES terminals (sn) ON DELETE CASCADE,
    silent_after       double precision,
    silent_since       timestamptz,
    log_gap            bigint  NOT NULL DEFAULT 0,
    log_gap_source     text,
    log_gap_since      timestamptz,
    log_gap_from       text,
    log_gap_to         text,
    logs_recovered     bigint  NOT NULL DEFAULT 0,
    last_recovery_at   timestamptz,
    clock_drift        double precision,
    clock_checked_at   timestamptz,
    clock_corrected_at timestamptz
);

-- The metrics' census counts the commands waiting in the durable queue (all terminals) every
-- minute: an index of those alone keeps the count as cheap as the queue is short.
CREATE INDEX commands_waiting ON commands (status) WHERE status IN ('queued', 'sent');
