-- Events stay as they are: which of them were pending before 0007 is not kept.
DROP TABLE delivery_attempts;
DROP INDEX deliveries_in_flight;
DROP INDEX deliveries_status_id;
DROP INDEX deliveries_event_id;
DROP INDEX deliveries_subscription_id;
DROP INDEX deliveries_due;
DROP TABLE deliveries;
DROP TABLE subscriptions;
