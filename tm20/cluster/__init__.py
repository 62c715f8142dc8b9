"""
Several tm20 processes on one PostgreSQL database (L{tm20.cluster.node}), or one process alone
(L{tm20.cluster.local}); C{--workers} supervision (L{tm20.cluster.workers}).

Everything goes through the database: a node's identity and lease, the terminal each node
holds, the commands (the durable queue) and calls (pulls) for a terminal held by another node;
C{LISTEN}/C{NOTIFY} only wakes the node concerned (a lost notification costs latency, never a
command: every node re-checks on a timer).
"""
