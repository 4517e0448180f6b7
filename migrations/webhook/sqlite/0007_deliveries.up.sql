-- Delivery (issue #10): subscriptions, one delivery per event and matching subscription, and the history
-- of every hand-out. Times are Unix microseconds and durations milliseconds, as INTEGERs; the CHECKs
-- refuse what no code path writes, so that a bug or a hand edit cannot leave a row the service misreads.

-- A subscription's id is a canonical lower-case UUID (UUIDv7, so id order is creation order), compared
-- as text: PostgreSQL keeps it as uuid, whose order is the same. Filters are JSON arrays of strings,
-- '[]' for "any" (the fan-out compares with that literal). state: 1 active, 2 paused.
CREATE TABLE subscriptions (
    id              TEXT    NOT NULL PRIMARY KEY
        CHECK (typeof(id) = 'text' AND length(id) = 36 AND id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    name            TEXT    NOT NULL UNIQUE CHECK (typeof(name) = 'text' AND length(name) > 0),
    sources         TEXT    NOT NULL CHECK (json_valid(sources) AND json_type(sources) = 'array'),
    modules         TEXT    NOT NULL CHECK (json_valid(modules) AND json_type(modules) = 'array'),
    operations      TEXT    NOT NULL CHECK (json_valid(operations) AND json_type(operations) = 'array'),
    event_types     TEXT    NOT NULL CHECK (json_valid(event_types) AND json_type(event_types) = 'array'),
    max_retries     INTEGER NOT NULL CHECK (typeof(max_retries) = 'integer' AND max_retries >= 0),
    backoff_base_ms INTEGER NOT NULL CHECK (typeof(backoff_base_ms) = 'integer' AND backoff_base_ms >= 0),
    backoff_cap_ms  INTEGER NOT NULL CHECK (typeof(backoff_cap_ms) = 'integer' AND backoff_cap_ms >= backoff_base_ms),
    lease_ms        INTEGER NOT NULL CHECK (typeof(lease_ms) = 'integer' AND lease_ms > 0),
    state           INTEGER NOT NULL CHECK (state IN (1, 2)),
    create_time     INTEGER NOT NULL CHECK (typeof(create_time) = 'integer'),
    update_time     INTEGER NOT NULL CHECK (typeof(update_time) = 'integer')
) WITHOUT ROWID;

-- One event owed to one subscription. status: 1 pending, 2 leased, 3 delivered, 4 failed, 5 dead letter.
-- available_time is when it is handed out next (pending, failed) or when its lease ends (leased), NULL
-- once delivered or dead. lease counts the hand-outs (an ack names the current one). AUTOINCREMENT so
-- that an id is never reused after a delete: an ack id of a deleted delivery must not name a new one.
-- source and event_receive_time are the event's, copied so that redrive filters read no events.
-- No foreign keys: the algorithms above the drivers delete in order (see store.Deliveries).
CREATE TABLE deliveries (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id    TEXT    NOT NULL,
    event_id           TEXT    NOT NULL,
    source             TEXT    NOT NULL,
    status             INTEGER NOT NULL CHECK (status BETWEEN 1 AND 5),
    attempt_count      INTEGER NOT NULL CHECK (attempt_count >= 0),
    available_time     INTEGER CHECK ((available_time IS NULL) = (status IN (3, 5))),
    lease              INTEGER NOT NULL CHECK (lease >= 0),
    consumer           TEXT    NOT NULL,
    lease_start_time   INTEGER,
    last_error         TEXT    NOT NULL,
    event_receive_time INTEGER NOT NULL,
    create_time        INTEGER NOT NULL,
    update_time        INTEGER NOT NULL,
    UNIQUE (subscription_id, event_id)
);

-- The claim: one subscription's deliveries due now, oldest first. Partial on the statuses a claim takes,
-- so that delivered and dead rows (nearly all of them, in time) cost the claim nothing; the query names
-- "status IN (1, 2, 4)" literally (SQLite uses a partial index only when the WHERE repeats its terms).
CREATE INDEX deliveries_due ON deliveries (subscription_id, available_time, id) WHERE status IN (1, 2, 4);
-- ListDeliveries pages in id order, by subscription, by event, or by status.
CREATE INDEX deliveries_subscription_id ON deliveries (subscription_id, id);
CREATE INDEX deliveries_event_id ON deliveries (event_id, id);
CREATE INDEX deliveries_status_id ON deliveries (status, id);
-- In-flight count of one consumer: its leased deliveries whose lease has not ended.
CREATE INDEX deliveries_in_flight ON deliveries (subscription_id, consumer, available_time) WHERE status = 2;

-- Each hand-out of a delivery and how it ended (outcome: acked, nacked, lease_expired); number is the
-- delivery's lease when it was handed out (the hand-out's number, which a redrive does not reset). duration_us is microseconds, not milliseconds like the
-- subscription's durations: an ack a consumer sends at once takes well under one.
CREATE TABLE delivery_attempts (
    delivery_id INTEGER NOT NULL,
    number      INTEGER NOT NULL CHECK (number >= 1),
    start_time  INTEGER NOT NULL,
    duration_us INTEGER NOT NULL CHECK (duration_us >= 0),
    outcome     TEXT    NOT NULL CHECK (outcome IN ('acked', 'nacked', 'lease_expired')),
    error       TEXT    NOT NULL,
    consumer    TEXT    NOT NULL,
    PRIMARY KEY (delivery_id, number)
) WITHOUT ROWID;

-- Before this version nothing delivered events and no subscription existed: every stored event is one
-- no subscription wants, which is now stored as delivered. (A subscription created later receives no
-- history unless it asks for a replay.)
UPDATE events SET status = 3 WHERE status IN (1, 2, 4);
