package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/storetest"
)

// A range replay matches events with the fan-out's own predicate: fanOutSQL holds filterMatches (white
// space aside), so that the two cannot drift apart.
func TestReplayMatchesAsFanOut(t *testing.T) {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	if !strings.Contains(norm(fanOutSQL), norm(filterMatches)) {
		t.Fatalf("fanOutSQL does not hold the replay's filter predicate:\n%s\n---\n%s", fanOutSQL, filterMatches)
	}
}

// Replay and purge read events through events_receive_time in (receive_time, seq) order, without a
// sort, and reach deliveries and events by index. Sequential scans are off, and a replay page (500
// events) is asked for 10, so that the small test tables show the plans of large ones.
func TestReplayPurgePlansUseIndexes(t *testing.T) {
	s := New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	storetest.FillDeliveries(t, s, 300)
	now := time.Now()
	ids := []string{storetest.PlanEventID}
	for _, c := range []struct {
		name, q string
		args    []any
		want    []string
	}{
		{"replay page", replayPage, []any{storetest.PlanSubscriptionID, now.Add(-time.Hour), 1, 10}, []string{"Index Scan using events_receive_time "}},
		{"replay page to", replayPageTo, []any{storetest.PlanSubscriptionID, now.Add(-time.Hour), 1, 10, now}, []string{"Index Scan using events_receive_time "}},
		{"events key share", eventsKeyShare, []any{ids}, []string{"Index Scan using events_id_key ", "LockRows"}},
		{"reset", deliveriesReset, []any{storetest.PlanSubscriptionID, ids, now}, []string{"deliveries_subscription_id_event_id_key "}},
		{"make", deliveriesMake, []any{storetest.PlanSubscriptionID, ids, now}, []string{"Index Scan using events_id_key ", "deliveries_subscription_id_event_id_key "}},
		{"purgeable", eventsPurgeable, []any{now, time.Time{}, 0, 500}, []string{"Index Scan using events_receive_time ", "deliveries_event_id ", "LockRows"}},
		{"purge", purgeDeleteSQL, []any{ids}, []string{"deliveries_event_id ", "Index Scan using events_id_key ", "delivery_attempts_pkey "}},
	} {
		plan := explain(t, s, c.q, c.args)
		for _, w := range c.want {
			if !strings.Contains(plan, w) {
				t.Errorf("%s: plan does not use %q:\n%s", c.name, w, plan)
			}
		}
		// Sorting the few rows of one page by id (the lock order) is fine; sorting the events is not.
		if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort Key: e.receive_time") || strings.Contains(plan, "Sort Key: events.receive_time") {
			t.Errorf("%s: plan scans or sorts events:\n%s", c.name, plan)
		}
	}
}

// A purge deletes the attempt history of the deliveries it deletes, and nothing else's.
func TestPurgeDeletesAttempts(t *testing.T) {
	s := New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	storetest.FillDeliveries(t, s, 30)
	ctx := context.Background()
	count := func(q string) (n int) {
		t.Helper()
		if err := s.db.Tx(ctx, func(tx pgx.Tx) error { return tx.QueryRow(ctx, q).Scan(&n) }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const orphans = `SELECT count(*) FROM delivery_attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)`
	const outstanding = `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.id = d.event_id WHERE e.status <> 3`
	now := time.Now().Add(time.Second)
	for _, sub := range []string{"plan-b", "plan-c"} {
		var id string
		if err := s.db.Tx(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT id::text FROM subscriptions WHERE name = $1`, sub).Scan(&id)
		}); err != nil {
			t.Fatal(err)
		}
		c, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: id, Consumer: "c", Now: now, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range c.Claimed {
			if _, err := s.DeliverySettle(ctx, store.SettleParams{ID: d.Delivery.ID, Lease: d.Delivery.Lease, Now: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	kept := count(outstanding)
	if count(`SELECT count(*) FROM delivery_attempts`) == kept || kept == 0 {
		t.Fatalf("precondition: %d attempts of undelivered events, of %d", kept, count(`SELECT count(*) FROM delivery_attempts`))
	}
	r, err := s.EventsPurge(ctx, store.PurgeParams{Before: now, Now: now, BatchSize: 7})
	if err != nil || r.Events == 0 {
		t.Fatalf("purge %+v %v", r, err)
	}
	if n := count(orphans); n != 0 {
		t.Fatalf("%d attempts of purged deliveries left", n)
	}
	if n := count(`SELECT count(*) FROM delivery_attempts`); n != kept {
		t.Fatalf("%d attempts left, want the %d of undelivered events", n, kept)
	}
}
