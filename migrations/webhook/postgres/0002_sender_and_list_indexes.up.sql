-- The address the delivery came from (the connection's, or the one a trusted proxy reported), kept as
-- text rather than inet so that both dialects store and return the same string. Events stored before
-- this migration have ''.
ALTER TABLE events ADD COLUMN sender_address text NOT NULL DEFAULT '';

-- ListEvents filters by source, by status, or by both, and pages by seq. Each filter has an index that
-- ends in seq, so a page is an index range read in order: no sort of every matching row. (The status
-- filter uses events_status from 0001; no filter uses the primary key.)
CREATE INDEX events_source_seq ON events (source, seq);
CREATE INDEX events_source_status_seq ON events (source, status, seq);
