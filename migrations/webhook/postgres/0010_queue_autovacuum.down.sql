ALTER TABLE deliveries RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
ALTER TABLE events RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold);
