-- tm20 initial schema (SQLite).
--
-- Server timestamps (first_seen, received_at, ...) are ISO-8601 text in UTC with an explicit
-- offset and microseconds, e.g. 2026-04-30T11:59:37.000000+00:00: fixed width, so text order is
-- time order.  Terminal times (log "time") are terminal-local 'YYYY-MM-DD HH:MM:SS' text.
-- JSON values are stored as text produced by json.dumps.
-- One statement ends with each line ending in ';' (see tm20.store._migrations).

CREATE TABLE terminals (
    sn          TEXT    NOT NULL PRIMARY KEY,
    cpusn       TEXT,
    mac         TEXT,
    modelname   TEXT,
    firmware    TEXT,
    devinfo     TEXT    NOT NULL DEFAULT '{}',
    name        TEXT,
    approved    INTEGER NOT NULL DEFAULT 1 CHECK (approved IN (0, 1)),
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    timezone    TEXT,
    first_seen  TEXT,
    last_seen   TEXT
);

CREATE INDEX terminals_approved ON terminals (approved, sn);

CREATE TABLE users (
    sn          TEXT    NOT NULL REFERENCES terminals (sn) ON DELETE CASCADE,
    enrollid    INTEGER NOT NULL,
    name        TEXT,
    admin       INTEGER NOT NULL DEFAULT 0,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (sn, enrollid)
);

-- record_json is json.dumps(record): a fingerprint template stays the exact same string and a
-- card number stays an int.
CREATE TABLE credentials (
    sn          TEXT    NOT NULL,
    enrollid    INTEGER NOT NULL,
    backupnum   INTEGER NOT NULL,
    record_json TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (sn, enrollid, backupnum),
    FOREIGN KEY (sn, enrollid) REFERENCES users (sn, enrollid) ON DELETE CASCADE
);

-- No foreign key to terminals: a log batch is never refused because of bookkeeping.
-- deleteTerminal removes a terminal's logs explicitly.
CREATE TABLE attendance_logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sn          TEXT    NOT NULL,
    enrollid    INTEGER NOT NULL,
    time        TEXT    NOT NULL,
    mode        INTEGER NOT NULL,
    inout       INTEGER NOT NULL,
    event       INTEGER NOT NULL,
    temp        REAL,
    verifymode  INTEGER,
    image       TEXT,
    extra       TEXT    NOT NULL DEFAULT '{}',
    received_at TEXT    NOT NULL,
    UNIQUE (sn, enrollid, time, mode, inout, event)
);

-- Pages of logs are read newest first by (time, id): one index per usual filter, so that neither
-- the filter nor the order needs a scan or a sort.
CREATE INDEX attendance_logs_sn_time ON attendance_logs (sn, time, id);

CREATE INDEX attendance_logs_sn_enrollid_time ON attendance_logs (sn, enrollid, time, id);

CREATE INDEX attendance_logs_time ON attendance_logs (time, id);

CREATE TABLE door_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sn          TEXT    NOT NULL,
    enrollid    INTEGER NOT NULL,
    time        TEXT    NOT NULL,
    mode        INTEGER NOT NULL,
    inout       INTEGER NOT NULL,
    event       INTEGER NOT NULL,
    temp        REAL,
    verifymode  INTEGER,
    image       TEXT,
    extra       TEXT    NOT NULL DEFAULT '{}',
    received_at TEXT    NOT NULL,
    UNIQUE (sn, enrollid, time, mode, inout, event)
);

CREATE INDEX door_events_sn_time ON door_events (sn, time, id);

CREATE INDEX door_events_time ON door_events (time, id);

CREATE TABLE commands (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sn           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('queued', 'sent', 'succeeded', 'failed', 'timed_out')),
    reply        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    actor        TEXT,
    created_at   TEXT    NOT NULL,
    sent_at      TEXT,
    finished_at  TEXT
);

CREATE INDEX commands_sn_status ON commands (sn, status, id);

CREATE TABLE api_tokens (
    name        TEXT NOT NULL PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    detail      TEXT NOT NULL DEFAULT '{}',
    at          TEXT NOT NULL
);
