-- Signed checkpoints (services/audit/checkpoint.go): each row is the Ed25519 signature of signed_text,
-- which holds every other column but id, public_key and signature. The public key that signed is kept
-- with each checkpoint, so that checkpoints signed before a key rotation still verify and the old key
-- can still be served (GetSigningKey). Inserts take an EXCLUSIVE lock on the table for their
-- transaction, so that ids commit in the order they are numbered and follow the chain head.
CREATE TABLE checkpoints (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sequence        bigint      NOT NULL,
    hash            bytea       NOT NULL,
    time            timestamptz NOT NULL,
    kind            smallint    NOT NULL,
    anchor_sequence bigint      NOT NULL,
    anchor_hash     bytea       NOT NULL,
    key_id          text        NOT NULL,
    public_key      bytea       NOT NULL,
    signed_text     text        NOT NULL,
    signature       bytea       NOT NULL
);
CREATE INDEX checkpoints_sequence ON checkpoints (sequence, id);
CREATE INDEX checkpoints_key_id ON checkpoints (key_id, id);

-- Checkpoints are statements already signed and perhaps already handed out: never changed or removed.
CREATE FUNCTION checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only';
END;
$$;
CREATE TRIGGER checkpoints_no_change BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoints_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION checkpoints_append_only();

-- The retention anchor: events up to anchor_sequence were removed by retention, and the first retained
-- event links to anchor_hash (the hash of the last removed one). Zero and 32 zero bytes until the first
-- cut.
ALTER TABLE chain_head ADD COLUMN anchor_sequence bigint NOT NULL DEFAULT 0;
ALTER TABLE chain_head ADD COLUMN anchor_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex');

-- The anchor only moves forward, to an event that is stored with that hash and is below the head (the
-- head event is never removed, so the head always has a row). Retention moves it in the same
-- transaction as, and before, the delete below it.
CREATE FUNCTION chain_head_anchor_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.anchor_sequence <= OLD.anchor_sequence OR NEW.anchor_sequence >= NEW.sequence
        OR NOT EXISTS (SELECT 1 FROM events WHERE sequence = NEW.anchor_sequence AND hash = NEW.anchor_hash) THEN
        RAISE EXCEPTION 'the audit retention anchor only moves forward, to a stored event below the head';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER chain_head_anchor_forward BEFORE UPDATE OF anchor_sequence, anchor_hash ON chain_head
    FOR EACH ROW EXECUTE FUNCTION chain_head_anchor_forward();

-- Events stay append-only, except that retention may remove those at or below the anchor. The update
-- guard of 0001 (events_no_update) becomes update-only; deletes are checked once per statement against
-- the anchor (a per-row lookup of chain_head would cost more than the delete of a batch); TRUNCATE,
-- which skips row triggers, is refused.
DROP TRIGGER events_no_update ON events;
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE FUNCTION events_delete_below_anchor() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM removed WHERE sequence > (SELECT anchor_sequence FROM chain_head WHERE id = 1)) THEN
        RAISE EXCEPTION 'audit events are append-only (retention removes only events at or below the anchor)';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_no_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION events_delete_below_anchor();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
