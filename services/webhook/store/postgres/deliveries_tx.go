package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// deliveryTx is the PostgreSQL store.DeliveryTx, on a READ COMMITTED transaction (deliveryTxOptions).
// Writes whose results nothing reads are held in pending and sent together, in order, before the next
// read and before the commit: an ack (update the delivery, record the attempt, lock and settle its event)
// costs one round trip for its writes instead of four. Each statement of a batch still runs on a
// snapshot taken when it starts, after the ones before it, as if sent one by one.
//
// The transaction is db.PipelineTx's: its BEGIN waits in pending too, so that every statement must be
// sent after pending (flush, or pending itself extended, as SubscriptionAndDue does); its COMMIT goes
// with the writes still pending when the algorithm returns.
type deliveryTx struct {
	tx      *pgx.Conn
	pending *pgx.Batch
}

// flush sends the pending writes.
func (t *deliveryTx) flush(ctx context.Context) error {
	if t.pending.Len() == 0 {
		return nil
	}
	return t.tx.SendBatch(ctx, t.take()).Close()
}

// take returns the pending statements and starts a new list.
func (t *deliveryTx) take() *pgx.Batch {
	b := *t.pending
	*t.pending = pgx.Batch{}
	return &b
}

var (
	// deliveriesDue skips the rows other claims hold: two claims never wait on, nor take, one delivery.
	// A row another claim leased and committed meanwhile is re-checked against the WHERE and no longer
	// matches (its available time moved to the end of the new lease).
	deliveriesDue = store.DeliveriesDueQuery(text, " FOR UPDATE SKIP LOCKED")
	deliveryLock  = deliveryGet + " FOR UPDATE"
	// deliveriesLock locks in id order: two batches naming the same deliveries take them in one order.
	deliveriesLock   = `SELECT ` + store.DeliveryColumns(text) + ` FROM deliveries WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`
	deliveriesDelete = `DELETE FROM deliveries WHERE subscription_id = $1 RETURNING id, event_id::text, status`
	attemptsDelete   = `DELETE FROM delivery_attempts WHERE delivery_id = ANY($1::bigint[])`
	eventsByID       = `SELECT ` + allColumns + ` FROM events WHERE id = ANY($1::uuid[])`
	// lockEvents takes the events' row locks in id order before their status is computed: a settle that
	// waited here then reads, in the next statement, every delivery change its predecessor committed (the
	// last of two concurrent settles of one event's deliveries sees both). The update alone would not:
	// READ COMMITTED re-checks an updated row after a wait, but evaluates the subqueries of its new
	// value on the statement's first snapshot.
	lockEvents   = `SELECT 1 FROM events WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE`
	eventsSettle = store.EventsSettleQuery(`id = ANY($1::uuid[])`)
)

func (t *deliveryTx) SubscriptionGet(ctx context.Context, id string) (*store.Subscription, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	sub, err := scanSubscription(t.tx.QueryRow(ctx, subscriptionGet, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("subscription %s not found", id)
	}
	return sub, err
}

func (t *deliveryTx) SubscriptionDelete(ctx context.Context, id string) (bool, error) {
	if err := t.flush(ctx); err != nil {
		return false, err
	}
	tag, err := t.tx.Exec(ctx, store.SubscriptionDeleteSQL, id)
	return tag.RowsAffected() == 1, err
}

// DeliveriesDelete deletes the deliveries first and then their attempts, in a later statement: a settle
// that held one of the deliveries (and recorded an attempt) has committed by the time the delete of the
// delivery got past its lock, so the second statement sees, and deletes, that attempt too. The other
// order (SQLite's, where no settle interleaves) would leave it behind.
func (t *deliveryTx) DeliveriesDelete(ctx context.Context, subscriptionID string) ([]string, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, deliveriesDelete, subscriptionID)
	if err != nil {
		return nil, err
	}
	var events []string
	var ids []int64
	var id int64
	var event string
	var status int16
	_, err = pgx.ForEachRow(rows, []any{&id, &event, &status}, func() error {
		ids = append(ids, id)
		if store.DeliveryStatus(status) != store.DeliveryDelivered {
			events = append(events, event)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	_, err = t.tx.Exec(ctx, attemptsDelete, ids)
	return events, err
}

func (t *deliveryTx) DeliveriesDue(ctx context.Context, subscriptionID string, now time.Time, limit int) ([]*store.Delivery, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, deliveriesDue, subscriptionID, now, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Delivery, error) { return scanDelivery(row) })
}

func (t *deliveryTx) DeliveryForUpdate(ctx context.Context, id int64) (*store.Delivery, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	d, err := scanDelivery(t.tx.QueryRow(ctx, deliveryLock, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errs.NotFound("delivery %d not found", id)
	}
	return d, err
}

// DeliveriesForUpdate locks and reads the deliveries in the round trip of the pending statements (a
// settle's first read: the transaction's BEGIN goes with it).
func (t *deliveryTx) DeliveriesForUpdate(ctx context.Context, ids []int64) ([]*store.Delivery, error) {
	b := t.take()
	var ds []*store.Delivery
	b.Queue(deliveriesLock, ids).Query(func(rows pgx.Rows) error {
		var err error
		ds, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Delivery, error) { return scanDelivery(row) })
		return err
	})
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return ds, nil
}

// DeliveriesUpdate queues the updates (see deliveryTx): one statement over arrays for several
// (deliveriesUpdate), the plain one for a single delivery, for which the arrays cost more than they save.
func (t *deliveryTx) DeliveriesUpdate(ctx context.Context, ds []*store.Delivery) error {
	switch len(ds) {
	case 0:
	case 1:
		d := ds[0]
		t.pending.Queue(store.DeliveryUpdateSQL, d.ID, int16(d.Status), d.AttemptCount, optionalTime(d.AvailableTime), d.Lease, d.Consumer,
			optionalTime(d.LeaseStartTime), d.LastError, d.UpdateTime)
	default:
		t.pending.Queue(deliveriesUpdate, updateArgs(ds)...)
	}
	return nil
}

// AttemptsInsert queues the inserts (see deliveryTx), as DeliveriesUpdate does the updates.
func (t *deliveryTx) AttemptsInsert(ctx context.Context, as []store.DeliveryAttempt) error {
	switch len(as) {
	case 0:
	case 1:
		a := as[0]
		t.pending.Queue(store.AttemptInsertSQL, a.DeliveryID, a.Number, a.StartTime, a.Duration.Microseconds(), a.Outcome, a.Error, a.Consumer,
			a.HTTPStatus, a.Response)
	default:
		t.pending.Queue(attemptsInsert, attemptArgs(as)...)
	}
	return nil
}

// EventsGet reads the events after the pending writes, in the same round trip (a claim's leases and
// its read of their events).
func (t *deliveryTx) EventsGet(ctx context.Context, ids []string) ([]*store.Event, error) {
	b := t.take()
	var out []*store.Event
	b.Queue(eventsByID, ids).Query(func(rows pgx.Rows) error {
		var err error
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Event, error) { return scan(row, true) })
		return err
	})
	if err := t.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// EventsSettle queues the lock and then the update (see deliveryTx): the update starts after the lock
// is held, on a snapshot that sees what the previous holder committed.
func (t *deliveryTx) EventsSettle(ctx context.Context, ids []string, now time.Time) error {
	t.pending.Queue(lockEvents, ids)
	t.pending.Queue(eventsSettle, ids, now)
	return nil
}

func (t *deliveryTx) DeliveriesRedrive(ctx context.Context, p store.RedriveParams) ([]string, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	q, args := store.RedriveQuery(text, p, func(t time.Time) any { return t },
		func(col, arg string) string { return "strpos(" + col + ", " + arg + ") > 0" })
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
