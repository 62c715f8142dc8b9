-- One row that the health probe rewrites every few seconds, to check that the database can
-- still be written (see tm20.store._health; a full disk makes the store unhealthy).

CREATE TABLE store_probe (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    probed_at TEXT    NOT NULL
);
