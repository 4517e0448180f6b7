DROP INDEX events_event_type_seq;
DROP INDEX events_operation_seq;
DROP INDEX events_module_seq;
ALTER TABLE events DROP COLUMN event_type;
ALTER TABLE events DROP COLUMN server_time;
ALTER TABLE events DROP COLUMN affected_fields;
ALTER TABLE events DROP COLUMN record_ids;
ALTER TABLE events DROP COLUMN operation;
ALTER TABLE events DROP COLUMN module;
