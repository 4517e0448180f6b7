package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// ChainState implements store.Driver: one row, so head and anchor are read together.
func (d *Driver) ChainState(ctx context.Context) (store.ChainState, error) {
	return db.PostgresQueryRow(ctx, d.db, store.ChainStateQuery, nil, store.ScanChainState)
}

// CheckpointTx implements store.Driver. The transaction first locks the checkpoints table against other
// writers (EXCLUSIVE still lets readers in, and never touches the chain head's lock, so appends go on):
// an identity value is taken at insert, so without the lock a checkpoint numbered 10 could commit after
// 11 had been read, and a later id could sign an earlier head. READ COMMITTED is named so that the chain
// state read after the lock is the latest committed.
func (d *Driver) CheckpointTx(ctx context.Context, fn func(store.CheckpointTx) error) error {
	return d.db.TxWith(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE checkpoints IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		return fn(checkpointTx{tx})
	})
}

type checkpointTx struct{ tx pgx.Tx }

func (c checkpointTx) ChainState(ctx context.Context) (store.ChainState, error) {
	return store.ScanChainState(c.tx.QueryRow(ctx, store.ChainStateQuery))
}

func (c checkpointTx) InsertCheckpoint(ctx context.Context, cp *store.Checkpoint) (int64, error) {
	var id int64
	err := c.tx.QueryRow(ctx, `INSERT INTO checkpoints (sequence, hash, time, kind, anchor_sequence, anchor_hash, key_id,
			public_key, signed_text, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		cp.Sequence, cp.Hash, cp.Time, int16(cp.Kind), cp.AnchorSeq, cp.AnchorHash, cp.KeyID, cp.PublicKey,
		cp.SignedText, cp.Signature).Scan(&id)
	return id, err
}

// CheckpointGet implements store.Driver.
func (d *Driver) CheckpointGet(ctx context.Context, id int64) (*store.Checkpoint, error) {
	c, err := db.PostgresQueryRow(ctx, d.db, `SELECT `+store.CheckpointColumns+` FROM checkpoints WHERE id = $1`, []any{id}, scanCheckpoint)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("checkpoint %d not found", id)
	}
	return c, err
}

// CheckpointList implements store.Driver.
func (d *Driver) CheckpointList(ctx context.Context, p store.CheckpointListParams) ([]*store.Checkpoint, error) {
	q, args := store.CheckpointListQuery(p)
	return db.PostgresQueryAll(ctx, d.db, q, args, scanCheckpoint)
}

// SigningKeyGet implements store.Driver.
func (d *Driver) SigningKeyGet(ctx context.Context, keyID string) ([]byte, error) {
	key, err := db.PostgresQueryRow(ctx, d.db, `SELECT public_key FROM checkpoints WHERE key_id = $1 ORDER BY id LIMIT 1`,
		[]any{keyID}, func(row db.Scanner) ([]byte, error) {
			var k []byte
			return k, row.Scan(&k)
		})
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, errs.NotFound("signing key %s not found", keyID)
	}
	return key, err
}

func scanCheckpoint(row db.Scanner) (*store.Checkpoint, error) {
	var c store.Checkpoint
	var kind int16
	if err := row.Scan(&c.ID, &c.Sequence, &c.Hash, &c.Time, &kind, &c.AnchorSeq, &c.AnchorHash, &c.KeyID, &c.PublicKey,
		&c.SignedText, &c.Signature); err != nil {
		return nil, err
	}
	c.Kind, c.Time = int32(kind), c.Time.UTC()
	return &c, nil
}
