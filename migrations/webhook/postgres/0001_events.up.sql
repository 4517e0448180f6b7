-- Inbound webhooks. seq orders events by arrival for paging; (source, dedupe_key) rejects repeats.
CREATE TABLE events (
    seq               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                uuid        NOT NULL UNIQUE,
    source            text        NOT NULL,
    dedupe_key        text        NOT NULL,
    status            smallint    NOT NULL,
    content_type      text        NOT NULL,
    payload           bytea       NOT NULL,
    headers           jsonb       NOT NULL,
    receive_time      timestamptz NOT NULL,
    update_time       timestamptz NOT NULL,
    attempt_count     integer     NOT NULL DEFAULT 0,
    next_attempt_time timestamptz,
    UNIQUE (source, dedupe_key)
);

CREATE INDEX events_status ON events (status, seq);
