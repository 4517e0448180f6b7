DROP TABLE audit_outbox;
DROP TABLE refresh_events;
DROP TABLE connections;
