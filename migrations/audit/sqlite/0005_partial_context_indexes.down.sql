-- The whole indexes of 0003 again, unset values included.
DROP INDEX events_actor_type;
DROP INDEX events_session_id;
DROP INDEX events_request_id;
DROP INDEX events_source_service;
CREATE INDEX events_actor_type ON events (actor_type, sequence);
CREATE INDEX events_session_id ON events (session_id, sequence);
CREATE INDEX events_request_id ON events (request_id, sequence);
CREATE INDEX events_source_service ON events (source_service, sequence);
