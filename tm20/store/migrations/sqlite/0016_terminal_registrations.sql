-- Each registration counts itself (tm20.store._terminals): which connection of a terminal is the
-- newest (a cluster's nodes compare it; a SQLite server is one node and only keeps the count).
ALTER TABLE terminals ADD COLUMN registrations INTEGER NOT NULL DEFAULT 0;
