package postgres

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/auditoutbox"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// outboxClaim skips the entries another replica is claiming (see auditoutbox.ClaimSQL).
var outboxClaim = auditoutbox.ClaimSQL(" FOR UPDATE SKIP LOCKED")

var _ store.OutboxStore = (*Store)(nil)

// OutboxInsert implements store.OutboxTx: the inserts are queued with the transaction's other writes
// (see deliveryTx), nothing reading them before the commit.
func (t *deliveryTx) OutboxInsert(ctx context.Context, es []auditoutbox.Entry) error {
	for _, e := range es {
		t.pending.Queue(auditoutbox.InsertSQL, e.IdempotencyKey, e.Payload, e.CreateTime)
	}
	return nil
}

// OutboxClaim runs at READ COMMITTED (deliveryTxOptions), which the claim's re-check of a row another
// replica just claimed relies on.
func (d *deliveryDriver) OutboxClaim(ctx context.Context, p auditoutbox.ClaimParams) ([]auditoutbox.Entry, error) {
	var out []auditoutbox.Entry
	err := d.db.TxWith(ctx, deliveryTxOptions, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, outboxClaim, p.Owner, p.Until, p.Now, p.Limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditoutbox.Entry, error) { return auditoutbox.ScanEntry(row) })
		return err
	})
	// RETURNING promises no order.
	slices.SortFunc(out, func(a, b auditoutbox.Entry) int { return cmp.Compare(a.ID, b.ID) })
	return out, err
}

func (d *deliveryDriver) OutboxRelease(ctx context.Context, owner string, ids []int64) error {
	return d.each(ctx, auditoutbox.ReleaseSQL, ids, owner)
}

func (d *deliveryDriver) OutboxPark(ctx context.Context, id int64, reason string, now time.Time) error {
	return d.db.TxWith(ctx, deliveryTxOptions, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, auditoutbox.ParkSQL, id, now, reason)
		return err
	})
}

func (d *deliveryDriver) OutboxDelete(ctx context.Context, ids []int64) error {
	return d.each(ctx, auditoutbox.DeleteSQL, ids)
}

func (d *deliveryDriver) OutboxList(ctx context.Context, limit int) ([]auditoutbox.Entry, error) {
	return db.PostgresQueryAll(ctx, d.db, auditoutbox.ListSQL, []any{limit}, auditoutbox.ScanEntry)
}

// each runs stmt once per id (its $1), with args after it, in one transaction and one round trip.
func (d *deliveryDriver) each(ctx context.Context, stmt string, ids []int64, args ...any) error {
	return d.db.TxWith(ctx, deliveryTxOptions, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, id := range ids {
			b.Queue(stmt, append([]any{id}, args...)...)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
}
