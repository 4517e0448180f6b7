package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auditclient"
	"github.com/sergas/core/internal/auditoutbox"
	"github.com/sergas/core/internal/errs"
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
	// Metadata holds what a protobuf Struct can (strings, numbers, bools, nil, []any, map[string]any);
	// anything else is recorded as text.
	Metadata map[string]any
	// Time is when the change happened (now when zero).
	Time time.Time
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

// replica names this process in the actor of the events the service records on its own
// ("sergas-webhook/<replica>"), as the token service names its replicas.
var replica = uuid.NewString()[:8]

// Replica is this process's replica name (the actor suffix of the events it records on its own).
func Replica() string { return replica }

// queueAudit queues rs in the audit outbox inside tx, so that they commit or roll back with the change
// they describe. Each becomes the RecordEventRequest the sender will deliver, its idempotency key fixed
// now: a retried delivery is stored once by the audit service.
func queueAudit(ctx context.Context, tx DeliveryTx, rs []AuditRecord) error {
	if len(rs) == 0 {
		return nil
	}
	es := make([]auditoutbox.Entry, 0, len(rs))
	for _, r := range rs {
		e, err := auditEntry(ctx, r)
		if err != nil {
			return err
		}
		es = append(es, e)
	}
	return tx.OutboxInsert(ctx, es)
}

// auditEntry is r as an outbox entry, queued while serving ctx's request (see auditoutbox.NewEntryContext).
func auditEntry(ctx context.Context, r AuditRecord) (auditoutbox.Entry, error) {
	// An operator's request names them; what the service does on its own (a lease that expired, a nack
	// by a consumer out of attempts) is the service's.
	actor, actorType := "sergas-webhook/"+replica, auditv1.ActorType_ACTOR_TYPE_SERVICE
	if r.Actor != "" {
		actor, actorType = auditclient.Actor(r.Actor), auditv1.ActorType_ACTOR_TYPE_UNSPECIFIED
	}
	t := micro(r.Time)
	if t.IsZero() {
		t = micro(time.Now())
	}
	e, err := auditoutbox.NewEntryContext(ctx, "webhook", &auditv1.RecordEventRequest{Actor: actor, ActorType: actorType, Action: r.Action,
		Resource: r.Resource, Outcome: auditv1.Outcome_OUTCOME_SUCCESS, OccurTime: timestamppb.New(t), Metadata: auditMetadata(r.Metadata),
		SourceService: "sergas-webhook"}, t)
	if err != nil {
		return auditoutbox.Entry{}, errs.Wrap(errs.KindInternal, err, "audit record")
	}
	return e, nil
}

// auditMetadata is m as the event's metadata. A value a protobuf Struct cannot hold (a time, an
// integer slice) is kept as text (a time in RFC 3339) rather than failing the change it describes.
func auditMetadata(m map[string]any) *structpb.Struct {
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	for k, v := range m {
		pv, err := structpb.NewValue(v)
		if err != nil {
			switch x := v.(type) {
			case time.Time:
				pv = structpb.NewStringValue(x.UTC().Format(time.RFC3339Nano))
			default:
				pv = structpb.NewStringValue(fmt.Sprint(v))
			}
		}
		out.Fields[k] = pv
	}
	return out
}

// OutboxDriver is what a backend supplies for the audit outbox: the sender's claim, release, park and
// delete (auditoutbox.Store), and a read for inspection and tests. Times are whole microseconds.
type OutboxDriver interface {
	auditoutbox.Store
	// OutboxList returns the oldest limit entries, parked or not.
	OutboxList(ctx context.Context, limit int) ([]auditoutbox.Entry, error)
}

// OutboxTx is the audit outbox part of a delivery transaction.
type OutboxTx interface {
	// OutboxInsert queues es (idempotency key, payload, create time) in the transaction.
	OutboxInsert(ctx context.Context, es []auditoutbox.Entry) error
}

// OutboxStore is the audit outbox as the service sees it: what its sender drains, and a read of what
// waits there. Every backend's Store has it (through Deliveries).
type OutboxStore interface {
	auditoutbox.Store
	OutboxList(ctx context.Context, limit int) ([]auditoutbox.Entry, error)
}

var _ OutboxStore = Deliveries{}

// OutboxClaim implements OutboxStore.
func (s Deliveries) OutboxClaim(ctx context.Context, p auditoutbox.ClaimParams) ([]auditoutbox.Entry, error) {
	if p.Limit <= 0 {
		return nil, errs.Invalid("outbox claim limit must be positive")
	}
	p.Now, p.Until = micro(p.Now), micro(p.Until)
	return s.D.OutboxClaim(ctx, p)
}

// OutboxRelease implements OutboxStore.
func (s Deliveries) OutboxRelease(ctx context.Context, owner string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.D.OutboxRelease(ctx, owner, ids)
}

// OutboxPark implements OutboxStore.
func (s Deliveries) OutboxPark(ctx context.Context, id int64, reason string, now time.Time) error {
	return s.D.OutboxPark(ctx, id, reason, micro(now))
}

// OutboxDelete implements OutboxStore.
func (s Deliveries) OutboxDelete(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	return s.D.OutboxDelete(ctx, ids)
}

// OutboxList implements OutboxStore.
func (s Deliveries) OutboxList(ctx context.Context, limit int) ([]auditoutbox.Entry, error) {
	if limit <= 0 {
		return nil, errs.Invalid("outbox list limit must be positive")
	}
	return s.D.OutboxList(ctx, limit)
}
