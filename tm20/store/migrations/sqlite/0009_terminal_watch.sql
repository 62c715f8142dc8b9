-- What the server watches on each terminal by itself (tm20.model.TerminalWatch): silence, logs
-- missing from the server, clock drift.  One row per terminal, created on first need.

CREATE TABLE terminal_watch (
    sn                 TEXT    NOT NULL PRIMARY KEY REFERENCES terminals (sn) ON DELETE CASCADE,
    silent_after       REAL,
    silent_since       TEXT,
    log_gap            INTEGER NOT NULL DEFAULT 0,
    log_gap_source     TEXT,
    log_gap_since      TEXT,
    log_gap_from       TEXT,
    log_gap_to         TEXT,
    logs_recovered     INTEGER NOT NULL DEFAULT 0,
    last_recovery_at   TEXT,
    clock_drift        REAL,
    clock_checked_at   TEXT,
    clock_corrected_at TEXT
);

-- The metrics' census counts the commands waiting in the durable queue (all terminals) every
-- minute: an index of those alone keeps the count as cheap as the queue is short.
CREATE INDEX commands_waiting ON commands (status) WHERE status IN ('queued', 'sent');
