-- Access control (tm20.access, tm20.services.access): rules, holidays, visitor codes, per-group
-- settings for unknown enrollids and codes, and the decisions taken at doors.  The same tables
-- as tm20/store/migrations/postgres/0012_access.sql.
--
-- A log decided in real time carries its decision (access_granted 0/1, access_reason); a log
-- written without one (a backlog batch, a pull, a row older than this migration) has NULL in
-- both: no decision was asked, the server opened nothing.  door_events get the same columns
-- (always NULL) so both tables read alike.  Lists (enrollids, sns, group names, windows) are
-- JSON text: a rule naming a deleted group or terminal simply matches nothing there.
-- A code is stored as the sha256 of its text (code_sha256): its text is shown once.

ALTER TABLE attendance_logs ADD COLUMN access_granted INTEGER CHECK (access_granted IN (0, 1));
ALTER TABLE attendance_logs ADD COLUMN access_reason TEXT;
ALTER TABLE door_events ADD COLUMN access_granted INTEGER CHECK (access_granted IN (0, 1));
ALTER TABLE door_events ADD COLUMN access_reason TEXT;

CREATE TABLE access_rules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    description     TEXT,
    persons         TEXT    NOT NULL DEFAULT '[]',
    person_groups   TEXT    NOT NULL DEFAULT '[]',
    terminals       TEXT    NOT NULL DEFAULT '[]',
    terminal_groups TEXT    NOT NULL DEFAULT '[]',
    windows         TEXT    NOT NULL DEFAULT '[]',
    holidays        INTEGER NOT NULL DEFAULT 0 CHECK (holidays IN (0, 1)),
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

CREATE TABLE access_holidays (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    start_day       TEXT    NOT NULL,
    end_day         TEXT    NOT NULL,
    terminal_groups TEXT    NOT NULL DEFAULT '[]',
    created_at      TEXT    NOT NULL
);

CREATE TABLE access_qrcodes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    code_sha256     TEXT    NOT NULL UNIQUE,
    enrollid        INTEGER REFERENCES persons (enrollid) ON DELETE CASCADE,
    visitor_name    TEXT,
    valid_from      TEXT,
    valid_until     TEXT,
    terminals       TEXT    NOT NULL DEFAULT '[]',
    terminal_groups TEXT    NOT NULL DEFAULT '[]',
    single_use      INTEGER NOT NULL DEFAULT 0 CHECK (single_use IN (0, 1)),
    used_at         TEXT,
    used_sn         TEXT,
    used_decision   INTEGER,
    revoked_at      TEXT,
    created_at      TEXT    NOT NULL
);

CREATE TABLE access_group_settings (
    group_name       TEXT NOT NULL PRIMARY KEY
                     REFERENCES terminal_groups (name) ON DELETE CASCADE,
    unknown_enrollid TEXT NOT NULL DEFAULT 'deny' CHECK (unknown_enrollid IN ('deny', 'allow')),
    unknown_code     TEXT NOT NULL DEFAULT 'deny' CHECK (unknown_code IN ('deny', 'allow')),
    updated_at       TEXT NOT NULL
);

-- Decisions on codes (sendqrcode, sendpin); punches carry theirs in attendance_logs.
CREATE TABLE access_decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sn          TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('qrcode', 'pin')),
    enrollid    INTEGER,
    qrcode_id   INTEGER,
    rule_id     INTEGER,
    granted     INTEGER NOT NULL CHECK (granted IN (0, 1)),
    reason      TEXT    NOT NULL,
    decided_at  TEXT    NOT NULL
);

CREATE INDEX access_decisions_sn ON access_decisions (sn, id);
