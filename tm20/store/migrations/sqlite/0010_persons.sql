-- Fleet persons and terminal groups (desired state), and what the reconciler knows of each
-- person on each terminal (see tm20.services.reconciler).  The same tables as
-- tm20/store/migrations/postgres/0010_persons.sql.
--
-- A person is fleet-wide (enrollid unique across the fleet); its credentials are stored
-- verbatim like a terminal user's (record_json is json.dumps of the record).  valid_from and
-- valid_until are terminal-local 'YYYY-MM-DD HH:MM:SS' text.  person_sync has no foreign key
-- to persons: a deleted person's rows tell the reconciler which terminals to clean up.

CREATE TABLE persons (
    enrollid    INTEGER NOT NULL PRIMARY KEY,
    name        TEXT,
    admin       INTEGER NOT NULL DEFAULT 0,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    valid_from  TEXT,
    valid_until TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

CREATE TABLE person_credentials (
    enrollid    INTEGER NOT NULL REFERENCES persons (enrollid) ON DELETE CASCADE,
    backupnum   INTEGER NOT NULL,
    record_json TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (enrollid, backupnum)
);

CREATE TABLE terminal_groups (
    name         TEXT    NOT NULL PRIMARY KEY,
    description  TEXT,
    adopt_keypad INTEGER NOT NULL DEFAULT 0 CHECK (adopt_keypad IN (0, 1)),
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);

CREATE TABLE group_terminals (
    group_name  TEXT    NOT NULL REFERENCES terminal_groups (name) ON DELETE CASCADE,
    sn          TEXT    NOT NULL REFERENCES terminals (sn) ON DELETE CASCADE,
    PRIMARY KEY (group_name, sn)
);

CREATE INDEX group_terminals_sn ON group_terminals (sn, group_name);

CREATE TABLE person_groups (
    enrollid    INTEGER NOT NULL REFERENCES persons (enrollid) ON DELETE CASCADE,
    group_name  TEXT    NOT NULL REFERENCES terminal_groups (name) ON DELETE CASCADE,
    PRIMARY KEY (enrollid, group_name)
);

CREATE INDEX person_groups_group ON person_groups (group_name, enrollid);

CREATE TABLE person_terminals (
    enrollid    INTEGER NOT NULL REFERENCES persons (enrollid) ON DELETE CASCADE,
    sn          TEXT    NOT NULL REFERENCES terminals (sn) ON DELETE CASCADE,
    PRIMARY KEY (enrollid, sn)
);

CREATE INDEX person_terminals_sn ON person_terminals (sn, enrollid);

CREATE TABLE person_sync (
    sn          TEXT    NOT NULL REFERENCES terminals (sn) ON DELETE CASCADE,
    enrollid    INTEGER NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'synced', 'failed', 'conflict')),
    owned       INTEGER NOT NULL DEFAULT 0 CHECK (owned IN (0, 1)),
    detail      TEXT    NOT NULL DEFAULT '{}',
    commands    TEXT    NOT NULL DEFAULT '[]',
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (sn, enrollid)
);

CREATE INDEX person_sync_enrollid ON person_sync (enrollid, sn);
