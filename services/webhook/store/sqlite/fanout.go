package sqlite

import (
	"context"
	"database/sql"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// fanOutSQL makes one pending delivery per event with seq in [$1, $2] and subscription whose filter
// matches it (paused ones included: they only stop claims). A filter list is '[]' for "any" (stored by
// store.StringsJSON, so the text comparison is exact), else the event's normalised value must be one of
// its strings. The delivery is available at once and created at the event's receive time, so that it
// sorts with its event and the statement needs no clock.
const fanOutSQL = `INSERT INTO deliveries (subscription_id, event_id, source, status, attempt_count, available_time, lease, consumer,
		lease_start_time, last_error, event_receive_time, create_time, update_time)
	SELECT s.id, e.id, e.source, 1, 0, e.receive_time, 0, '', NULL, '', e.receive_time, e.receive_time, e.receive_time
	FROM events AS e, subscriptions AS s
	WHERE e.seq BETWEEN ?1 AND ?2
		AND (s.sources = '[]' OR e.source IN (SELECT value FROM json_each(s.sources)))
		AND (s.modules = '[]' OR e.module IN (SELECT value FROM json_each(s.modules)))
		AND (s.operations = '[]' OR e.operation IN (SELECT value FROM json_each(s.operations)))
		AND (s.event_types = '[]' OR e.event_type IN (SELECT value FROM json_each(s.event_types)))`

// settleUnwantedSQL stores as delivered the events with seq in [$1, $2] that got no delivery.
const settleUnwantedSQL = `UPDATE events SET status = 3
	WHERE seq BETWEEN ?1 AND ?2 AND status <> 3 AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = events.id)
	RETURNING seq`

// anySubscriptionSQL tells whether any subscription exists.
const anySubscriptionSQL = `SELECT EXISTS (SELECT 1 FROM subscriptions)`

// withFanOutStatus returns copies of es with the status they are to be stored with in tx: pending when
// any subscription exists, else delivered (an event no subscription wants). es itself is not changed.
// stmts may hold anySubscriptionSQL prepared.
//
// Storing them as delivered from the start, rather than updating them after the fan-out, keeps an
// ingest without subscriptions as cheap as before subscriptions existed (the update rewrote every event
// and two of its index entries: measured +50 % per event in a batch of 64). The read runs in the
// inserting transaction (the single writer's): no subscription can be created between it and the
// fan-out, and it costs a step of a prepared statement instead of a query on a reader connection.
func withFanOutStatus(ctx context.Context, tx *sql.Tx, stmts db.Prepared, es []*store.Event) ([]*store.Event, error) {
	st, err := stmts.Stmt(ctx, tx, anySubscriptionSQL)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var some bool
	if err := st.QueryRowContext(ctx).Scan(&some); err != nil {
		return nil, err
	}
	return store.WithStatus(es, some), nil
}

// fanOut gives the events just inserted in tx (ins; duplicates and nil entries are skipped) that were
// stored pending (see withFanOutStatus) their deliveries, and stores those no subscription wants as delivered,
// in ins too. It runs in the transaction that inserted them, so that an event is never visible without
// its deliveries. Events stored delivered get none: no subscription existed when the batch began.
//
// The events of one write transaction have consecutive seqs (the single writer: no other transaction
// inserts meanwhile), so [lowest, highest] names exactly them.
// stmts may hold fanOutSQL and settleUnwantedSQL prepared (the zero Prepared: prepared here).
func fanOut(ctx context.Context, tx *sql.Tx, stmts db.Prepared, ins []store.Inserted) error {
	lo, hi := int64(-1), int64(-1)
	bySeq := make(map[int64]*store.Event, len(ins))
	for _, in := range ins {
		if in.Event == nil || in.Duplicate || in.Event.Status == store.StatusDelivered {
			continue
		}
		if lo < 0 || in.Event.Seq < lo {
			lo = in.Event.Seq
		}
		hi = max(hi, in.Event.Seq)
		bySeq[in.Event.Seq] = in.Event
	}
	if lo < 0 {
		return nil
	}
	fan, err := stmts.Stmt(ctx, tx, fanOutSQL)
	if err != nil {
		return err
	}
	defer fan.Close()
	if _, err := fan.ExecContext(ctx, lo, hi); err != nil {
		return err
	}
	settle, err := stmts.Stmt(ctx, tx, settleUnwantedSQL)
	if err != nil {
		return err
	}
	defer settle.Close()
	rows, err := settle.QueryContext(ctx, lo, hi)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return err
		}
		if e := bySeq[seq]; e != nil {
			e.Status = store.StatusDelivered
		}
	}
	return rows.Err()
}
