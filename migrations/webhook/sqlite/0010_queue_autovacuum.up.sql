-- Nothing to do on SQLite: PostgreSQL's 0010 makes autovacuum keep up with the delivery queue; SQLite
-- reuses the pages of rewritten rows itself. (Kept so that both dialects share version numbers.)
SELECT 1;
