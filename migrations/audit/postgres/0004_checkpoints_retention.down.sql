-- For development databases only: events removed by retention do not come back, and the restored guard
-- refuses every delete again.
DROP TRIGGER events_no_truncate ON events;
DROP TRIGGER events_no_delete ON events;
DROP FUNCTION events_delete_below_anchor();
DROP TRIGGER events_no_update ON events;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
DROP TRIGGER chain_head_anchor_forward ON chain_head;
DROP FUNCTION chain_head_anchor_forward();
ALTER TABLE chain_head DROP COLUMN anchor_hash;
ALTER TABLE chain_head DROP COLUMN anchor_sequence;
DROP TABLE checkpoints;
DROP FUNCTION checkpoints_append_only();
