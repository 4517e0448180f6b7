-- The audit log. sequence is assigned by the service as chain_head.sequence + 1 inside the appending
-- transaction, so it has no gaps; it is the rowid, so reads in sequence order are index scans.
-- Times are Unix microseconds; metadata is the exact JSON text that the hash covers.
CREATE TABLE events (
    sequence        INTEGER PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    occur_time      INTEGER NOT NULL,
    record_time     INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    outcome         INTEGER NOT NULL,
    metadata        TEXT    NOT NULL,
    idempotency_key TEXT,
    previous_hash   BLOB    NOT NULL,
    hash            BLOB    NOT NULL
);

CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_actor ON events (actor, sequence);
CREATE INDEX events_action ON events (action, sequence);
CREATE INDEX events_resource ON events (resource, sequence);
CREATE INDEX events_occur_time ON events (occur_time);

-- The head of the hash chain: one row, locked by every append, so appends serialise on it.
CREATE TABLE chain_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    sequence INTEGER NOT NULL,
    hash     BLOB    NOT NULL
);
INSERT INTO chain_head (id, sequence, hash) VALUES (1, 0, zeroblob(32));

-- Append-only: stored events are never changed or removed through SQL.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
