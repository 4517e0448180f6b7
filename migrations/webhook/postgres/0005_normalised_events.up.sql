-- What a notification is about, read from the body at ingest beside the raw bytes (which stay as
-- received): Zoho CRM's module, operation, record ids, affected fields and server time, and for other
-- sources the event type at a configured JSON pointer. Events stored before this migration have none.
-- record_ids and affected_fields are JSON arrays of strings (jsonb here, TEXT on SQLite).
ALTER TABLE events ADD COLUMN module text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN operation text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN record_ids jsonb NOT NULL DEFAULT '[]';
ALTER TABLE events ADD COLUMN affected_fields jsonb NOT NULL DEFAULT '[]';
ALTER TABLE events ADD COLUMN server_time timestamptz;
ALTER TABLE events ADD COLUMN event_type text NOT NULL DEFAULT '';

-- ListEvents filters by module, operation or event type: each has an index ending in the list
-- order (txid, seq). They are partial (only events that have the value), so that events without one
-- cost no index entry at ingest; the list query repeats the predicate so that the planner can use them
-- whatever the parameter. Module and operation together read one of the two in order and filter rows
-- (a third index would cost every Zoho ingest another entry).
CREATE INDEX events_module_txid_seq ON events (module, txid, seq) WHERE module <> '';
CREATE INDEX events_operation_txid_seq ON events (operation, txid, seq) WHERE operation <> '';
CREATE INDEX events_event_type_txid_seq ON events (event_type, txid, seq) WHERE event_type <> '';

-- The backlog count reads events_status_txid_seq (status first) as well as it read events_status: one
-- index fewer to keep up on every ingest.
DROP INDEX events_status;
