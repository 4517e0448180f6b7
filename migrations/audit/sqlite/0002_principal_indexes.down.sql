DROP INDEX events_outcome;
DROP INDEX events_principal_idempotency_key;
-- Fails when two principals used one key: keys were global before, and that cannot be undone silently.
CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE events DROP COLUMN hash_version;
ALTER TABLE events DROP COLUMN principal;
