-- The quarantine: records a terminal sent that can never be stored as a log or a user (a bad
-- time, a value out of range, not an object ...), held verbatim so that they block nothing.
-- raw is the record's JSON text exactly as received; raw_sha256 (hex of its UTF-8) makes a
-- resent record land once.  No foreign key to terminals, as for logs; deleteTerminal removes a
-- terminal's quarantine explicitly.

CREATE TABLE quarantined_records (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sn          TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    raw         TEXT    NOT NULL,
    raw_sha256  TEXT    NOT NULL,
    problem     TEXT    NOT NULL,
    field       TEXT,
    received_at TEXT    NOT NULL,
    UNIQUE (sn, source, raw_sha256)
);

CREATE INDEX quarantined_records_sn ON quarantined_records (sn, id);
