-- Replicas share the audit outbox: a replica claims a batch (claim_owner until claim_expire_time); on
-- SQLite the single writer makes the claim atomic (PostgreSQL adds FOR UPDATE SKIP LOCKED), and a claim
-- whose process died expires and is taken over. An entry the audit service refuses for good is parked
-- (park_time, park_reason): kept for an operator, never sent again, and no longer in the way of the
-- entries behind it. Times are Unix microseconds.
ALTER TABLE audit_outbox ADD COLUMN claim_owner TEXT;
ALTER TABLE audit_outbox ADD COLUMN claim_expire_time INTEGER;
ALTER TABLE audit_outbox ADD COLUMN park_time INTEGER;
ALTER TABLE audit_outbox ADD COLUMN park_reason TEXT NOT NULL DEFAULT '';

-- The queue proper: what is still to send, oldest first.
CREATE INDEX audit_outbox_queued ON audit_outbox (id) WHERE park_time IS NULL;
