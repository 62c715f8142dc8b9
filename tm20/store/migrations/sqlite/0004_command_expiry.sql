-- Commands that expire or are cancelled (see tm20.services.queue): two more final statuses
-- (expired, cancelled), the moment a command stops being deliverable (expires_at, NULL for the
-- commands stored before: the queue then applies the default of their kind from created_at),
-- and the parameters that could not be honoured (warnings, a JSON array).  SQLite cannot alter
-- a CHECK constraint, so the table is rebuilt, keeping ids and the AUTOINCREMENT sequence.

CREATE TABLE commands_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sn           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('queued', 'sent', 'succeeded', 'failed', 'timed_out',
                                   'expired', 'cancelled')),
    reply        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    actor        TEXT,
    created_at   TEXT    NOT NULL,
    sent_at      TEXT,
    finished_at  TEXT,
    expires_at   TEXT,
    warnings     TEXT    NOT NULL DEFAULT '[]'
);

INSERT INTO commands_new (id, sn, name, payload, status, reply, attempts, max_attempts, actor,
                          created_at, sent_at, finished_at)
SELECT id, sn, name, payload, status, reply, attempts, max_attempts, actor,
       created_at, sent_at, finished_at
  FROM commands;

INSERT INTO sqlite_sequence (name, seq)
SELECT 'commands_new', 0
 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'commands_new');

UPDATE sqlite_sequence
   SET seq = (SELECT MAX(seq) FROM sqlite_sequence WHERE name IN ('commands', 'commands_new'))
 WHERE name = 'commands_new';

DROP TABLE commands;

ALTER TABLE commands_new RENAME TO commands;

CREATE INDEX commands_sn_status ON commands (sn, status, id);
