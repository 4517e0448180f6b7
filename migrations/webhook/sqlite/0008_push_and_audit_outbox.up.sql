-- Push delivery, push attempts and the audit outbox (issue #10). Times are Unix microseconds.

-- mode: 1 pull, 2 push. A push subscription names its endpoint, whether it may reach non-public
-- addresses (0/1), its request timeout (ms), and its signing secret sealed by the service under
-- WEBHOOK_ENCRYPTION_KEYS (opaque here), with the previous secret while it still signs beside it.
-- SQLite's ADD COLUMN takes only checks on the new column; the store writes the columns together.
ALTER TABLE subscriptions ADD COLUMN mode INTEGER NOT NULL DEFAULT 1 CHECK (mode IN (1, 2));
ALTER TABLE subscriptions ADD COLUMN push_endpoint TEXT NOT NULL DEFAULT '' CHECK (typeof(push_endpoint) = 'text');
ALTER TABLE subscriptions ADD COLUMN push_allow_private INTEGER NOT NULL DEFAULT 0 CHECK (push_allow_private IN (0, 1));
ALTER TABLE subscriptions ADD COLUMN push_timeout_ms INTEGER NOT NULL DEFAULT 0 CHECK (typeof(push_timeout_ms) = 'integer' AND push_timeout_ms >= 0);
ALTER TABLE subscriptions ADD COLUMN push_secret BLOB CHECK (push_secret IS NULL OR typeof(push_secret) = 'blob');
ALTER TABLE subscriptions ADD COLUMN push_previous_secret BLOB CHECK (push_previous_secret IS NULL OR typeof(push_previous_secret) = 'blob');
ALTER TABLE subscriptions ADD COLUMN push_previous_secret_expire_time INTEGER CHECK (push_previous_secret_expire_time IS NULL OR typeof(push_previous_secret_expire_time) = 'integer');

-- A push attempt keeps the endpoint's HTTP status (0: no answer) and the start of its answer.
ALTER TABLE delivery_attempts ADD COLUMN http_status INTEGER NOT NULL DEFAULT 0 CHECK (http_status BETWEEN 0 AND 999);
ALTER TABLE delivery_attempts ADD COLUMN response_excerpt TEXT NOT NULL DEFAULT '' CHECK (typeof(response_excerpt) = 'text');

-- Audit events about deliveries (dead letters, redrives, replays, purges) waiting for the audit service,
-- written in the transaction that makes the change they describe; the same shape as the token service's
-- outbox (see its migrations): claimed by one replica at a time, parked when refused for good.
CREATE TABLE audit_outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key   TEXT    NOT NULL UNIQUE,
    payload           BLOB    NOT NULL,
    create_time       INTEGER NOT NULL,
    claim_owner       TEXT,
    claim_expire_time INTEGER,
    park_time         INTEGER,
    park_reason       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_outbox_queued ON audit_outbox (id) WHERE park_time IS NULL;
