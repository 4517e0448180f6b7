package sqlite

import (
	"context"
	"encoding/json"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
)

// filterMatches is the fan-out's filter predicate (fanOutSQL: e the event, s the subscription), which a
// range replay applies too, so that a replay matches exactly the events a fan-out would have given the
// subscription. TestReplayMatchesAsFanOut checks that fanOutSQL holds this text.
const filterMatches = `(s.sources = '[]' OR e.source IN (SELECT value FROM json_each(s.sources)))
		AND (s.modules = '[]' OR e.module IN (SELECT value FROM json_each(s.modules)))
		AND (s.operations = '[]' OR e.operation IN (SELECT value FROM json_each(s.operations)))
		AND (s.event_types = '[]' OR e.event_type IN (SELECT value FROM json_each(s.event_types)))`

// The id lists are one JSON array argument, as in the other delivery statements.
var (
	subscriptionExists = `SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = ?1)`
	replayPage         = sqlq.Rebind(store.ReplayPageQuery("", filterMatches, false))
	replayPageTo       = sqlq.Rebind(store.ReplayPageQuery("", filterMatches, true))
	eventsExisting     = sqlq.Rebind(store.EventsKeyShareQuery("", `id IN (SELECT value FROM json_each($1))`, ""))
	deliveriesReset    = sqlq.Rebind(store.DeliveriesResetQuery("", `event_id IN (SELECT value FROM json_each($2))`, ""))
	deliveriesMake     = sqlq.Rebind(store.DeliveriesMakeQuery("", `e.id IN (SELECT value FROM json_each($2))`))
	eventsPurgeable    = sqlq.Rebind(store.EventsPurgeableQuery("", ""))
	// Attempts first, while their deliveries can still be found by event (no settle interleaves here).
	purgeAttempts   = `DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?1)))`
	purgeDeliveries = `DELETE FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?1))`
	purgeEvents     = `DELETE FROM events WHERE id IN (SELECT value FROM json_each(?1))`
)

// SubscriptionKeyShare only checks: the single writer lets no delete in before this transaction ends.
func (t deliveryTx) SubscriptionKeyShare(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := t.tx.QueryRowContext(ctx, subscriptionExists, id).Scan(&ok)
	return ok, err
}

func (t deliveryTx) EventsKeyShare(ctx context.Context, ids []string) ([]string, error) {
	return t.strings(ctx, eventsExisting, ids)
}

func (t deliveryTx) ReplayPage(ctx context.Context, p store.ReplayPageParams) (store.ReplayPage, error) {
	q, args := replayPage, []any{p.SubscriptionID, p.After.ReceiveTime.UnixMicro(), p.After.Seq, p.Limit}
	if !p.To.IsZero() {
		q, args = replayPageTo, append(args, p.To.UnixMicro())
	}
	rows, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return store.ReplayPage{}, err
	}
	defer rows.Close()
	var out store.ReplayPage
	for rows.Next() {
		var id string
		var received int64
		var matched bool
		if err := rows.Scan(&id, &received, &out.Last.Seq, &matched); err != nil {
			return store.ReplayPage{}, err
		}
		out.Read++
		out.Last.ReceiveTime = time.UnixMicro(received).UTC()
		if matched {
			out.Matched = append(out.Matched, id)
		}
	}
	return out, rows.Err()
}

func (t deliveryTx) DeliveriesReplay(ctx context.Context, subscriptionID string, ids []string, now time.Time) ([]string, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	var changed []string
	for _, q := range []string{deliveriesReset, deliveriesMake} {
		rows, err := t.tx.QueryContext(ctx, q, subscriptionID, string(list), now.UnixMicro())
		got, err := scanAll(rows, err, scanString)
		if err != nil {
			return nil, err
		}
		changed = append(changed, got...)
	}
	return changed, nil
}

func (t deliveryTx) EventsPurgeable(ctx context.Context, before time.Time, after store.EventCursor, limit int) ([]string, store.EventCursor, error) {
	rows, err := t.tx.QueryContext(ctx, eventsPurgeable, before.UnixMicro(), after.ReceiveTime.UnixMicro(), after.Seq, limit)
	if err != nil {
		return nil, after, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		var received int64
		if err := rows.Scan(&id, &received, &after.Seq); err != nil {
			return nil, after, err
		}
		ids, after.ReceiveTime = append(ids, id), time.UnixMicro(received).UTC()
	}
	return ids, after, rows.Err()
}

func (t deliveryTx) EventsDelete(ctx context.Context, ids []string) (int64, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return 0, err
	}
	if _, err := t.tx.ExecContext(ctx, purgeAttempts, string(list)); err != nil {
		return 0, err
	}
	res, err := t.tx.ExecContext(ctx, purgeDeliveries, string(list))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	_, err = t.tx.ExecContext(ctx, purgeEvents, string(list))
	return n, err
}

// strings runs q with the JSON array of ids as its one argument and returns the first column.
func (t deliveryTx) strings(ctx context.Context, q string, ids []string) ([]string, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := t.tx.QueryContext(ctx, q, string(list))
	return scanAll(rows, err, scanString)
}

func scanString(row db.Scanner) (string, error) {
	var s string
	err := row.Scan(&s)
	return s, err
}
