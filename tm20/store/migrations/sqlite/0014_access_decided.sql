-- The punches decided at a door (access_granted not NULL), newest first, of every terminal or
-- of one: what the console's decisions pages and the logs' ?access= filter read.  Partial
-- indexes: they hold the decided punches only (backlog batches and pulls, the bulk of the
-- logs, are not in them), so a terminal with millions of logs and a few decisions answers
-- without scanning its logs.
CREATE INDEX attendance_logs_decided ON attendance_logs (time, id) WHERE access_granted IS NOT NULL;
CREATE INDEX attendance_logs_sn_decided ON attendance_logs (sn, time, id)
    WHERE access_granted IS NOT NULL;
