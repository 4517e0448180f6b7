DROP INDEX channels_due;
DROP INDEX channels_state_id;
DROP INDEX channels_source_id;
DROP TABLE channels;
