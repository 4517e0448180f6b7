-- Many writers leave the context fields of 0003 unset (actor type 0, session, request id and source
-- service ''), and ListEvents never filters by an unset value (an empty filter means no filter), so their
-- indexes need not hold those events: each index an insert skips is one B-tree descent and one dirtied
-- page less per event. The list query adds the implied term (session_id <> '' beside session_id = ?)
-- so that the planner knows the partial index covers the match.
DROP INDEX events_actor_type;
DROP INDEX events_session_id;
DROP INDEX events_request_id;
DROP INDEX events_source_service;
CREATE INDEX events_actor_type ON events (actor_type, sequence) WHERE actor_type <> 0;
CREATE INDEX events_session_id ON events (session_id, sequence) WHERE session_id <> '';
CREATE INDEX events_request_id ON events (request_id, sequence) WHERE request_id <> '';
CREATE INDEX events_source_service ON events (source_service, sequence) WHERE source_service <> '';
