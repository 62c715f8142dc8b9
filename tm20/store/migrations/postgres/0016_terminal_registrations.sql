-- Which of a terminal's connections is the newest, across the nodes of a cluster: each
-- registration counts itself in terminals.registrations (in its own transaction, which locks the
-- terminal's row: two registrations of one terminal are counted in the order they commit), and a
-- node's claim of the terminal carries the count of the registration it claims for.  A claim
-- written late (the background lane) for an older connection no longer takes the terminal from
-- the node holding a newer one (tm20.cluster.node).
ALTER TABLE terminals ADD COLUMN registrations bigint NOT NULL DEFAULT 0;
ALTER TABLE cluster_terminals ADD COLUMN registration bigint NOT NULL DEFAULT 0;
