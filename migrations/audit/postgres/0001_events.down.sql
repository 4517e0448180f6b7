DROP TABLE chain_head;
DROP TABLE events;
DROP FUNCTION events_append_only();
