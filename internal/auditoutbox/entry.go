// Package auditoutbox is the transactional audit outbox the services share: an audit event is written
// as a row of the service's audit_outbox table by the transaction that makes the change it describes,
// and a sender on every replica delivers the rows to the audit service and deletes them once it has
// them. The change and its audit event therefore commit together, and an audit service that is down
// only delays the events.
//
// What is common lives here: the entry and claim types, the Store a backend supplies, the SQL for the
// table's one shape (every service's migrations create the same audit_outbox), the scan of a row, and
// the sender with its backoff, park rules and metrics. A service keeps only how it builds its events.
package auditoutbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
)

// Entry is an audit event waiting for delivery.
type Entry struct {
	ID             int64
	IdempotencyKey string
	// Payload is the marshalled auditv1.RecordEventRequest, without its idempotency key (the column
	// holds it, and the sender sets it).
	Payload    []byte
	CreateTime time.Time
	// Set by the store: who claimed the entry and until when, and, for an entry the audit service
	// refused for good, when and why it was parked.
	ClaimOwner      string
	ClaimExpireTime time.Time
	ParkTime        time.Time
	ParkReason      string
}

// ClaimParams asks for a batch of entries to send.
type ClaimParams struct {
	Owner string
	Now   time.Time
	// Until is when the claim lapses: after it another replica may send the entries (the owner died).
	Until time.Time
	Limit int
}

// Store is what the sender needs of a backend. The entries themselves are written by the service's own
// transactions (see InsertSQL).
type Store interface {
	// OutboxClaim claims the oldest entries that are neither parked nor claimed by a live claim, for
	// p.Owner until p.Until, and returns them oldest first. Concurrent callers (replicas) never get the
	// same entry while its claim lasts.
	OutboxClaim(ctx context.Context, p ClaimParams) ([]Entry, error)
	// OutboxRelease gives back owner's claims on ids that were not sent, for anyone to send.
	OutboxRelease(ctx context.Context, owner string, ids []int64) error
	// OutboxPark sets an entry aside for good (the audit service refused it): it is never claimed again.
	OutboxPark(ctx context.Context, id int64, reason string, now time.Time) error
	// OutboxDelete removes delivered entries.
	OutboxDelete(ctx context.Context, ids []int64) error
}

// Recorder delivers one event to the audit service (auditclient.Client is one).
type Recorder interface {
	Record(ctx context.Context, req *auditv1.RecordEventRequest) error
	// Ready is closed once the recorder knows where the audit service is.
	Ready() <-chan struct{}
}

// NewEntry makes req an entry created at now, with an idempotency key fixed now ("<prefix>-<uuid>"),
// so that however often delivery is retried the audit log holds the event once.
func NewEntry(prefix string, req *auditv1.RecordEventRequest, now time.Time) (Entry, error) {
	payload, err := proto.Marshal(req)
	if err != nil {
		return Entry{}, fmt.Errorf("audit outbox: encoding the event: %w", err)
	}
	return Entry{IdempotencyKey: prefix + "-" + uuid.NewString(), Payload: payload, CreateTime: now}, nil
}
