-- Fleet persons and terminal groups (desired state), and what the reconciler knows of each
-- person on each terminal (see tm20.services.reconciler).  The same tables as
-- tm20/store/migrations/sqlite/0010_persons.sql; JSON columns are text here (dumped and loaded
-- by the store), so both backends read them the same way.

CREATE TABLE persons (
    enrollid    bigint      NOT NULL PRIMARY KEY,
    name        text,
    admin       integer     NOT NULL DEFAULT 0,
    enabled     boolean     NOT NULL DEFAULT true,
    valid_from  text COLLATE "C",
    valid_until text COLLATE "C",
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE person_credentials (
    enrollid    bigint      NOT NULL REFERENCES persons (enrollid) ON DELETE CASCADE,
    backupnum   integer     NOT NULL,
    record_json text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (enrollid, backupnum)
);

CREATE TABLE terminal_groups (
    name         text COLLATE "C" NOT NULL PRIMARY KEY,
    description  text,
    adopt_keypad boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE group_terminals (
    group_name  text COLLATE "C" NOT NULL REFERENCES terminal_groups (name) ON DELETE CASCADE,
    sn          text COLLATE "C" NOT NULL REFERENCES terminals (sn) ON DELETE CASCADE,
    PRIMARY KEY (group_name, sn)
);

CREATE INDEX group_terminals_sn ON group_terminals (sn, group_name);

CREATE TABLE person_groups (
    enrollid    bigint      NOT NULL REFERENCES persons (enrollid) ON DELETE CASCADE,
    group_name  text COLLATE "C" NOT NULL REFERENCES terminal_groups (name) ON DELETE CASCADE,
    PRIMARY KEY (enrollid, group_name)
);

CREATE INDEX person_groups_group ON person_groups (group_name, enrollid);

CREATE TABLE person_terminals (
    enrollid    bigint      NOT NULL REFERENCES persons (enrollid) ON DELETE CASCADE,
    sn          text COLLATE "C" NOT NULL REFERENCES terminals (sn) ON DELETE CASCADE,
    PRIMARY KEY (enrollid, sn)
);

CREATE INDEX person_terminals_sn ON person_terminals (sn, enrollid);

CREATE TABLE person_sync (
    sn          text COLLATE "C" NOT NULL REFERENCES terminals (sn) ON DELETE CASCADE,
    enrollid    bigint      NOT NULL,
    state       text        NOT NULL CHECK (state IN ('pending', 'synced', 'failed', 'conflict')),
    owned       boolean     NOT NULL DEFAULT false,
    detail      text        NOT NULL DEFAULT '{}',
    commands    text        NOT NULL DEFAULT '[]',
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (sn, enrollid)
);

CREATE INDEX person_sync_enrollid ON person_sync (enrollid, sn);
