-- The event log loses its index on created_at: every stored log writes an event, and the fourth
-- index of events cost the database as much as the row itself.  Pruning no longer needs it:
-- events are appended in increasing id with the clock's time, so the events older than the
-- retention are those before the first young one, found by walking the primary key from its
-- start (tm20.store._eventsql.pruneEvents), as many rows as are deleted.
DROP INDEX events_created_at;
