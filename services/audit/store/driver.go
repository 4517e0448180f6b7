package store

import "context"

// Driver is what one backend supplies: a transaction for appends, holding the operations the append
// algorithm is made of, and the reads. Drivers hold SQL only; the order of operations, the idempotency
// rules and the hashing live in Store.
type Driver interface {
	// AppendTx runs fn in one write transaction and commits when fn returns nil. Appends from every
	// process on the database take turns: the backend's write lock (SQLite) or the chain head's row lock
	// taken by HeadForUpdate (PostgreSQL, at READ COMMITTED so that each statement after the lock sees
	// what the previous holder committed).
	AppendTx(ctx context.Context, fn func(tx AppendTx) error) error
	// EventGet returns errs.ErrNotFound when there is no event with that id (canonical lower-case UUID).
	EventGet(ctx context.Context, id string) (*Event, error)
	// EventList returns at most p.Limit events in sequence order.
	EventList(ctx context.Context, p EventListParams) ([]*Event, error)
	// ChainState reads the head and the retention anchor together, without locking.
	ChainState(ctx context.Context) (ChainState, error)
	// CheckpointTx runs fn in one write transaction that holds the checkpoints' lock, so that ids commit
	// in order, and commits when fn returns nil.
	CheckpointTx(ctx context.Context, fn func(tx CheckpointTx) error) error
	// CheckpointGet returns errs.ErrNotFound when there is no checkpoint with that id.
	CheckpointGet(ctx context.Context, id int64) (*Checkpoint, error)
	// CheckpointList returns at most p.Limit checkpoints, newest first unless p.Ascending.
	CheckpointList(ctx context.Context, p CheckpointListParams) ([]*Checkpoint, error)
	// SigningKeyGet returns the public key stored with the checkpoints of keyID (errs.ErrNotFound).
	SigningKeyGet(ctx context.Context, keyID string) ([]byte, error)
	// RetentionTx runs fn in one write transaction (PostgreSQL: READ COMMITTED) and commits when fn
	// returns nil.
	RetentionTx(ctx context.Context, fn func(tx RetentionTx) error) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// AppendTx is the part of an append transaction each backend writes in SQL.
type AppendTx interface {
	// HeadForUpdate returns the chain head (sequence 0 and chain.Genesis when empty) and keeps it
	// locked until the transaction ends.
	HeadForUpdate(ctx context.Context) (seq int64, hash []byte, err error)
	// EventsByKeys returns the stored events that hold any of keys (in no particular order).
	EventsByKeys(ctx context.Context, keys []Key) ([]*Event, error)
	// InsertEvents stores sealed events, in sequence order.
	InsertEvents(ctx context.Context, es []*Event) error
	// MoveHead sets the chain head to the last inserted event.
	MoveHead(ctx context.Context, seq int64, hash []byte) error
}

// Key is an idempotency key, which belongs to the principal that used it.
type Key struct{ Principal, IdempotencyKey string }
