-- Push subscriptions cannot be kept by a version that does not know them: they are deleted with their
-- deliveries (their events' statuses are left as they were).
DROP TABLE audit_outbox;
ALTER TABLE delivery_attempts DROP COLUMN response_excerpt;
ALTER TABLE delivery_attempts DROP COLUMN http_status;
DELETE FROM delivery_attempts WHERE delivery_id IN
    (SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.mode = 2);
DELETE FROM deliveries WHERE subscription_id IN (SELECT id FROM subscriptions WHERE mode = 2);
DELETE FROM subscriptions WHERE mode = 2;
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_push_config;
ALTER TABLE subscriptions DROP COLUMN push_previous_secret_expire_time;
ALTER TABLE subscriptions DROP COLUMN push_previous_secret;
ALTER TABLE subscriptions DROP COLUMN push_secret;
ALTER TABLE subscriptions DROP COLUMN push_timeout_ms;
ALTER TABLE subscriptions DROP COLUMN push_allow_private;
ALTER TABLE subscriptions DROP COLUMN push_endpoint;
ALTER TABLE subscriptions DROP COLUMN mode;
