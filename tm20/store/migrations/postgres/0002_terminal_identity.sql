-- Terminal identity (see tm20.services.identity): the hardware an sn is bound to, the latest
-- refused claim (identity_mismatch, JSON), and the sha256 (hex) of the terminal's path secret.
-- The same columns as tm20/store/migrations/sqlite/0002_terminal_identity.sql.

ALTER TABLE terminals ADD COLUMN bound_cpusn text;

ALTER TABLE terminals ADD COLUMN bound_mac text;

ALTER TABLE terminals ADD COLUMN bound_at timestamptz;

ALTER TABLE terminals ADD COLUMN identity_mismatch json;

ALTER TABLE terminals ADD COLUMN secret_hash text;

-- Terminals approved and seen before this migration are bound to what they last reported.
UPDATE terminals
   SET bound_cpusn = cpusn, bound_mac = mac, bound_at = last_seen
 WHERE approved AND last_seen IS NOT NULL AND (cpusn IS NOT NULL OR mac IS NOT NULL);
