// Package store defines what the audit service needs from storage; store/sqlite and store/postgres
// implement it and storetest checks that both behave the same.
package store

import (
	"context"
	"time"

	"github.com/sergas/core/services/audit/chain"
)

// Event is one audit record. Times are UTC with microsecond precision.
type Event struct {
	Sequence       int64
	ID             string
	OccurTime      time.Time
	RecordTime     time.Time
	Actor          string
	Action         string
	Resource       string
	Outcome        int32
	Metadata       string // canonical JSON object, hashed as stored
	IdempotencyKey string // empty when none
	// Principal is the authenticated writer ("" only on events stored before it was recorded).
	Principal string
	// HashVersion is the chain encoding that hashed the event (chain.V1 for events without a principal).
	HashVersion  int32
	PreviousHash []byte
	Hash         []byte
}

// Fields returns the hashed fields of e.
func (e *Event) Fields() chain.Fields {
	return chain.Fields{
		Version: e.HashVersion, Sequence: e.Sequence, ID: e.ID,
		OccurMicros: e.OccurTime.UnixMicro(), RecordMicros: e.RecordTime.UnixMicro(),
		Actor: e.Actor, Action: e.Action, Resource: e.Resource, Outcome: e.Outcome, Metadata: e.Metadata,
		IdempotencyKey: e.IdempotencyKey, Principal: e.Principal,
	}
}

// Seal sets e's sequence, hash version and hashes, chaining it to the head (headSeq, headHash).
func (e *Event) Seal(headSeq int64, headHash []byte) {
	e.Sequence = headSeq + 1
	e.HashVersion = chain.Current
	e.PreviousHash = headHash
	e.Hash = chain.Hash(headHash, e.Fields())
}

// EventListParams filters and pages events; zero values do not filter.
type EventListParams struct {
	Actor, Action, Resource string
	Outcome                 int32
	Start, End              time.Time // occur_time in [Start, End)
	After                   int64     // sequence of the last event of the previous page, 0 for none
	Descending              bool
	Limit                   int
}

// Store persists the audit log.
type Store interface {
	// EventAppend seals e (sequence, hash version, previous hash, hash) against the current head and
	// stores it, in one transaction. When e.Principal used e.IdempotencyKey before, it stores nothing and
	// returns that principal's earlier event with duplicate=true; keys of other principals do not match.
	EventAppend(ctx context.Context, e *Event) (stored *Event, duplicate bool, err error)
	// EventGet returns errs.ErrNotFound when there is no event with that id (canonical lower-case UUID).
	EventGet(ctx context.Context, id string) (*Event, error)
	// EventList returns at most p.Limit events in sequence order.
	EventList(ctx context.Context, p EventListParams) ([]*Event, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
