package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
)

// deliveries is the delivery store's algorithms (store.Deliveries), embedded in Store over this backend's
// deliveryDriver, so that its methods are the Store's store.DeliveryStore methods (the alias keeps the
// field unexported). The single writer runs one claim at a time: a delivery one claim leased is not due
// for the next until its lease ends.
type deliveries = store.Deliveries

var _ store.DeliveryStore = (*Store)(nil)

// deliveryDriver is the SQLite store.DeliveryDriver.
type deliveryDriver struct{ db *db.SQLiteDB }

var _ store.DeliveryDriver = (*deliveryDriver)(nil)

var (
	subscriptionGet = sqlq.Rebind(store.SubscriptionGetQuery(""))
	deliveryGet     = sqlq.Rebind(store.DeliveryGetQuery(""))
)

func (d *deliveryDriver) DeliveryTx(ctx context.Context, fn func(store.DeliveryTx) error) error {
	stmts, err := d.db.WriteStmts(ctx, cachedQueries...)
	if err != nil {
		return err
	}
	return db.SQLiteError(d.db.WriteTx(ctx, func(tx *sql.Tx) error { return fn(deliveryTx{tx: tx, stmts: stmts}) }))
}

func (d *deliveryDriver) SubscriptionInsert(ctx context.Context, sub *store.Subscription) error {
	return db.SQLiteError(d.db.WriteTx(ctx, func(tx *sql.Tx) error {
		args := append([]any{sub.ID, sub.Name,
			store.StringsJSON(sub.Filter.Sources), store.StringsJSON(sub.Filter.Modules), store.StringsJSON(sub.Filter.Operations),
			store.StringsJSON(sub.Filter.EventTypes), sub.Retry.MaxRetries, sub.Retry.BackoffBase.Milliseconds(),
			sub.Retry.BackoffCap.Milliseconds(), sub.LeaseDuration.Milliseconds(), int32(sub.State),
			sub.CreateTime.UnixMicro(), sub.UpdateTime.UnixMicro()}, store.PushArgs(sub, unixMicro)...)
		_, err := tx.ExecContext(ctx, sqlq.Rebind(store.SubscriptionInsertSQL), args...)
		return err
	}))
}

func (d *deliveryDriver) SubscriptionSetState(ctx context.Context, id string, state store.SubscriptionState, now time.Time) (*store.Subscription, error) {
	var out *store.Subscription
	err := d.db.WriteTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanSubscription(tx.QueryRowContext(ctx, sqlq.Rebind(store.SubscriptionSetStateQuery("")), id, int32(state), now.UnixMicro()))
		return err
	})
	return out, db.SQLiteError(err)
}

func (d *deliveryDriver) SubscriptionRead(ctx context.Context, id string) (*store.Subscription, error) {
	sub, err := scanSubscription(d.db.Read.QueryRowContext(ctx, subscriptionGet, id))
	return sub, db.SQLiteError(err)
}

func (d *deliveryDriver) SubscriptionPage(ctx context.Context, p store.SubscriptionListParams) ([]*store.Subscription, error) {
	q, args := store.SubscriptionListQuery("", p)
	return db.SQLiteQueryAll(ctx, d.db, q, args, scanSubscription)
}

func (d *deliveryDriver) DeliveryRead(ctx context.Context, id int64) (*store.Delivery, []store.Attempt, error) {
	// One read transaction, so that the attempts are those of the delivery as read.
	tx, err := d.db.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, db.SQLiteError(err)
	}
	defer func() { _ = tx.Rollback() }()
	del, err := scanDelivery(tx.QueryRowContext(ctx, deliveryGet, id))
	if err != nil {
		return nil, nil, db.SQLiteError(err)
	}
	rows, err := tx.QueryContext(ctx, sqlq.Rebind(store.AttemptsQuery), id)
	if err != nil {
		return nil, nil, db.SQLiteError(err)
	}
	defer rows.Close()
	var as []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var start, dur int64
		if err := rows.Scan(&a.Number, &start, &dur, &a.Outcome, &a.Error, &a.Consumer, &a.HTTPStatus, &a.Response); err != nil {
			return nil, nil, db.SQLiteError(err)
		}
		a.StartTime, a.Duration = time.UnixMicro(start).UTC(), time.Duration(dur)*time.Microsecond
		as = append(as, a)
	}
	return del, as, db.SQLiteError(rows.Err())
}

func (d *deliveryDriver) DeliveryPage(ctx context.Context, p store.DeliveryListParams) ([]*store.Delivery, error) {
	q, args := store.DeliveryListQuery("", p)
	return db.SQLiteQueryAll(ctx, d.db, q, args, scanDelivery)
}

func (d *deliveryDriver) DeliveryCountInFlight(ctx context.Context, subscriptionID, consumer string, now time.Time) (int, error) {
	var n int
	err := d.db.Read.QueryRowContext(ctx, sqlq.Rebind(store.InFlightQuery), subscriptionID, consumer, now.UnixMicro()).Scan(&n)
	return n, db.SQLiteError(err)
}

func scanSubscription(row db.Scanner) (*store.Subscription, error) {
	var s store.Subscription
	var sources, modules, ops, types string
	var base, capMS, leaseMS, created, updated int64
	var mode int32
	var endpoint string
	var allowPrivate, timeoutMS int64
	var secret, prev []byte
	var prevExpire sql.NullInt64
	if err := row.Scan(&s.ID, &s.Name, &sources, &modules, &ops, &types, &s.Retry.MaxRetries, &base, &capMS, &leaseMS,
		&s.State, &created, &updated, &mode, &endpoint, &allowPrivate, &timeoutMS, &secret, &prev, &prevExpire); err != nil {
		return nil, err
	}
	var expire time.Time
	if prevExpire.Valid {
		expire = time.UnixMicro(prevExpire.Int64)
	}
	s.Mode, s.Push = store.PushFromColumns(mode, endpoint, allowPrivate == 1, timeoutMS, secret, prev, expire)
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
	s.Retry.BackoffBase, s.Retry.BackoffCap = time.Duration(base)*time.Millisecond, time.Duration(capMS)*time.Millisecond
	s.LeaseDuration = time.Duration(leaseMS) * time.Millisecond
	s.CreateTime, s.UpdateTime = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return &s, nil
}

func scanDelivery(row db.Scanner) (*store.Delivery, error) {
	var d store.Delivery
	var available, leaseStart sql.NullInt64
	var received, created, updated int64
	if err := row.Scan(&d.ID, &d.SubscriptionID, &d.EventID, &d.Source, &d.Status, &d.AttemptCount, &available, &d.Lease,
		&d.Consumer, &leaseStart, &d.LastError, &received, &created, &updated); err != nil {
		return nil, err
	}
	if available.Valid {
		d.AvailableTime = time.UnixMicro(available.Int64).UTC()
	}
	if leaseStart.Valid {
		d.LeaseStartTime = time.UnixMicro(leaseStart.Int64).UTC()
	}
	d.EventReceiveTime, d.CreateTime, d.UpdateTime = time.UnixMicro(received).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return &d, nil
}
