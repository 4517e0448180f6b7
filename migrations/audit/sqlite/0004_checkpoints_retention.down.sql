-- For development databases only: events removed by retention do not come back, and the restored guard
-- refuses every delete again.
DROP TRIGGER events_no_delete;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
DROP TRIGGER chain_head_anchor_forward;
ALTER TABLE chain_head DROP COLUMN anchor_hash;
ALTER TABLE chain_head DROP COLUMN anchor_sequence;
DROP TABLE checkpoints;
