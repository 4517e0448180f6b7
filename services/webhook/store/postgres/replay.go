package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/services/webhook/store"
)

// filterMatches is the fan-out's filter predicate (fanOutSQL: e the event, s the subscription), which a
// range replay applies too, so that a replay matches exactly the events a fan-out would have given the
// subscription. TestReplayMatchesAsFanOut checks that fanOutSQL holds this text.
const filterMatches = `(s.sources = '[]' OR s.sources ? e.source)
			AND (s.modules = '[]' OR s.modules ? e.module)
			AND (s.operations = '[]' OR s.operations ? e.operation)
			AND (s.event_types = '[]' OR s.event_types ? e.event_type)`

var (
	// subscriptionKeyShare locks as fan-out does (see fanOutSQL): a SubscriptionDelete waits for this
	// transaction, and then deletes the deliveries it made.
	subscriptionKeyShare = `SELECT 1 FROM subscriptions WHERE id = $1 FOR KEY SHARE`
	replayPage           = store.ReplayPageQuery(text, filterMatches, false)
	replayPageTo         = store.ReplayPageQuery(text, filterMatches, true)
	// eventsKeyShare keeps a purge (FOR UPDATE) from deleting the events until the replay commits; the
	// purge skips them instead of waiting, and finds them pending next time.
	eventsKeyShare  = store.EventsKeyShareQuery(text, `id = ANY($1::uuid[])`, " ORDER BY receive_time, seq FOR KEY SHARE")
	deliveriesReset = store.DeliveriesResetQuery(text, `event_id = ANY($2::uuid[])`, " ORDER BY id FOR UPDATE")
	deliveriesMake  = store.DeliveriesMakeQuery(text, `e.id = ANY($2::uuid[])`)
	// eventsPurgeable skips the events another transaction holds (a replay, a settle): a purge never
	// waits for an event, so it cannot wait in a cycle with them; what it skips stays for the next purge.
	eventsPurgeable = store.EventsPurgeableQuery(text, " FOR UPDATE SKIP LOCKED")
	// purgeDeleteSQL deletes the deliveries of the events $1 (locked in id order first, as every
	// statement that locks several deliveries does), their attempts and the events, in one statement:
	// the attempts of delivered deliveries no longer change, so one snapshot sees all of them.
	purgeDeleteSQL = `WITH d AS (
			DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE event_id = ANY($1::uuid[]) ORDER BY id FOR UPDATE)
			RETURNING id),
		a AS (DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM d)),
		e AS (DELETE FROM events WHERE id = ANY($1::uuid[]))
	SELECT count(*) FROM d`
)

func (t *deliveryTx) SubscriptionKeyShare(ctx context.Context, id string) (bool, error) {
	if err := t.flush(ctx); err != nil {
		return false, err
	}
	rows, err := t.tx.Query(ctx, subscriptionKeyShare, id)
	if err != nil {
		return false, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	return len(got) == 1, err
}

func (t *deliveryTx) EventsKeyShare(ctx context.Context, ids []string) ([]string, error) {
	return t.strings(ctx, eventsKeyShare, ids)
}

func (t *deliveryTx) ReplayPage(ctx context.Context, p store.ReplayPageParams) (store.ReplayPage, error) {
	if err := t.flush(ctx); err != nil {
		return store.ReplayPage{}, err
	}
	q, args := replayPage, []any{p.SubscriptionID, p.After.ReceiveTime, p.After.Seq, p.Limit}
	if !p.To.IsZero() {
		q, args = replayPageTo, append(args, p.To)
	}
	rows, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return store.ReplayPage{}, err
	}
	var out store.ReplayPage
	var id string
	var received time.Time
	var matched int32
	_, err = pgx.ForEachRow(rows, []any{&id, &received, &out.Last.Seq, &matched}, func() error {
		out.Read++
		out.Last.ReceiveTime = received.UTC()
		if matched == 1 {
			out.Matched = append(out.Matched, id)
		}
		return nil
	})
	return out, err
}

func (t *deliveryTx) DeliveriesReplay(ctx context.Context, subscriptionID string, ids []string, now time.Time) ([]string, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	var changed []string
	for _, q := range []string{deliveriesReset, deliveriesMake} {
		rows, err := t.tx.Query(ctx, q, subscriptionID, ids, now)
		if err != nil {
			return nil, err
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		changed = append(changed, got...)
	}
	return changed, nil
}

func (t *deliveryTx) EventsPurgeable(ctx context.Context, before time.Time, after store.EventCursor, limit int) ([]string, store.EventCursor, error) {
	if err := t.flush(ctx); err != nil {
		return nil, after, err
	}
	rows, err := t.tx.Query(ctx, eventsPurgeable, before, after.ReceiveTime, after.Seq, limit)
	if err != nil {
		return nil, after, err
	}
	var ids []string
	var id string
	var received time.Time
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&id, &received, &seq}, func() error {
		ids, after = append(ids, id), store.EventCursor{ReceiveTime: received.UTC(), Seq: seq}
		return nil
	})
	return ids, after, err
}

func (t *deliveryTx) EventsDelete(ctx context.Context, ids []string) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := t.tx.QueryRow(ctx, purgeDeleteSQL, ids).Scan(&n)
	return n, err
}

// strings runs q with ids as its one argument and returns the first column.
func (t *deliveryTx) strings(ctx context.Context, q string, ids []string) ([]string, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
