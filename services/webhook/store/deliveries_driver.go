package store

import (
	"context"
	"time"
)

// DeliveryDriver is what one backend supplies for the delivery store: the reads, single-statement
// writes, and transactions made of the small operations of DeliveryTx. Drivers hold SQL only; the order
// of operations, the lease rules, retries and the event status live in Deliveries.
type DeliveryDriver interface {
	// DeliveryTx runs fn in one write transaction and commits when fn returns nil. SQLite's single writer
	// runs one at a time; PostgreSQL runs them at READ COMMITTED, so that each statement sees what the
	// holders of the row locks it waited for committed.
	DeliveryTx(ctx context.Context, fn func(DeliveryTx) error) error
	// SubscriptionInsert stores s (errs.KindAlreadyExists when its id or name is taken).
	SubscriptionInsert(ctx context.Context, s *Subscription) error
	// SubscriptionSetState sets the state and update time of subscription id and returns it as stored
	// (errs.KindNotFound).
	SubscriptionSetState(ctx context.Context, id string, state SubscriptionState, now time.Time) (*Subscription, error)
	// SubscriptionRead returns subscription id (errs.KindNotFound).
	SubscriptionRead(ctx context.Context, id string) (*Subscription, error)
	// SubscriptionPage returns at most p.Limit subscriptions after p.AfterID in id order.
	SubscriptionPage(ctx context.Context, p SubscriptionListParams) ([]*Subscription, error)
	// DeliveryRead returns delivery id and its attempts in number order (errs.KindNotFound).
	DeliveryRead(ctx context.Context, id int64) (*Delivery, []Attempt, error)
	// DeliveryPage returns at most p.Limit deliveries matching p after p.AfterID in id order.
	DeliveryPage(ctx context.Context, p DeliveryListParams) ([]*Delivery, error)
	// DeliveryCountInFlight counts the leased deliveries of subscription held by consumer whose lease
	// ends after now.
	DeliveryCountInFlight(ctx context.Context, subscriptionID, consumer string, now time.Time) (int, error)

	// The parts of each feature, declared beside it.
	PushDriver
	ReplayDriver
	OutboxDriver
}

// DeliveryTx is the part of a delivery transaction each backend writes in SQL. Row locks (PostgreSQL)
// are always taken deliveries first, then events in id order (EventsSettle), so that no two
// transactions wait on each other.
type DeliveryTx interface {
	// SubscriptionGet reads subscription id (errs.KindNotFound).
	SubscriptionGet(ctx context.Context, id string) (*Subscription, error)
	// SubscriptionDelete deletes subscription id, reporting whether it existed. On PostgreSQL the delete
	// waits for the ingest transactions whose fan-out locked the row (FOR KEY SHARE) to commit, so that
	// the deliveries they made are visible to the statements after it.
	SubscriptionDelete(ctx context.Context, id string) (bool, error)
	// DeliveriesDelete deletes the deliveries of subscription id and their attempts and returns the ids
	// of the events of those that were not delivered (whose status may change).
	DeliveriesDelete(ctx context.Context, subscriptionID string) ([]string, error)
	// DeliveriesDue returns, locked, at most limit deliveries of subscription that are pending, failed or
	// leased with an available time at or before now, by available time then id. On PostgreSQL rows
	// another transaction holds are skipped (FOR UPDATE SKIP LOCKED): concurrent claims take different
	// deliveries.
	DeliveriesDue(ctx context.Context, subscriptionID string, now time.Time, limit int) ([]*Delivery, error)
	// DeliveryForUpdate returns delivery id, locked (errs.KindNotFound).
	DeliveryForUpdate(ctx context.Context, id int64) (*Delivery, error)
	// DeliveriesForUpdate returns, locked in id order, those of the deliveries ids that exist, by id.
	DeliveriesForUpdate(ctx context.Context, ids []int64) ([]*Delivery, error)
	// DeliveriesUpdate writes the mutable fields of ds (status, attempt count, available time, lease,
	// consumer, lease start, last error, update time).
	DeliveriesUpdate(ctx context.Context, ds []*Delivery) error
	// AttemptsInsert records attempts.
	AttemptsInsert(ctx context.Context, as []DeliveryAttempt) error
	// EventsGet reads the events ids, payloads and headers included, in no particular order.
	EventsGet(ctx context.Context, ids []string) ([]*Event, error)
	// EventsSettle locks the events ids (PostgreSQL, in id order) and then sets each one's status from its
	// deliveries (see EventStatusSQL), with update time now where it changes.
	EventsSettle(ctx context.Context, ids []string, now time.Time) error
	// DeliveriesRedrive makes the dead letters p chooses pending (attempt count 0, available at p.Now)
	// and returns their events' ids.
	DeliveriesRedrive(ctx context.Context, p RedriveParams) ([]string, error)

	// The parts of each feature, declared beside it.
	PushTx
	ReplayTx
	OutboxTx
}

// DeliveryAttempt is an attempt of one delivery, as DeliveryTx records it.
type DeliveryAttempt struct {
	DeliveryID int64
	Attempt
}
