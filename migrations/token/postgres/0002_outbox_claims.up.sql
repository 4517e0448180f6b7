-- Replicas share the audit outbox: a replica claims a batch (claim_owner until claim_expire_time) with
-- FOR UPDATE SKIP LOCKED, so that no two replicas send the same entry at the same time, and a claim whose
-- replica died expires and is taken over. An entry the audit service refuses for good is parked
-- (park_time, park_reason): kept for an operator, never sent again, and no longer in the way of the
-- entries behind it.
ALTER TABLE audit_outbox ADD COLUMN claim_owner text;
ALTER TABLE audit_outbox ADD COLUMN claim_expire_time timestamptz;
ALTER TABLE audit_outbox ADD COLUMN park_time timestamptz;
ALTER TABLE audit_outbox ADD COLUMN park_reason text NOT NULL DEFAULT '';

-- The queue proper: what is still to send, oldest first.
CREATE INDEX audit_outbox_queued ON audit_outbox (id) WHERE park_time IS NULL;
