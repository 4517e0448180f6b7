-- Stored OAuth connections. Token columns hold keyring-sealed values (AES-256-GCM), never plaintext;
-- key_id names the key that sealed them, so that re-sealing can find rows under an old key.
CREATE TABLE connections (
    provider             text        NOT NULL,
    connection_id        text        NOT NULL,
    key_id               text        NOT NULL,
    access_token         bytea       NOT NULL,
    refresh_token        bytea,
    client_id            text        NOT NULL DEFAULT '',
    client_secret        bytea,
    token_type           text        NOT NULL,
    expire_time          timestamptz NOT NULL,
    scopes               text        NOT NULL DEFAULT '[]', -- JSON array, as in SQLite: one SQL implementation serves both
    api_domain           text        NOT NULL DEFAULT '',
    status               smallint    NOT NULL,
    create_time          timestamptz NOT NULL,
    update_time          timestamptz NOT NULL,
    -- bumped by every write of the sealed columns: re-sealing only replaces what it read
    version              bigint      NOT NULL DEFAULT 1,
    -- the refresh lease: one replica at a time talks to the provider for this connection
    lease_owner          text,
    lease_expire_time    timestamptz,
    last_refresh_time    timestamptz,
    last_refresh_outcome smallint    NOT NULL DEFAULT 0,
    last_refresh_error   text        NOT NULL DEFAULT '',
    refresh_failures     integer     NOT NULL DEFAULT 0,
    -- no refresh before this time (backoff after failures, provider rate limits)
    next_refresh_time    timestamptz NOT NULL DEFAULT 'epoch',
    PRIMARY KEY (provider, connection_id)
);

CREATE INDEX connections_due ON connections (status, expire_time);
CREATE INDEX connections_key_id ON connections (key_id);

-- Every refresh attempt that reached the provider.
CREATE TABLE refresh_events (
    id                   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider             text        NOT NULL,
    connection_id        text        NOT NULL,
    time                 timestamptz NOT NULL,
    outcome              smallint    NOT NULL,
    previous_expire_time timestamptz NOT NULL,
    new_expire_time      timestamptz,
    error_class          text        NOT NULL DEFAULT '',
    rotated              smallint    NOT NULL DEFAULT 0, -- 0/1, as in SQLite: one SQL implementation serves both
    replica              text        NOT NULL
);

CREATE INDEX refresh_events_connection ON refresh_events (provider, connection_id, id);

-- Audit events waiting for delivery to the audit service (written in the same transaction as what they
-- describe; deleted once the audit service has them; idempotency_key makes redelivery harmless).
CREATE TABLE audit_outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text        NOT NULL UNIQUE,
    payload         bytea       NOT NULL,
    create_time     timestamptz NOT NULL
);
