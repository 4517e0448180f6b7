-- Signed checkpoints (services/audit/checkpoint.go): each row is the Ed25519 signature of signed_text,
-- which holds every other column but id, public_key and signature. The public key that signed is kept
-- with each checkpoint, so that checkpoints signed before a key rotation still verify and the old key
-- can still be served (GetSigningKey). time is Unix microseconds, as in events.
CREATE TABLE checkpoints (
    id              INTEGER PRIMARY KEY,
    sequence        INTEGER NOT NULL,
    hash            BLOB    NOT NULL,
    time            INTEGER NOT NULL,
    kind            INTEGER NOT NULL,
    anchor_sequence INTEGER NOT NULL,
    anchor_hash     BLOB    NOT NULL,
    key_id          TEXT    NOT NULL,
    public_key      BLOB    NOT NULL,
    signed_text     TEXT    NOT NULL,
    signature       BLOB    NOT NULL
);
CREATE INDEX checkpoints_sequence ON checkpoints (sequence, id);
CREATE INDEX checkpoints_key_id ON checkpoints (key_id, id);

-- Checkpoints are statements already signed and perhaps already handed out: never changed or removed.
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

-- The retention anchor: events up to anchor_sequence were removed by retention, and the first retained
-- event links to anchor_hash (the hash of the last removed one). Zero and 32 zero bytes until the first
-- cut.
ALTER TABLE chain_head ADD COLUMN anchor_sequence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chain_head ADD COLUMN anchor_hash BLOB NOT NULL DEFAULT x'0000000000000000000000000000000000000000000000000000000000000000';

-- The anchor only moves forward, to an event that is stored with that hash and is below the head (the
-- head event is never removed, so the head always has a row). Retention moves it in the same
-- transaction as, and before, the delete below it.
CREATE TRIGGER chain_head_anchor_forward BEFORE UPDATE OF anchor_sequence, anchor_hash ON chain_head
WHEN NEW.anchor_sequence <= OLD.anchor_sequence OR NEW.anchor_sequence >= NEW.sequence
    OR NOT EXISTS (SELECT 1 FROM events WHERE sequence = NEW.anchor_sequence AND hash = NEW.anchor_hash)
BEGIN
    SELECT RAISE(ABORT, 'the audit retention anchor only moves forward, to a stored event below the head');
END;

-- Events stay append-only, except that retention may remove those at or below the anchor (the update
-- guard of 0001 is unchanged).
DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
WHEN OLD.sequence > (SELECT anchor_sequence FROM chain_head WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only (retention removes only events at or below the anchor)');
END;
