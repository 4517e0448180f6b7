-- Who wrote each event, and which hash encoding covers it. Events stored before this migration keep
-- principal '' and hash_version 1 (their hash never covered a principal); every new event records the
-- authenticated writer and is hashed with version 2, which covers it (services/audit/chain).
ALTER TABLE events ADD COLUMN principal text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN hash_version smallint NOT NULL DEFAULT 1;

-- Idempotency keys belong to the writer: another principal reusing a key neither reads the first event
-- nor keeps it from being written.
DROP INDEX events_idempotency_key;
CREATE UNIQUE INDEX events_principal_idempotency_key ON events (principal, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Every equality filter of ListEvents has an index ending in sequence, so a page in sequence order (either
-- direction) is a range read of that index, never a sort of every match. A wide time range is read in
-- sequence order from the primary key and filtered, stopping after a page; events_occur_time (0001) stays
-- for narrow ranges, where the planner fetches the few matches and sorts only those.
CREATE INDEX events_outcome ON events (outcome, sequence);
