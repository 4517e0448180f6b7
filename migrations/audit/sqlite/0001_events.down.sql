DROP TABLE chain_head;
DROP TABLE events;
