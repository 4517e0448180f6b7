-- ListEvents pages by (txid, seq) below the oldest running transaction, not by seq: an identity value
-- is taken at insert and transactions commit in any order, so a reader paging by seq alone could pass
-- event 11 before event 10 commits and never list 10. txid is the inserting transaction's id
-- (pg_current_xact_id(), 64 bits, never wrapping; bigint because xid8 has no cast to it but through
-- text). Events stored before this migration committed long ago: they get 0 and list first, in seq
-- order. SQLite's single writer commits in seq order and needs none of this (its 0004 is empty).
ALTER TABLE events ADD COLUMN txid bigint NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text)::bigint;

-- Each list filter has an index ending in the list order (txid, seq), so a page is an index range read
-- in order. events_status (status, seq) stays for the backlog count; the seq-ordered list indexes go.
DROP INDEX events_source_seq;
DROP INDEX events_source_status_seq;
CREATE INDEX events_txid_seq ON events (txid, seq);
CREATE INDEX events_source_txid_seq ON events (source, txid, seq);
CREATE INDEX events_status_txid_seq ON events (status, txid, seq);
CREATE INDEX events_source_status_txid_seq ON events (source, status, txid, seq);
