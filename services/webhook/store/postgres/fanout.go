package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// fanOutSQL makes one pending delivery per event of $1 (the ids just inserted) and subscription whose
// filter matches it (paused ones included: they only stop claims), and in the same statement stores as
// delivered the events of $1 that got none, returning those. A filter list is '[]' for "any", else
// the event's normalised value must be one of its strings (jsonb ?: a top-level string equal to it).
// The delivery is available at once and created at the event's receive time, so that it sorts with its
// event and needs no clock.
//
// One statement, so one snapshot: an event is marked delivered exactly when this statement made it no
// delivery, whatever subscriptions other replicas create or delete meanwhile (a subscription committed
// after the snapshot gets no delivery of the event and the event is delivered; one committed before gets
// it and the event stays pending).
//
// FOR KEY SHARE OF s locks the subscriptions that receive deliveries until this ingest transaction
// ends, so that a concurrent SubscriptionDelete, which deletes the subscription's row first, waits for
// these deliveries to commit and then deletes them too, instead of missing them and leaving deliveries
// of a deleted subscription. A subscription deleted (and committed) before this statement reached its
// row is skipped (READ COMMITTED re-checks a locked row and finds it gone). KEY SHARE does not conflict
// with pausing or resuming (an update of no key column), nor with other ingests.
const fanOutSQL = `WITH fanned AS (
		INSERT INTO deliveries (subscription_id, event_id, source, status, attempt_count, available_time, lease, consumer,
			lease_start_time, last_error, event_receive_time, create_time, update_time)
		SELECT s.id, e.id, e.source, 1, 0, e.receive_time, 0, '', NULL, '', e.receive_time, e.receive_time, e.receive_time
		FROM events AS e JOIN subscriptions AS s
			ON (s.sources = '[]' OR s.sources ? e.source)
			AND (s.modules = '[]' OR s.modules ? e.module)
			AND (s.operations = '[]' OR s.operations ? e.operation)
			AND (s.event_types = '[]' OR s.event_types ? e.event_type)
		WHERE e.id = ANY($1::uuid[])
		FOR KEY SHARE OF s
		RETURNING event_id)
	UPDATE events SET status = 3
	WHERE id = ANY($1::uuid[]) AND status <> 3 AND id NOT IN (SELECT event_id FROM fanned)
	RETURNING id::text`

// fanOut gives the events just inserted in tx (ins; duplicates and nil entries are skipped) that were
// stored pending (see fanOutStatus) their deliveries, and stores those no subscription wants as
// delivered, in ins too. It runs in the transaction that inserted them, so that an event is never
// visible without its deliveries. Events stored delivered get none: no subscription existed when the
// batch began.
func fanOut(ctx context.Context, tx pgx.Tx, ins []store.Inserted) error {
	ids := make([]string, 0, len(ins))
	byID := make(map[string]*store.Event, len(ins))
	for _, in := range ins {
		if in.Event == nil || in.Duplicate || in.Event.Status == store.StatusDelivered {
			continue
		}
		ids = append(ids, in.Event.ID)
		byID[strings.ToLower(in.Event.ID)] = in.Event // as uuid::text reads it
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, fanOutSQL, ids)
	if err != nil {
		return err
	}
	var id string
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		if e := byID[id]; e != nil {
			e.Status = store.StatusDelivered
		}
		return nil
	})
	return err
}

// anySubscriptionSQL tells whether any subscription exists.
const anySubscriptionSQL = `SELECT EXISTS (SELECT 1 FROM subscriptions)`

// fanOutStatus returns copies of es with the status they are to be stored with: pending when any
// subscription exists, else delivered (an event no subscription wants). es itself is not changed.
//
// Storing them as delivered from the start, rather than updating them after the fan-out, keeps an
// ingest without subscriptions as cheap as before subscriptions existed: here the update is not HOT
// (status is indexed), so it wrote a new version of every event and an entry in each of its indexes
// (measured +50 % per event in a batch of 64).
//
// The read need not be in the inserting transaction (at READ COMMITTED every statement has its own
// snapshot anyway): whatever it finds, the event's stored status and its deliveries agree. An event
// stored delivered is never fanned out (fanOut skips it), so a subscription committed after the read does
// not get it, as if created just after the event. An event stored pending is fanned out by one statement
// (fanOutSQL), which also marks it delivered if no subscription wants it in that statement's snapshot.
func (s *Store) fanOutStatus(ctx context.Context, es []*store.Event) ([]*store.Event, error) {
	some, err := db.PostgresQueryRow(ctx, s.db, anySubscriptionSQL, nil, func(row db.Scanner) (bool, error) {
		var some bool
		return some, row.Scan(&some)
	})
	if err != nil {
		return nil, err
	}
	return store.WithStatus(es, some), nil
}

// fanOutStatusOf is fanOutStatus for one event.
func (s *Store) fanOutStatusOf(ctx context.Context, e *store.Event) (*store.Event, error) {
	es, err := s.fanOutStatus(ctx, []*store.Event{e})
	if err != nil {
		return nil, err
	}
	return es[0], nil
}
