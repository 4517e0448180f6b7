package store

import (
	"context"
	"time"
)

// AuditRecord is a change to deliveries that the audit log must hold: queued in the audit outbox by the
// transaction that makes the change, so that the change and its record commit together.
type AuditRecord struct {
	// Action is "webhook.delivery.dead_lettered", "webhook.deliveries.redriven",
	// "webhook.deliveries.replayed" or "webhook.events.purged".
	Action string
	// Actor is the principal that asked, or empty when the service acted on its own.
	Actor    string
	Resource string
	Metadata map[string]any
	Time     time.Time
}

// Audit actions.
const (
	AuditDeadLettered = "webhook.delivery.dead_lettered"
	AuditRedriven     = "webhook.deliveries.redriven"
	AuditReplayed     = "webhook.deliveries.replayed"
	AuditPurged       = "webhook.events.purged"
)

// deadLetterRecords describes deliveries that just became dead letters.
func deadLetterRecords(ds []*Delivery, actor string, now time.Time) []AuditRecord {
	out := make([]AuditRecord, 0, len(ds))
	for _, d := range ds {
		out = append(out, AuditRecord{Action: AuditDeadLettered, Actor: actor, Resource: "subscriptions/" + d.SubscriptionID,
			Time: now, Metadata: map[string]any{"delivery_id": d.ID, "event_id": d.EventID, "source": d.Source,
				"attempts": d.AttemptCount, "last_error": d.LastError}})
	}
	return out
}

// redriveRecord describes a redrive of n dead letters.
func redriveRecord(p RedriveParams, n int64) AuditRecord {
	m := map[string]any{"redriven": n}
	if p.Source != "" {
		m["source"] = p.Source
	}
	if !p.From.IsZero() {
		m["start_time"] = p.From.UTC().Format(time.RFC3339Nano)
	}
	if !p.To.IsZero() {
		m["end_time"] = p.To.UTC().Format(time.RFC3339Nano)
	}
	if p.ErrorContains != "" {
		m["error_contains"] = p.ErrorContains
	}
	return AuditRecord{Action: AuditRedriven, Actor: p.Actor, Resource: "subscriptions/" + p.SubscriptionID, Time: p.Now, Metadata: m}
}

// queueAudit queues rs in the audit outbox inside tx.
//
// Placeholder: the audit outbox (migration 0008's audit_outbox, DeliveryTx.OutboxInsert and the sender)
// is being built this session; until then this queues nothing.
func queueAudit(ctx context.Context, tx DeliveryTx, rs []AuditRecord) error {
	_, _, _ = ctx, tx, rs
	return nil
}

// OutboxDriver is what a backend supplies for the audit outbox (being built).
type OutboxDriver interface{}

// OutboxTx is the audit outbox part of a delivery transaction (being built).
type OutboxTx interface{}
