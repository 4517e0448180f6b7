package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// RetentionTx implements store.Driver. READ COMMITTED is named for the same reason as in AppendTx: the
// batch locks the chain head first and then needs each statement to see what appends committed before.
func (d *Driver) RetentionTx(ctx context.Context, fn func(store.RetentionTx) error) error {
	return d.db.TxWith(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		return fn(retentionTx{tx})
	})
}

type retentionTx struct{ tx pgx.Tx }

func (r retentionTx) ChainStateForUpdate(ctx context.Context) (store.ChainState, error) {
	return store.ScanChainState(r.tx.QueryRow(ctx, store.ChainStateQuery+` FOR UPDATE`))
}

// PrefixEnd reads the range from the primary key and filters on record_time, which has no index of its
// own: an index would cost every append, and the range is read once.
func (r retentionTx) PrefixEnd(ctx context.Context, after, upTo int64, cutoff time.Time) (int64, error) {
	var first *int64
	err := r.tx.QueryRow(ctx, `SELECT min(sequence) FROM events WHERE sequence > $1 AND sequence <= $2 AND record_time >= $3`,
		after, upTo, cutoff).Scan(&first)
	if err != nil {
		return 0, err
	}
	if first == nil {
		return upTo, nil
	}
	return *first - 1, nil
}

func (r retentionTx) EventHash(ctx context.Context, seq int64) ([]byte, error) {
	var hash []byte
	err := r.tx.QueryRow(ctx, `SELECT hash FROM events WHERE sequence = $1`, seq).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("event %d not found", seq)
	}
	return hash, err
}

func (r retentionTx) MoveAnchor(ctx context.Context, seq int64, hash []byte) error {
	_, err := r.tx.Exec(ctx, `UPDATE chain_head SET anchor_sequence = $1, anchor_hash = $2 WHERE id = 1`, seq, hash)
	return err
}

func (r retentionTx) DeleteThrough(ctx context.Context, after, through int64) (int64, error) {
	tag, err := r.tx.Exec(ctx, `DELETE FROM events WHERE sequence > $1 AND sequence <= $2`, after, through)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
