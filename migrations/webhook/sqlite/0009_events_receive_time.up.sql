-- Replay and purge read events by receive time: a replay the events of a time range, in receive order,
-- a page at a time; the retention purge the delivered events received before a time, oldest first. Both
-- read this index in (receive_time, seq) order (seq is the rowid, which every SQLite index ends in), so
-- that a page costs its own rows: without it each page scanned the table from its start, and the purge's
-- last page every event kept. Its entries are appended in receive order, the cheapest an index costs an
-- ingest (measured: see the replay/purge report, BenchmarkFanOut).
CREATE INDEX events_receive_time ON events (receive_time);
