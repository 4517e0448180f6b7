-- Push delivery, push attempts and the audit outbox (issue #10).

-- mode: 1 pull, 2 push. A push subscription names its endpoint, whether it may reach non-public
-- addresses, its request timeout (ms), and its signing secret sealed by the service under
-- WEBHOOK_ENCRYPTION_KEYS (opaque here), with the previous secret while it still signs beside it.
ALTER TABLE subscriptions ADD COLUMN mode smallint NOT NULL DEFAULT 1 CHECK (mode IN (1, 2));
ALTER TABLE subscriptions ADD COLUMN push_endpoint text NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN push_allow_private boolean NOT NULL DEFAULT false;
ALTER TABLE subscriptions ADD COLUMN push_timeout_ms bigint NOT NULL DEFAULT 0 CHECK (push_timeout_ms >= 0);
ALTER TABLE subscriptions ADD COLUMN push_secret bytea;
ALTER TABLE subscriptions ADD COLUMN push_previous_secret bytea;
ALTER TABLE subscriptions ADD COLUMN push_previous_secret_expire_time timestamptz;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_push_config CHECK (
    (mode = 2) = (push_secret IS NOT NULL AND push_endpoint <> '' AND push_timeout_ms > 0)
    AND (push_previous_secret IS NULL) = (push_previous_secret_expire_time IS NULL)
    AND (mode = 2 OR push_previous_secret IS NULL));

-- A push attempt keeps the endpoint's HTTP status (0: no answer) and the start of its answer.
ALTER TABLE delivery_attempts ADD COLUMN http_status integer NOT NULL DEFAULT 0 CHECK (http_status BETWEEN 0 AND 999);
ALTER TABLE delivery_attempts ADD COLUMN response_excerpt text NOT NULL DEFAULT '';

-- Audit events about deliveries (dead letters, redrives, replays, purges) waiting for the audit service,
-- written in the transaction that makes the change they describe; the same shape as the token service's
-- outbox (see its migrations): claimed by one replica at a time, parked when refused for good.
CREATE TABLE audit_outbox (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key   text        NOT NULL UNIQUE,
    payload           bytea       NOT NULL,
    create_time       timestamptz NOT NULL,
    claim_owner       text,
    claim_expire_time timestamptz,
    park_time         timestamptz,
    park_reason       text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_outbox_queued ON audit_outbox (id) WHERE park_time IS NULL;
