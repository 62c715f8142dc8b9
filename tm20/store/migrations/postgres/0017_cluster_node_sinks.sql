-- Whether a node runs the event sinks (webhooks, sink plugins): --no-sinks records false.  The
-- sinks' leader is the oldest live node that runs them, so a cluster whose oldest node was
-- started with --no-sinks still delivers (tm20.cluster.node); the other singleton role (the
-- silence sweep) stays with the oldest live node.
ALTER TABLE cluster_nodes ADD COLUMN sinks boolean NOT NULL DEFAULT true;
