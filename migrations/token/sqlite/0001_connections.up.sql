-- Stored OAuth connections. Token columns hold keyring-sealed values (AES-256-GCM), never plaintext;
-- key_id names the key that sealed them, so that re-sealing can find rows under an old key.
-- Times are Unix microseconds (SQLite has no timestamp type); scopes are a JSON array.
CREATE TABLE connections (
    provider             TEXT    NOT NULL,
    connection_id        TEXT    NOT NULL,
    key_id               TEXT    NOT NULL,
    access_token         BLOB    NOT NULL,
    refresh_token        BLOB,
    client_id            TEXT    NOT NULL DEFAULT '',
    client_secret        BLOB,
    token_type           TEXT    NOT NULL,
    expire_time          INTEGER NOT NULL,
    scopes               TEXT    NOT NULL DEFAULT '[]',
    api_domain           TEXT    NOT NULL DEFAULT '',
    status               INTEGER NOT NULL,
    create_time          INTEGER NOT NULL,
    update_time          INTEGER NOT NULL,
    -- bumped by every write of the sealed columns: re-sealing only replaces what it read
    version              INTEGER NOT NULL DEFAULT 1,
    -- the refresh lease: one replica at a time talks to the provider for this connection
    lease_owner          TEXT,
    lease_expire_time    INTEGER,
    last_refresh_time    INTEGER,
    last_refresh_outcome INTEGER NOT NULL DEFAULT 0,
    last_refresh_error   TEXT    NOT NULL DEFAULT '',
    refresh_failures     INTEGER NOT NULL DEFAULT 0,
    -- no refresh before this time (backoff after failures, provider rate limits)
    next_refresh_time    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, connection_id)
) WITHOUT ROWID;

CREATE INDEX connections_due ON connections (status, expire_time);
CREATE INDEX connections_key_id ON connections (key_id);

-- Every refresh attempt that reached the provider.
CREATE TABLE refresh_events (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    provider             TEXT    NOT NULL,
    connection_id        TEXT    NOT NULL,
    time                 INTEGER NOT NULL,
    outcome              INTEGER NOT NULL,
    previous_expire_time INTEGER NOT NULL,
    new_expire_time      INTEGER,
    error_class          TEXT    NOT NULL DEFAULT '',
    rotated              INTEGER NOT NULL DEFAULT 0,
    replica              TEXT    NOT NULL
);

CREATE INDEX refresh_events_connection ON refresh_events (provider, connection_id, id);

-- Audit events waiting for delivery to the audit service (written in the same transaction as what they
-- describe; deleted once the audit service has them; idempotency_key makes redelivery harmless).
CREATE TABLE audit_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    payload         BLOB    NOT NULL,
    create_time     INTEGER NOT NULL
);
