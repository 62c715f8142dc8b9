-- Several tm20 processes (nodes) on one database: who is alive, which terminal each holds, and
-- the calls one node asks of the node holding a terminal (tm20.cluster).  PostgreSQL only: a
-- SQLite server is always one node and keeps this in memory.

-- One row per running node.  A node renews lease_until (every third of its lease); a row whose
-- lease has passed is dead to every reader and is deleted by the next reaper (any node).
CREATE TABLE cluster_nodes (
    node_id     text COLLATE "C" NOT NULL PRIMARY KEY,
    incarnation text        NOT NULL,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    lease_until timestamptz NOT NULL
);

-- The node holding each connected terminal: claimed at registration (the newest claim wins),
-- released at disconnection; a dead node's rows go with its node row.
CREATE TABLE cluster_terminals (
    sn         text COLLATE "C" NOT NULL PRIMARY KEY,
    node_id    text COLLATE "C" NOT NULL REFERENCES cluster_nodes (node_id) ON DELETE CASCADE,
    claimed_at timestamptz NOT NULL
);
CREATE INDEX cluster_terminals_node ON cluster_terminals (node_id);

-- A call (a pull) one node asks the node holding the terminal to run: asked -> running -> done.
-- The answer (or the error) is kept until the asking node has read it, then deleted.
CREATE TABLE cluster_calls (
    id          bigserial PRIMARY KEY,
    sn          text COLLATE "C" NOT NULL,
    kind        text        NOT NULL,
    params      json        NOT NULL,
    asked_by    text        NOT NULL,
    node_id     text,
    status      text        NOT NULL DEFAULT 'asked',
    result      json,
    error       json,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX cluster_calls_open ON cluster_calls (sn) WHERE status <> 'done';
