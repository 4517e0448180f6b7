package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"time"

	"github.com/sergas/core/internal/auditoutbox"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
)

// The audit outbox's statements (auditoutbox's, once for every backend) in SQLite's placeholder form.
// Claims need no row locks: the single writer runs one at a time.
var (
	outboxInsert  = sqlq.Rebind(auditoutbox.InsertSQL)
	outboxClaim   = sqlq.Rebind(auditoutbox.ClaimSQL(""))
	outboxRelease = sqlq.Rebind(auditoutbox.ReleaseSQL)
	outboxPark    = sqlq.Rebind(auditoutbox.ParkSQL)
	outboxDelete  = sqlq.Rebind(auditoutbox.DeleteSQL)
)

var _ store.OutboxStore = (*Store)(nil)

// OutboxInsert implements store.OutboxTx. Dead letters and operator actions are rare next to acks, so
// the statement is not among the prepared ones.
func (t deliveryTx) OutboxInsert(ctx context.Context, es []auditoutbox.Entry) error {
	for _, e := range es {
		if _, err := t.tx.ExecContext(ctx, outboxInsert, e.IdempotencyKey, e.Payload, e.CreateTime.UnixMicro()); err != nil {
			return err
		}
	}
	return nil
}

func (d *deliveryDriver) OutboxClaim(ctx context.Context, p auditoutbox.ClaimParams) ([]auditoutbox.Entry, error) {
	var out []auditoutbox.Entry
	err := d.db.WriteTx(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, outboxClaim, p.Owner, p.Until.UnixMicro(), p.Now.UnixMicro(), p.Limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := auditoutbox.ScanEntry(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	// RETURNING promises no order.
	slices.SortFunc(out, func(a, b auditoutbox.Entry) int { return cmp.Compare(a.ID, b.ID) })
	return out, db.SQLiteError(err)
}

func (d *deliveryDriver) OutboxRelease(ctx context.Context, owner string, ids []int64) error {
	return d.each(ctx, outboxRelease, ids, owner)
}

func (d *deliveryDriver) OutboxPark(ctx context.Context, id int64, reason string, now time.Time) error {
	return db.SQLiteError(d.db.WriteTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, outboxPark, id, now.UnixMicro(), reason)
		return err
	}))
}

func (d *deliveryDriver) OutboxDelete(ctx context.Context, ids []int64) error {
	return d.each(ctx, outboxDelete, ids)
}

func (d *deliveryDriver) OutboxList(ctx context.Context, limit int) ([]auditoutbox.Entry, error) {
	return db.SQLiteQueryAll(ctx, d.db, auditoutbox.ListSQL, []any{limit}, auditoutbox.ScanEntry)
}

// each runs stmt once per id (its $1), with args after it, in one transaction.
func (d *deliveryDriver) each(ctx context.Context, stmt string, ids []int64, args ...any) error {
	return db.SQLiteError(d.db.WriteTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, stmt, append([]any{id}, args...)...); err != nil {
				return err
			}
		}
		return nil
	}))
}
