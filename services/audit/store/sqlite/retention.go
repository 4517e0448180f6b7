package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// RetentionTx implements store.Driver. The writer's immediate transaction holds SQLite's write lock, so
// the head cannot move while a batch runs.
func (d *Driver) RetentionTx(ctx context.Context, fn func(store.RetentionTx) error) error {
	return db.SQLiteError(d.db.WriteTx(ctx, func(tx *sql.Tx) error { return fn(retentionTx{tx}) }))
}

type retentionTx struct{ tx *sql.Tx }

func (r retentionTx) ChainStateForUpdate(ctx context.Context) (store.ChainState, error) {
	return store.ScanChainState(r.tx.QueryRowContext(ctx, store.ChainStateQuery))
}

// PrefixEnd reads the range from the primary key (sequence is the rowid) and filters on record_time,
// which has no index of its own: an index would cost every append, and the range is read once.
func (r retentionTx) PrefixEnd(ctx context.Context, after, upTo int64, cutoff time.Time) (int64, error) {
	var first sql.NullInt64
	err := r.tx.QueryRowContext(ctx, `SELECT min(sequence) FROM events WHERE sequence > ? AND sequence <= ? AND record_time >= ?`,
		after, upTo, cutoff.UnixMicro()).Scan(&first)
	if err != nil {
		return 0, err
	}
	if !first.Valid {
		return upTo, nil
	}
	return first.Int64 - 1, nil
}

func (r retentionTx) EventHash(ctx context.Context, seq int64) ([]byte, error) {
	var hash []byte
	err := r.tx.QueryRowContext(ctx, `SELECT hash FROM events WHERE sequence = ?`, seq).Scan(&hash)
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("event %d not found", seq)
	}
	return hash, err
}

func (r retentionTx) MoveAnchor(ctx context.Context, seq int64, hash []byte) error {
	_, err := r.tx.ExecContext(ctx, `UPDATE chain_head SET anchor_sequence = ?, anchor_hash = ? WHERE id = 1`, seq, hash)
	return err
}

func (r retentionTx) DeleteThrough(ctx context.Context, after, through int64) (int64, error) {
	res, err := r.tx.ExecContext(ctx, `DELETE FROM events WHERE sequence > ? AND sequence <= ?`, after, through)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
