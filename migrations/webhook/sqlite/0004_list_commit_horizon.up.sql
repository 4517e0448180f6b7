-- Nothing to do on SQLite: PostgreSQL's 0004 adds the inserting transaction's id so that lists never pass
-- an event that has yet to commit; SQLite's single writer commits in seq order, so seq is already such a
-- cursor. (Kept so that both dialects share version numbers.)
SELECT 1;
