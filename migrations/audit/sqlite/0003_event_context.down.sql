DROP INDEX events_source_service;
DROP INDEX events_request_id;
DROP INDEX events_session_id;
DROP INDEX events_actor_type;
-- Events hashed with version 3 no longer verify once these columns are gone: the down migration is for
-- development databases only.
ALTER TABLE events DROP COLUMN source_service;
ALTER TABLE events DROP COLUMN request_id;
ALTER TABLE events DROP COLUMN session_id;
ALTER TABLE events DROP COLUMN actor_type;
