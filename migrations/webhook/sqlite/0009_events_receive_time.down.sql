DROP INDEX events_receive_time;
