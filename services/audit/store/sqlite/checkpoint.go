package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// ChainState implements store.Driver: one row, read on a reader connection (a WAL snapshot).
func (d *Driver) ChainState(ctx context.Context) (store.ChainState, error) {
	st, err := store.ScanChainState(d.db.Read.QueryRowContext(ctx, store.ChainStateQuery))
	return st, db.SQLiteError(err)
}

// CheckpointTx implements store.Driver. The writer's immediate transaction is the lock: checkpoints
// (and appends) take turns, so ids and the heads they sign only grow.
func (d *Driver) CheckpointTx(ctx context.Context, fn func(store.CheckpointTx) error) error {
	return db.SQLiteError(d.db.WriteTx(ctx, func(tx *sql.Tx) error { return fn(checkpointTx{tx}) }))
}

type checkpointTx struct{ tx *sql.Tx }

func (c checkpointTx) ChainState(ctx context.Context) (store.ChainState, error) {
	return store.ScanChainState(c.tx.QueryRowContext(ctx, store.ChainStateQuery))
}

func (c checkpointTx) InsertCheckpoint(ctx context.Context, cp *store.Checkpoint) (int64, error) {
	var id int64
	err := c.tx.QueryRowContext(ctx, `INSERT INTO checkpoints (sequence, hash, time, kind, anchor_sequence, anchor_hash, key_id,
			public_key, signed_text, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		cp.Sequence, cp.Hash, cp.Time.UnixMicro(), cp.Kind, cp.AnchorSeq, cp.AnchorHash, cp.KeyID, cp.PublicKey,
		cp.SignedText, cp.Signature).Scan(&id)
	return id, err
}

// CheckpointGet implements store.Driver.
func (d *Driver) CheckpointGet(ctx context.Context, id int64) (*store.Checkpoint, error) {
	c, err := scanCheckpoint(d.db.Read.QueryRowContext(ctx, `SELECT `+store.CheckpointColumns+` FROM checkpoints WHERE id = ?`, id))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("checkpoint %d not found", id)
	}
	return c, db.SQLiteError(err)
}

// CheckpointList implements store.Driver.
func (d *Driver) CheckpointList(ctx context.Context, p store.CheckpointListParams) ([]*store.Checkpoint, error) {
	q, args := store.CheckpointListQuery(p)
	return db.SQLiteQueryAll(ctx, d.db, q, args, scanCheckpoint)
}

// SigningKeyGet implements store.Driver.
func (d *Driver) SigningKeyGet(ctx context.Context, keyID string) ([]byte, error) {
	var key []byte
	err := d.db.Read.QueryRowContext(ctx, `SELECT public_key FROM checkpoints WHERE key_id = ? ORDER BY id LIMIT 1`, keyID).Scan(&key)
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("signing key %s not found", keyID)
	}
	return key, db.SQLiteError(err)
}

func scanCheckpoint(row db.Scanner) (*store.Checkpoint, error) {
	var c store.Checkpoint
	var at int64
	if err := row.Scan(&c.ID, &c.Sequence, &c.Hash, &at, &c.Kind, &c.AnchorSeq, &c.AnchorHash, &c.KeyID, &c.PublicKey,
		&c.SignedText, &c.Signature); err != nil {
		return nil, err
	}
	c.Time = time.UnixMicro(at).UTC()
	return &c, nil
}
