-- What a notification is about, read from the body at ingest beside the raw bytes (which stay as
-- received): Zoho CRM's module, operation, record ids, affected fields and server time (Unix
-- microseconds), and for other sources the event type at a configured JSON pointer. Events stored before
-- this migration have none. record_ids and affected_fields are JSON arrays of strings.
ALTER TABLE events ADD COLUMN module TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN operation TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN record_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE events ADD COLUMN affected_fields TEXT NOT NULL DEFAULT '[]';
ALTER TABLE events ADD COLUMN server_time INTEGER;
ALTER TABLE events ADD COLUMN event_type TEXT NOT NULL DEFAULT '';

-- ListEvents filters by module, operation or event type: each has an index ending in seq, the
-- list order here. They are partial (only events that have the value), so that events without one cost
-- no index entry at ingest; the list query repeats the predicate (SQLite uses a partial index only when
-- the query's WHERE names its condition). Module and operation together read one of the two in order and
-- filter rows (a third index would cost every Zoho ingest another entry).
CREATE INDEX events_module_seq ON events (module, seq) WHERE module <> '';
CREATE INDEX events_operation_seq ON events (operation, seq) WHERE operation <> '';
CREATE INDEX events_event_type_seq ON events (event_type, seq) WHERE event_type <> '';
