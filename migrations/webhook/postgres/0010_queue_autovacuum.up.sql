-- Deliveries are a queue: each row is rewritten when it is leased and again when it is settled, and an
-- event's row when its status settles. Every rewrite leaves the old version's index entries behind until
-- a vacuum removes them, and a claim reads the due index from its oldest entries, where those of
-- deliveries already handed out lie: measured on 30,000 delivered deliveries, the first claim fetched
-- 30,000 dead rows from the heap (3.6 ms) and every later one still read the 185 index pages that hold
-- their entries (cost growing with the deliveries handled since the last vacuum). PostgreSQL's defaults
-- vacuum a table after a fifth of it changed, which on a large deliveries table means millions of dead
-- entries in front of every claim; these vacuum after 10,000 plus 1% (2% for events).
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000);
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 10000);
