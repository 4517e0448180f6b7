// Package processtest holds the webhook service's tests across operating-system processes: sergas-webhook
// is built and run as its own process (internal/proctest), killed with SIGKILL while concurrent senders
// ingest signed deliveries, restarted on the same database, and what it stored is read back through its
// own API. It has no code of its own.
package processtest
