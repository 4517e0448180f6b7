-- The audit log. sequence is assigned by the service as chain_head.sequence + 1 inside the appending
-- transaction (not by a PostgreSQL sequence, which leaves gaps on rollback).
CREATE TABLE events (
    sequence        bigint      PRIMARY KEY,
    id              uuid        NOT NULL UNIQUE,
    occur_time      timestamptz NOT NULL,
    record_time     timestamptz NOT NULL,
    actor           text        NOT NULL,
    action          text        NOT NULL,
    resource        text        NOT NULL,
    outcome         smallint    NOT NULL,
    metadata        text        NOT NULL, -- text, not jsonb: the hash covers these exact bytes
    idempotency_key text,
    previous_hash   bytea       NOT NULL,
    hash            bytea       NOT NULL
);

CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_actor ON events (actor, sequence);
CREATE INDEX events_action ON events (action, sequence);
CREATE INDEX events_resource ON events (resource, sequence);
CREATE INDEX events_occur_time ON events (occur_time);

-- The head of the hash chain: one row, locked FOR UPDATE by every append, so that replicas append one
-- at a time and each sees the previous hash.
CREATE TABLE chain_head (
    id       smallint PRIMARY KEY CHECK (id = 1),
    sequence bigint   NOT NULL,
    hash     bytea    NOT NULL
);
INSERT INTO chain_head (id, sequence, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Append-only: stored events are never changed or removed through SQL.
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
