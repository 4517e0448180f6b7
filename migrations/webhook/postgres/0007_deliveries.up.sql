-- Delivery (issue #10): subscriptions, one delivery per event and matching subscription, and the history
-- of every hand-out. Durations are milliseconds (the subscription's) or microseconds (an attempt's), as
-- bigint, so that both dialects store the same numbers; the CHECKs refuse what no code path writes.

-- A subscription's id is a UUID (UUIDv7: id order is creation order), uuid like events.id. uuid
-- compares case-insensitively here and SQLite's text does not: the store only ever passes the canonical
-- lower-case form (store.Deliveries refuses any other before a query), so ids compare alike on both;
-- uuid order is the order of the lower-case text. Filters are jsonb arrays of strings, '[]' for "any".
-- state: 1 active, 2 paused.
CREATE TABLE subscriptions (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL UNIQUE CHECK (length(name) > 0),
    sources         jsonb       NOT NULL CHECK (jsonb_typeof(sources) = 'array'),
    modules         jsonb       NOT NULL CHECK (jsonb_typeof(modules) = 'array'),
    operations      jsonb       NOT NULL CHECK (jsonb_typeof(operations) = 'array'),
    event_types     jsonb       NOT NULL CHECK (jsonb_typeof(event_types) = 'array'),
    max_retries     integer     NOT NULL CHECK (max_retries >= 0),
    backoff_base_ms bigint      NOT NULL CHECK (backoff_base_ms >= 0),
    backoff_cap_ms  bigint      NOT NULL CHECK (backoff_cap_ms >= backoff_base_ms),
    lease_ms        bigint      NOT NULL CHECK (lease_ms > 0),
    state           smallint    NOT NULL CHECK (state IN (1, 2)),
    create_time     timestamptz NOT NULL,
    update_time     timestamptz NOT NULL
);

-- One event owed to one subscription. status: 1 pending, 2 leased, 3 delivered, 4 failed, 5 dead letter.
-- available_time is when it is handed out next (pending, failed) or when its lease ends (leased), NULL
-- once delivered or dead. lease counts the hand-outs (an ack names the current one). An identity is
-- never reused, so an ack id of a deleted delivery cannot name a new one. source and event_receive_time
-- are the event's, copied so that redrive filters read no events. No foreign keys: a foreign key check
-- per fanned-out row would cost every ingest, and it would fail an ingest racing a subscription delete
-- where the fan-out skips the subscription instead (see fanout.go and store.Deliveries).
CREATE TABLE deliveries (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id    uuid        NOT NULL,
    event_id           uuid        NOT NULL,
    source             text        NOT NULL,
    status             smallint    NOT NULL CHECK (status BETWEEN 1 AND 5),
    attempt_count      integer     NOT NULL CHECK (attempt_count >= 0),
    available_time     timestamptz CHECK ((available_time IS NULL) = (status IN (3, 5))),
    lease              bigint      NOT NULL CHECK (lease >= 0),
    consumer           text        NOT NULL,
    lease_start_time   timestamptz,
    last_error         text        NOT NULL,
    event_receive_time timestamptz NOT NULL,
    create_time        timestamptz NOT NULL,
    update_time        timestamptz NOT NULL,
    UNIQUE (subscription_id, event_id)
);

-- The claim: one subscription's deliveries due now, oldest first. Partial on the statuses a claim takes,
-- so that delivered and dead rows (nearly all of them, in time) cost the claim nothing; the query names
-- "status IN (1, 2, 4)" literally so that the planner can prove it may use this index.
CREATE INDEX deliveries_due ON deliveries (subscription_id, available_time, id) WHERE status IN (1, 2, 4);
-- ListDeliveries pages in id order, by subscription, by event, or by status.
CREATE INDEX deliveries_subscription_id ON deliveries (subscription_id, id);
CREATE INDEX deliveries_event_id ON deliveries (event_id, id);
CREATE INDEX deliveries_status_id ON deliveries (status, id);
-- In-flight count of one consumer: its leased deliveries whose lease has not ended.
CREATE INDEX deliveries_in_flight ON deliveries (subscription_id, consumer, available_time) WHERE status = 2;

-- Each hand-out of a delivery and how it ended (outcome: acked, nacked, lease_expired); number is the
-- delivery's lease when it was handed out (the hand-out's number, which a redrive does not reset). duration_us is microseconds: an ack a consumer sends
-- at once takes well under a millisecond.
CREATE TABLE delivery_attempts (
    delivery_id bigint      NOT NULL,
    number      integer     NOT NULL CHECK (number >= 1),
    start_time  timestamptz NOT NULL,
    duration_us bigint      NOT NULL CHECK (duration_us >= 0),
    outcome     text        NOT NULL CHECK (outcome IN ('acked', 'nacked', 'lease_expired')),
    error       text        NOT NULL,
    consumer    text        NOT NULL,
    PRIMARY KEY (delivery_id, number)
);

-- Before this version nothing delivered events and no subscription existed: every stored event is one
-- no subscription wants, which is now stored as delivered. (A subscription created later receives no
-- history unless it asks for a replay.)
UPDATE events SET status = 3 WHERE status IN (1, 2, 4);
