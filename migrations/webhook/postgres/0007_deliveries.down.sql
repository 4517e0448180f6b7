-- Events stay as they are: which of them were pending before 0007 is not kept.
DROP TABLE delivery_attempts;
DROP TABLE deliveries;
DROP TABLE subscriptions;
