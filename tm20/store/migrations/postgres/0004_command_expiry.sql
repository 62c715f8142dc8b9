-- Commands that expire or are cancelled (see tm20.services.queue): two more final statuses
-- (expired, cancelled), the moment a command stops being deliverable (expires_at, NULL for the
-- commands stored before: the queue then applies the default of their kind from created_at),
-- and the parameters that could not be honoured (warnings, a JSON array).

ALTER TABLE commands DROP CONSTRAINT commands_status_check;

ALTER TABLE commands ADD CONSTRAINT commands_status_check
    CHECK (status IN ('queued', 'sent', 'succeeded', 'failed', 'timed_out', 'expired',
                      'cancelled'));

ALTER TABLE commands ADD COLUMN expires_at timestamptz;

ALTER TABLE commands ADD COLUMN warnings json NOT NULL DEFAULT '[]';
