// Package processtest holds the webhook service's tests across operating-system processes: sergas-webhook
// is built and run as its own process (internal/proctest), killed with SIGKILL while concurrent senders
// ingest signed deliveries or while a consumer streams deliveries, restarted on the same database, or run
// as three replicas on one PostgreSQL schema with consumers on each; what it stored and handed out is
// checked through its own API (the delivery tests keep a ledger of every hand-out and settlement). It has
// no code of its own.
package processtest
