package store

import (
	"context"
	"time"
)

// ClaimStartTx is a DeliveryTx that can read a subscription and its due deliveries together: PostgreSQL
// sends both statements in one round trip. A claim's latency there is its round trips, each a wait on a
// server that shares the machine's cores; SQLite, in-process, has nothing to gain and does not implement it.
type ClaimStartTx interface {
	// SubscriptionAndDue is SubscriptionGet(id) followed by DeliveriesDue(id, now, limit). The due
	// deliveries are read, and locked, even when the subscription is paused; a caller that does not
	// lease them leaves them to the next claim when its transaction ends.
	SubscriptionAndDue(ctx context.Context, id string, now time.Time, limit int) (*Subscription, []*Delivery, error)
}

// claimStart reads subscription id and, in the same round trip where tx can, the deliveries due.
func claimStart(ctx context.Context, tx DeliveryTx, id string, now time.Time, limit int) (*Subscription, []*Delivery, error) {
	if c, ok := tx.(ClaimStartTx); ok {
		return c.SubscriptionAndDue(ctx, id, now, limit)
	}
	sub, err := tx.SubscriptionGet(ctx, id)
	if err != nil || sub.State == SubscriptionPaused {
		return sub, nil, err
	}
	due, err := tx.DeliveriesDue(ctx, id, now, limit)
	return sub, due, err
}
