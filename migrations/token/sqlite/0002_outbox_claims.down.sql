DROP INDEX audit_outbox_queued;
ALTER TABLE audit_outbox DROP COLUMN park_reason;
ALTER TABLE audit_outbox DROP COLUMN park_time;
ALTER TABLE audit_outbox DROP COLUMN claim_expire_time;
ALTER TABLE audit_outbox DROP COLUMN claim_owner;
