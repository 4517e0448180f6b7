package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
)

// deliveryTx is the SQLite store.DeliveryTx: statements on the single writer's transaction, which no
// other writer interleaves with, so nothing here locks rows.
type deliveryTx struct {
	tx    *sql.Tx
	stmts db.Prepared
}

var (
	deliveriesDue    = sqlq.Rebind(store.DeliveriesDueQuery("", ""))
	deliveryUpdate   = sqlq.Rebind(store.DeliveryUpdateSQL)
	attemptInsert    = sqlq.Rebind(store.AttemptInsertSQL)
	attemptsDelete   = sqlq.Rebind(store.AttemptsDeleteSQL)
	deliveriesDelete = sqlq.Rebind(store.DeliveriesDeleteQuery(""))
	// The ids are one JSON array argument: one statement text whatever their number.
	eventsSettle   = sqlq.Rebind(store.EventsSettleQuery(`id IN (SELECT value FROM json_each($1))`))
	deliveriesByID = `SELECT ` + store.DeliveryColumns("") + ` FROM deliveries WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id`
	eventsByID     = `SELECT ` + allColumns + ` FROM events WHERE id IN (SELECT value FROM json_each(?1))`
)

func (t deliveryTx) SubscriptionGet(ctx context.Context, id string) (*store.Subscription, error) {
	st, err := t.stmts.Stmt(ctx, t.tx, subscriptionGet)
	if err != nil {
		return nil, err
	}
	sub, err := scanSubscription(st.QueryRowContext(ctx, id))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("subscription %s not found", id)
	}
	return sub, err
}

func (t deliveryTx) SubscriptionDelete(ctx context.Context, id string) (bool, error) {
	res, err := t.tx.ExecContext(ctx, sqlq.Rebind(store.SubscriptionDeleteSQL), id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (t deliveryTx) DeliveriesDelete(ctx context.Context, subscriptionID string) ([]string, error) {
	if _, err := t.tx.ExecContext(ctx, attemptsDelete, subscriptionID); err != nil {
		return nil, err
	}
	rows, err := t.tx.QueryContext(ctx, deliveriesDelete, subscriptionID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		var status store.DeliveryStatus
		if err := rows.Scan(&id, &status); err != nil {
			return nil, err
		}
		if status != store.DeliveryDelivered {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

func (t deliveryTx) DeliveriesDue(ctx context.Context, subscriptionID string, now time.Time, limit int) ([]*store.Delivery, error) {
	st, err := t.stmts.Stmt(ctx, t.tx, deliveriesDue)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, subscriptionID, now.UnixMicro(), limit)
	return scanAll(rows, err, scanDelivery)
}

func (t deliveryTx) DeliveryForUpdate(ctx context.Context, id int64) (*store.Delivery, error) {
	st, err := t.stmts.Stmt(ctx, t.tx, deliveryGet)
	if err != nil {
		return nil, err
	}
	d, err := scanDelivery(st.QueryRowContext(ctx, id))
	if err == sql.ErrNoRows {
		return nil, errs.NotFound("delivery %d not found", id)
	}
	return d, err
}

func (t deliveryTx) DeliveriesForUpdate(ctx context.Context, ids []int64) ([]*store.Delivery, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	st, err := t.stmts.Stmt(ctx, t.tx, deliveriesByID)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, string(list))
	return scanAll(rows, err, scanDelivery)
}

func (t deliveryTx) DeliveriesUpdate(ctx context.Context, ds []*store.Delivery) error {
	stmt, err := t.stmts.Stmt(ctx, t.tx, deliveryUpdate)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if _, err := stmt.ExecContext(ctx, d.ID, int32(d.Status), d.AttemptCount, micros(d.AvailableTime), d.Lease, d.Consumer,
			micros(d.LeaseStartTime), d.LastError, d.UpdateTime.UnixMicro()); err != nil {
			return err
		}
	}
	return nil
}

func (t deliveryTx) AttemptsInsert(ctx context.Context, as []store.DeliveryAttempt) error {
	stmt, err := t.stmts.Stmt(ctx, t.tx, attemptInsert)
	if err != nil {
		return err
	}
	for _, a := range as {
		if _, err := stmt.ExecContext(ctx, a.DeliveryID, a.Number, a.StartTime.UnixMicro(), a.Duration.Microseconds(), a.Outcome,
			a.Error, a.Consumer, a.HTTPStatus, a.Response); err != nil {
			return err
		}
	}
	return nil
}

func (t deliveryTx) EventsGet(ctx context.Context, ids []string) ([]*store.Event, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	st, err := t.stmts.Stmt(ctx, t.tx, eventsByID)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, string(list))
	return scanAll(rows, err, func(row db.Scanner) (*store.Event, error) { return scan(row, true) })
}

func (t deliveryTx) EventsSettle(ctx context.Context, ids []string, now time.Time) error {
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	st, err := t.stmts.Stmt(ctx, t.tx, eventsSettle)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, string(list), now.UnixMicro())
	return err
}

func (t deliveryTx) DeliveriesRedrive(ctx context.Context, p store.RedriveParams) ([]string, error) {
	q, args := store.RedriveQuery("", p, func(t time.Time) any { return t.UnixMicro() },
		func(col, arg string) string { return "instr(" + col + ", " + arg + ") > 0" })
	rows, err := t.tx.QueryContext(ctx, sqlq.Rebind(q), args...)
	return scanAll(rows, err, func(row db.Scanner) (string, error) {
		var id string
		err := row.Scan(&id)
		return id, err
	})
}

// scanAll scans every row of a query run in the transaction with scan (nil when there is none), given
// the query's rows and error. Errors are left as the driver gave them: DeliveryTx translates them once.
func scanAll[T any](rows *sql.Rows, err error, scan func(db.Scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
