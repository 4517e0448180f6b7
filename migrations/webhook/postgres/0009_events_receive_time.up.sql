-- Replay and purge read events by receive time: a replay the events of a time range, in receive order,
-- a page at a time; the retention purge the delivered events received before a time, oldest first. Both
-- read this index in (receive_time, seq) order, so that a page costs its own rows: without it each page
-- scanned the table from its start, and the purge's last page every event kept. seq is named (SQLite's
-- index ends in the rowid, which is seq, by itself). Its entries are appended in receive order, the
-- cheapest an index costs an ingest.
-- Built inside the migration's transaction, this blocks writes to events while it builds: on a large
-- table, build it first without blocking (CREATE INDEX CONCURRENTLY events_receive_time ON events
-- (receive_time, seq)), then migrate; IF NOT EXISTS then keeps it.
CREATE INDEX IF NOT EXISTS events_receive_time ON events (receive_time, seq);
