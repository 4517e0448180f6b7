package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// deliveries is the delivery store's algorithms (store.Deliveries), embedded in Store over this backend's
// deliveryDriver, so that its methods are the Store's store.DeliveryStore methods (the alias keeps the
// field unexported). Concurrent claims, from any replica, lock the deliveries they take and skip those
// another holds (FOR UPDATE SKIP LOCKED): no delivery is leased twice at once.
type deliveries = store.Deliveries

var _ store.DeliveryStore = (*Store)(nil)

// deliveryDriver is the PostgreSQL store.DeliveryDriver.
type deliveryDriver struct{ db *db.PostgresDB }

var _ store.DeliveryDriver = (*deliveryDriver)(nil)

// text reads uuid and jsonb columns as text, the form both backends scan.
const text = "::text"

var (
	subscriptionGet = store.SubscriptionGetQuery(text)
	deliveryGet     = store.DeliveryGetQuery(text)
	// deliveryTxOptions: READ COMMITTED, named rather than taken from the server's default. The delivery
	// algorithms lock rows and then read: each statement after a lock wait must see what the holder
	// committed (deliveries locked, then their events: see store.DeliveryTx), which a transaction-wide
	// snapshot (REPEATABLE READ) would not, failing instead with serialization errors.
	deliveryTxOptions = pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite}

	// deliveryTxBegin opens every delivery transaction (sent with its first statements, no round trip of
	// its own: db.PipelineTx); the SET LOCAL is indexPlansOnly. Each statement of these transactions has an index to read (TestDeliveryPlansUseIndexes
	// shows which, with sequential scans off as here), but the planner picks a sequential scan while a
	// table is nearly empty, and PostgreSQL keeps a prepared statement's generic plan until the table's
	// statistics change: in a new store, plans made on its first rows scanned the whole deliveries table
	// at every claim and settle (measured: 2–8 ms per update of 10 deliveries as the table reached 9,000
	// rows, the rate falling run by run), until autovacuum first analyzed it (after up to a minute,
	// autovacuum_naptime). With sequential scans off, a plan made at any size is the one made for a
	// large table.
	deliveryTxBegin = []string{`BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE`, indexPlansOnly}
	indexPlansOnly  = `SET LOCAL enable_seqscan = off`
)

func (d *deliveryDriver) DeliveryTx(ctx context.Context, fn func(store.DeliveryTx) error) error {
	return d.db.PipelineTx(ctx, deliveryTxBegin, func(conn *pgx.Conn, pending *pgx.Batch) error {
		return fn(&deliveryTx{tx: conn, pending: pending})
	})
}

func (d *deliveryDriver) SubscriptionInsert(ctx context.Context, sub *store.Subscription) error {
	return d.db.TxWith(ctx, deliveryTxOptions, func(tx pgx.Tx) error {
		args := append([]any{sub.ID, sub.Name,
			store.StringsJSON(sub.Filter.Sources), store.StringsJSON(sub.Filter.Modules), store.StringsJSON(sub.Filter.Operations),
			store.StringsJSON(sub.Filter.EventTypes), sub.Retry.MaxRetries, sub.Retry.BackoffBase.Milliseconds(),
			sub.Retry.BackoffCap.Milliseconds(), sub.LeaseDuration.Milliseconds(), int16(sub.State), sub.CreateTime, sub.UpdateTime},
			store.PushArgs(sub, timeArg)...)
		_, err := tx.Exec(ctx, store.SubscriptionInsertSQL, args...)
		return err
	})
}

func (d *deliveryDriver) SubscriptionSetState(ctx context.Context, id string, state store.SubscriptionState, now time.Time) (*store.Subscription, error) {
	var out *store.Subscription
	err := d.db.TxWith(ctx, deliveryTxOptions, func(tx pgx.Tx) error {
		var err error
		out, err = scanSubscription(tx.QueryRow(ctx, store.SubscriptionSetStateQuery(text), id, int16(state), now))
		return err
	})
	return out, err
}

func (d *deliveryDriver) SubscriptionRead(ctx context.Context, id string) (*store.Subscription, error) {
	return db.PostgresQueryRow(ctx, d.db, subscriptionGet, []any{id}, scanSubscription)
}

func (d *deliveryDriver) SubscriptionPage(ctx context.Context, p store.SubscriptionListParams) ([]*store.Subscription, error) {
	q, args := store.SubscriptionListQuery(text, p)
	return db.PostgresQueryAll(ctx, d.db, q, args, scanSubscription)
}

func (d *deliveryDriver) DeliveryRead(ctx context.Context, id int64) (*store.Delivery, []store.Attempt, error) {
	var del *store.Delivery
	var as []store.Attempt
	// One snapshot, so that the attempts are those of the delivery as read.
	err := d.db.TxWith(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if del, err = scanDelivery(tx.QueryRow(ctx, deliveryGet, id)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, store.AttemptsQuery, id)
		if err != nil {
			return err
		}
		as, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Attempt, error) {
			var a store.Attempt
			var dur int64
			err := row.Scan(&a.Number, &a.StartTime, &dur, &a.Outcome, &a.Error, &a.Consumer, &a.HTTPStatus, &a.Response)
			a.StartTime, a.Duration = a.StartTime.UTC(), time.Duration(dur)*time.Microsecond
			return a, err
		})
		if len(as) == 0 {
			as = nil
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return del, as, nil
}

func (d *deliveryDriver) DeliveryPage(ctx context.Context, p store.DeliveryListParams) ([]*store.Delivery, error) {
	q, args := store.DeliveryListQuery(text, p)
	return db.PostgresQueryAll(ctx, d.db, q, args, scanDelivery)
}

func (d *deliveryDriver) DeliveryCountInFlight(ctx context.Context, subscriptionID, consumer string, now time.Time) (int, error) {
	n, err := db.PostgresQueryRow(ctx, d.db, store.InFlightQuery, []any{subscriptionID, consumer, now}, func(row db.Scanner) (int64, error) {
		var n int64
		return n, row.Scan(&n)
	})
	return int(n), err
}

func scanSubscription(row db.Scanner) (*store.Subscription, error) {
	var s store.Subscription
	var sources, modules, ops, types string
	var base, capMS, leaseMS int64
	var state, mode int16
	var endpoint string
	var allowPrivate bool
	var timeoutMS int64
	var secret, prev []byte
	var prevExpire *time.Time
	if err := row.Scan(&s.ID, &s.Name, &sources, &modules, &ops, &types, &s.Retry.MaxRetries, &base, &capMS, &leaseMS,
		&state, &s.CreateTime, &s.UpdateTime, &mode, &endpoint, &allowPrivate, &timeoutMS, &secret, &prev, &prevExpire); err != nil {
		return nil, err
	}
	var expire time.Time
	if prevExpire != nil {
		expire = *prevExpire
	}
	s.Mode, s.Push = store.PushFromColumns(int32(mode), endpoint, allowPrivate, timeoutMS, secret, prev, expire)
	for _, f := range []struct {
		col string
		dst *[]string
	}{{sources, &s.Filter.Sources}, {modules, &s.Filter.Modules}, {ops, &s.Filter.Operations}, {types, &s.Filter.EventTypes}} {
		v, err := store.ParseStrings(f.col)
		if err != nil {
			return nil, errs.Wrap(errs.KindInternal, err, "stored subscription filter is not a JSON array")
		}
		*f.dst = v
	}
	s.State = store.SubscriptionState(state)
	s.Retry.BackoffBase, s.Retry.BackoffCap = time.Duration(base)*time.Millisecond, time.Duration(capMS)*time.Millisecond
	s.LeaseDuration = time.Duration(leaseMS) * time.Millisecond
	s.CreateTime, s.UpdateTime = s.CreateTime.UTC(), s.UpdateTime.UTC()
	return &s, nil
}

func scanDelivery(row db.Scanner) (*store.Delivery, error) {
	var d store.Delivery
	var status int16
	var available, leaseStart *time.Time
	if err := row.Scan(&d.ID, &d.SubscriptionID, &d.EventID, &d.Source, &status, &d.AttemptCount, &available, &d.Lease,
		&d.Consumer, &leaseStart, &d.LastError, &d.EventReceiveTime, &d.CreateTime, &d.UpdateTime); err != nil {
		return nil, err
	}
	d.Status = store.DeliveryStatus(status)
	if available != nil {
		d.AvailableTime = available.UTC()
	}
	if leaseStart != nil {
		d.LeaseStartTime = leaseStart.UTC()
	}
	d.EventReceiveTime, d.CreateTime, d.UpdateTime = d.EventReceiveTime.UTC(), d.CreateTime.UTC(), d.UpdateTime.UTC()
	return &d, nil
}
