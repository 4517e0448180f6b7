package store

import (
	"context"
	"time"

	"github.com/sergas/core/internal/sqlq"
)

// Checkpoint is a signed statement of the chain head: "from the anchor, the log up to Sequence has hash
// Hash". SignedText holds every field but ID, PublicKey and Signature (services/audit/checkpoint.go
// documents the format); Signature is the Ed25519 signature of SignedText by PublicKey, whose id is
// KeyID.
type Checkpoint struct {
	ID         int64
	Sequence   int64
	Hash       []byte
	Time       time.Time // UTC, microseconds
	Kind       int32     // an auditv1.CheckpointKind
	AnchorSeq  int64
	AnchorHash []byte
	KeyID      string
	PublicKey  []byte // the raw 32-byte Ed25519 public key that signed
	SignedText string
	Signature  []byte
}

// CheckpointListParams filters and pages checkpoints; zero values do not filter.
type CheckpointListParams struct {
	// BeforeID keeps checkpoints with a smaller id (the last id of the previous newest-first page);
	// AfterID those with a larger one (the last id of the previous oldest-first page). 0: no bound.
	BeforeID, AfterID int64
	// FromSeq and ToSeq, when ToSeq > 0, keep checkpoints with FromSeq <= Sequence <= ToSeq.
	FromSeq, ToSeq int64
	// Ascending lists oldest first (by id, which follows the chain: a later checkpoint never signs an
	// earlier head); newest first otherwise.
	Ascending bool
	Limit     int
}

// CheckpointTx is the transaction that stores a checkpoint: the backend's lock makes checkpoints commit
// in the order of their ids, and the chain state read inside it is the one that is signed.
type CheckpointTx interface {
	// ChainState reads the head and the anchor (see Log.ChainState).
	ChainState(ctx context.Context) (ChainState, error)
	// InsertCheckpoint stores c (its ID ignored) and returns the id it was given.
	InsertCheckpoint(ctx context.Context, c *Checkpoint) (int64, error)
}

// CheckpointAppend stores the checkpoint that sign makes of the current chain state. sign is called
// once, inside the transaction, with the head and anchor read there, so that what is signed is exactly
// the state that was read; it must be quick (it holds the checkpoint lock, not the append lock).
func (s *Log) CheckpointAppend(ctx context.Context, sign func(ChainState) (*Checkpoint, error)) (*Checkpoint, error) {
	var out *Checkpoint
	err := s.d.CheckpointTx(ctx, func(tx CheckpointTx) error {
		st, err := tx.ChainState(ctx)
		if err != nil {
			return err
		}
		c, err := sign(st)
		if err != nil {
			return err
		}
		if c.ID, err = tx.InsertCheckpoint(ctx, c); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CheckpointGet returns errs.ErrNotFound when there is no checkpoint with that id.
func (s *Log) CheckpointGet(ctx context.Context, id int64) (*Checkpoint, error) {
	return s.d.CheckpointGet(ctx, id)
}

// CheckpointList returns at most p.Limit checkpoints, newest first unless p.Ascending.
func (s *Log) CheckpointList(ctx context.Context, p CheckpointListParams) ([]*Checkpoint, error) {
	return s.d.CheckpointList(ctx, p)
}

// SigningKeyGet returns the public key of the checkpoints signed by keyID, errs.ErrNotFound when no
// stored checkpoint names it.
func (s *Log) SigningKeyGet(ctx context.Context, keyID string) ([]byte, error) {
	return s.d.SigningKeyGet(ctx, keyID)
}

// CheckpointColumns is the select list of a checkpoint, in the order the drivers scan it (the columns
// are named alike on both backends; their types differ, so each driver scans them itself).
const CheckpointColumns = `id, sequence, hash, time, kind, anchor_sequence, anchor_hash, key_id, public_key, signed_text, signature`

// CheckpointListQuery returns the SQL (valid on both backends) and arguments that select one page of
// checkpoints for p, CheckpointColumns each. A sequence range is read through checkpoints_sequence,
// anything else from the primary key in id order.
func CheckpointListQuery(p CheckpointListParams) (string, []any) {
	var w sqlq.Where
	w.AddIf(p.BeforeID > 0, "id < ?", p.BeforeID)
	w.AddIf(p.AfterID > 0, "id > ?", p.AfterID)
	w.AddIf(p.ToSeq > 0, "sequence >= ? AND sequence <= ?", p.FromSeq, p.ToSeq)
	order := " ORDER BY id DESC"
	if p.Ascending {
		order = " ORDER BY id"
	}
	q := `SELECT ` + CheckpointColumns + ` FROM checkpoints` + w.String() + order + " LIMIT " + w.Arg(p.Limit)
	return q, w.Args
}
