-- What agents record about the context of an action: the kind of actor (0 unspecified, 1 agent, 2 user,
-- 3 service, as auditv1.ActorType numbers them), its session, the request or trace id and the service that
-- recorded it. Events stored before keep the defaults and their hash version (1 or 2), which never covered
-- these columns; every new event is hashed with version 3, which covers them (services/audit/chain).
ALTER TABLE events ADD COLUMN actor_type INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN source_service TEXT NOT NULL DEFAULT '';

-- One index per new ListEvents filter, ending in sequence, so that a page in either direction is a range
-- read of the index and never a sort of every match (as in 0002).
CREATE INDEX events_actor_type ON events (actor_type, sequence);
CREATE INDEX events_session_id ON events (session_id, sequence);
CREATE INDEX events_request_id ON events (request_id, sequence);
CREATE INDEX events_source_service ON events (source_service, sequence);
