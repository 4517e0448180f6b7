-- Inbound webhooks. seq orders events by arrival for paging; (source, dedupe_key) rejects repeats.
-- Times are Unix microseconds; headers are a JSON array of {name, values}.
CREATE TABLE events (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    source            TEXT    NOT NULL,
    dedupe_key        TEXT    NOT NULL,
    status            INTEGER NOT NULL,
    content_type      TEXT    NOT NULL,
    payload           BLOB    NOT NULL,
    headers           TEXT    NOT NULL,
    receive_time      INTEGER NOT NULL,
    update_time       INTEGER NOT NULL,
    attempt_count     INTEGER NOT NULL DEFAULT 0,
    next_attempt_time INTEGER,
    UNIQUE (source, dedupe_key)
);

CREATE INDEX events_status ON events (status, seq);
