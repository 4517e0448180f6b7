DROP INDEX events_source_status_txid_seq;
DROP INDEX events_status_txid_seq;
DROP INDEX events_source_txid_seq;
DROP INDEX events_txid_seq;
CREATE INDEX events_source_seq ON events (source, seq);
CREATE INDEX events_source_status_seq ON events (source, status, seq);
ALTER TABLE events DROP COLUMN txid;
