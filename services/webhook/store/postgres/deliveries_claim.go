package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

var _ store.ClaimStartTx = (*deliveryTx)(nil)

// SubscriptionAndDue implements store.ClaimStartTx: the subscription and its due deliveries (locked,
// skipping those another transaction holds) in one round trip, after any pending writes.
func (t *deliveryTx) SubscriptionAndDue(ctx context.Context, id string, now time.Time, limit int) (*store.Subscription, []*store.Delivery, error) {
	b := t.take()
	var sub *store.Subscription
	var due []*store.Delivery
	b.Queue(subscriptionGet, id).QueryRow(func(row pgx.Row) error {
		var err error
		sub, err = scanSubscription(row)
		if errors.Is(err, pgx.ErrNoRows) {
			return errs.NotFound("subscription %s not found", id)
		}
		return err
	})
	b.Queue(deliveriesDue, id, now, limit).Query(func(rows pgx.Rows) error {
		var err error
		due, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Delivery, error) { return scanDelivery(row) })
		return err
	})
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, err
	}
	return sub, due, nil
}
