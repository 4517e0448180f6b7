package store

import "github.com/sergas/core/internal/storecopy"

// CopySpec declares the webhook service's tables for sergasctl copy and its portable backups: events
// with their payloads and headers, channels and subscriptions with their sealed secrets, deliveries
// with their statuses, leases and attempt history, and the audit outbox. events.txid is PostgreSQL's
// commit horizon for listing (the inserting transaction's id): it is never copied, and copied events
// get 0, "committed long ago", so that they list before anything the target's own transactions add.
var CopySpec = storecopy.Spec{
	Service: "webhook",
	Tables: []storecopy.Table{
		{Name: "events", Key: []string{"seq"}, Identity: "seq", Local: []string{"txid"}, LocalValue: 0},
		{Name: "channels", Key: []string{"id"}},
		{Name: "subscriptions", Key: []string{"id"}},
		{Name: "deliveries", Key: []string{"id"}, Identity: "id"},
		{Name: "delivery_attempts", Key: []string{"delivery_id", "number"}},
		{Name: "audit_outbox", Key: []string{"id"}, Identity: "id"},
	},
}
