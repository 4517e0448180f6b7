// Package store is the audit log above its backends: the chain append (Append) is written here once,
// and store/sqlite and store/postgres are drivers that supply its small operations in SQL (Driver,
// AppendTx), as riverqueue/river's drivers do. storetest checks that both backends behave the same.
package store

import (
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
	// ActorType (an auditv1.ActorType, 0 when not given), SessionID, RequestID and SourceService are
	// hashed from version 3 on; events stored before have them zero.
	ActorType                           int32
	SessionID, RequestID, SourceService string
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
		ActorType: e.ActorType, SessionID: e.SessionID, RequestID: e.RequestID, SourceService: e.SourceService,
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
	ActorType               int32
	SessionID, RequestID    string
	SourceService           string
	Start, End              time.Time // occur_time in [Start, End)
	After                   int64     // sequence of the last event of the previous page, 0 for none
	Descending              bool
	Limit                   int
}
