DROP INDEX events_source_status_seq;
DROP INDEX events_source_seq;
ALTER TABLE events DROP COLUMN sender_address;
