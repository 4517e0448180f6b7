package store

import (
	"context"
	"time"

	"github.com/sergas/core/internal/errs"
)

// Store is the audit log as the service uses it; Log implements it over any Driver.
type Store interface {
	// Append appends events in one transaction (see Log.Append).
	Append(ctx context.Context, ps []Pending) ([]Result, error)
	// AppendAll appends events in one transaction, all or nothing (see Log.AppendAll).
	AppendAll(ctx context.Context, ps []Pending) ([]Result, error)
	// EventAppend appends one event whose occur_time the service chose (see Log.EventAppend).
	EventAppend(ctx context.Context, e *Event) (stored *Event, duplicate bool, err error)
	// EventGet returns errs.ErrNotFound when there is no event with that id (canonical lower-case UUID).
	EventGet(ctx context.Context, id string) (*Event, error)
	// EventList returns at most p.Limit events in sequence order.
	EventList(ctx context.Context, p EventListParams) ([]*Event, error)
	// ChainState returns the head and the retention anchor, read together without locking.
	ChainState(ctx context.Context) (ChainState, error)
	// CheckpointAppend stores the checkpoint that sign makes of the chain state (see Log.CheckpointAppend).
	CheckpointAppend(ctx context.Context, sign func(ChainState) (*Checkpoint, error)) (*Checkpoint, error)
	// CheckpointGet returns errs.ErrNotFound when there is no checkpoint with that id.
	CheckpointGet(ctx context.Context, id int64) (*Checkpoint, error)
	// CheckpointList returns at most p.Limit checkpoints, newest first unless p.Ascending.
	CheckpointList(ctx context.Context, p CheckpointListParams) ([]*Checkpoint, error)
	// SigningKeyGet returns the public key stored with the checkpoints of keyID (errs.ErrNotFound).
	SigningKeyGet(ctx context.Context, keyID string) ([]byte, error)
	// RetentionCut removes one batch of the oldest events recorded before cutoff (see Log.RetentionCut).
	RetentionCut(ctx context.Context, cutoff time.Time, batch int64) (Cut, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// Log is the audit log over one backend's Driver: the append algorithm, written once.
type Log struct{ d Driver }

var _ Store = (*Log)(nil)

// NewLog returns the audit log kept by d.
func NewLog(d Driver) *Log { return &Log{d: d} }

// Pending is an event to append: built and checked by the server, not yet sealed.
type Pending struct {
	Event *Event
	// OccurGiven says the caller chose occur_time, so that a retry with the same idempotency key must
	// repeat it to count as the same event; otherwise the service chose it and it is not compared.
	OccurGiven bool
}

// Result is what became of one Pending event.
type Result struct {
	// Event is the stored event: the new one, or for a duplicate the one stored first with its key.
	Event     *Event
	Duplicate bool
	// Err fails this event alone (a key reused for other content: errs.KindAlreadyExists).
	Err error
}

// Append appends ps in one transaction, in order, as if one after the other: each event is sealed to the
// one before it (the head for the first), and an event whose principal already used its idempotency
// key, before or earlier in ps, is not stored: it gets that earlier event as a duplicate when the
// content is the same, and AlreadyExists when it differs. The results are valid only when err is nil;
// on an error nothing was stored.
func (s *Log) Append(ctx context.Context, ps []Pending) ([]Result, error) {
	return s.append(ctx, ps, false)
}

// AppendAll is Append where a key reused for other content fails the whole call: nothing is stored and
// the error (errs.KindAlreadyExists) names the first such event by its index in ps, as "events[i]".
// Duplicates with the same content are answered as by Append. Every Result.Err is nil when err is nil.
func (s *Log) AppendAll(ctx context.Context, ps []Pending) ([]Result, error) {
	return s.append(ctx, ps, true)
}

func (s *Log) append(ctx context.Context, ps []Pending, all bool) ([]Result, error) {
	if len(ps) == 0 {
		return nil, nil // no need to take the head's lock
	}
	var res []Result
	err := s.d.AppendTx(ctx, func(tx AppendTx) error {
		res = make([]Result, len(ps)) // a retried transaction starts over
		// The head first: once it is locked no other append can commit, so the key lookup below sees
		// every key used so far.
		seq, hash, err := tx.HeadForUpdate(ctx)
		if err != nil {
			return err
		}
		byKey, err := storedByKey(ctx, tx, ps)
		if err != nil {
			return err
		}
		var sealed []*Event
		for i, p := range ps {
			k := Key{p.Event.Principal, p.Event.IdempotencyKey}
			if k.IdempotencyKey != "" {
				if prev, ok := byKey[k]; ok {
					if SameContent(prev, p) {
						res[i] = Result{Event: prev, Duplicate: true}
					} else if all {
						// Returning an error rolls the transaction back: nothing of ps is stored.
						return errs.New(errs.KindAlreadyExists,
							"events[%d]: idempotency_key %q was used for an event with different content; use a new key for a new event", i, k.IdempotencyKey)
					} else {
						res[i] = Result{Err: errs.New(errs.KindAlreadyExists,
							"idempotency_key %q was used for an event with different content; use a new key for a new event", k.IdempotencyKey)}
					}
					continue
				}
			}
			e := *p.Event
			e.Seal(seq, hash)
			seq, hash = e.Sequence, e.Hash
			sealed = append(sealed, &e)
			res[i] = Result{Event: &e}
			if k.IdempotencyKey != "" {
				byKey[k] = &e
			}
		}
		if len(sealed) == 0 {
			return nil
		}
		if err := tx.InsertEvents(ctx, sealed); err != nil {
			return err
		}
		return tx.MoveHead(ctx, seq, hash)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// storedByKey returns the stored events that hold the idempotency keys of ps.
func storedByKey(ctx context.Context, tx AppendTx, ps []Pending) (map[Key]*Event, error) {
	byKey := map[Key]*Event{}
	seen := map[Key]bool{}
	var keys []Key
	for _, p := range ps {
		k := Key{p.Event.Principal, p.Event.IdempotencyKey}
		if k.IdempotencyKey != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return byKey, nil
	}
	es, err := tx.EventsByKeys(ctx, keys)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		byKey[Key{e.Principal, e.IdempotencyKey}] = e
	}
	return byKey, nil
}

// SameContent reports whether the event stored for an idempotency key has the content of the retry p.
func SameContent(stored *Event, p Pending) bool {
	e := p.Event
	return stored.Actor == e.Actor && stored.Action == e.Action && stored.Resource == e.Resource &&
		stored.Outcome == e.Outcome && stored.Metadata == e.Metadata && stored.ActorType == e.ActorType &&
		stored.SessionID == e.SessionID && stored.RequestID == e.RequestID && stored.SourceService == e.SourceService &&
		(!p.OccurGiven || stored.OccurTime.Equal(e.OccurTime))
}

// EventAppend appends one event whose occur_time the service chose: Append of one.
func (s *Log) EventAppend(ctx context.Context, e *Event) (stored *Event, duplicate bool, err error) {
	res, err := s.Append(ctx, []Pending{{Event: e}})
	if err != nil {
		return nil, false, err
	}
	return res[0].Event, res[0].Duplicate, res[0].Err
}

// EventGet returns errs.ErrNotFound when there is no event with that id (canonical lower-case UUID).
func (s *Log) EventGet(ctx context.Context, id string) (*Event, error) {
	return s.d.EventGet(ctx, id)
}

// EventList returns at most p.Limit events in sequence order.
func (s *Log) EventList(ctx context.Context, p EventListParams) ([]*Event, error) {
	return s.d.EventList(ctx, p)
}

// Ping checks that the database answers.
func (s *Log) Ping(ctx context.Context) error { return s.d.Ping(ctx) }

// Close releases the database.
func (s *Log) Close() error { return s.d.Close() }
