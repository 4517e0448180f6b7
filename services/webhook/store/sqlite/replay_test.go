package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

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
// sort or a scan of the events, and reach deliveries by index.
func TestReplayPurgePlansUseIndexes(t *testing.T) {
	s := New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	storetest.FillDeliveries(t, s, 300)
	now := time.Now().UnixMicro()
	ids := `["` + storetest.PlanEventID + `"]`
	for _, c := range []struct {
		name, q string
		args    []any
		want    []string
	}{
		{"replay page", replayPage, []any{storetest.PlanSubscriptionID, now - 1e9, 1, 500}, []string{"USING INDEX events_receive_time (receive_time>?)"}},
		{"replay page to", replayPageTo, []any{storetest.PlanSubscriptionID, now - 1e9, 1, 500, now}, []string{"USING INDEX events_receive_time (receive_time>? AND receive_time<?)"}},
		{"events by id", eventsExisting, []any{ids}, []string{"sqlite_autoindex_events_1"}},
		{"reset", deliveriesReset, []any{storetest.PlanSubscriptionID, ids, now}, []string{"sqlite_autoindex_deliveries_1"}},
		{"make", deliveriesMake, []any{storetest.PlanSubscriptionID, ids, now}, []string{"sqlite_autoindex_events_1", "sqlite_autoindex_deliveries_1"}},
		{"purgeable", eventsPurgeable, []any{now, int64(0), 0, 500}, []string{"USING INDEX events_receive_time", "deliveries_event_id"}},
		{"purge attempts", purgeAttempts, []any{ids}, []string{"deliveries_event_id"}},
		{"purge deliveries", purgeDeliveries, []any{ids}, []string{"deliveries_event_id"}},
		{"purge events", purgeEvents, []any{ids}, []string{"sqlite_autoindex_events_1"}},
	} {
		plan := explain(t, s, c.q, c.args)
		for _, w := range c.want {
			if !strings.Contains(plan, w) {
				t.Errorf("%s: plan does not use %q:\n%s", c.name, w, plan)
			}
		}
		if strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "SCAN events") || strings.Contains(plan, "SCAN deliveries") {
			t.Errorf("%s: plan sorts or scans:\n%s", c.name, plan)
		}
	}
}

// A purge deletes the attempt history of the deliveries it deletes, and nothing else's.
func TestPurgeDeletesAttempts(t *testing.T) {
	s := New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	storetest.FillDeliveries(t, s, 30)
	count := func(q string) (n int) {
		t.Helper()
		if err := s.db.Read.QueryRow(q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const orphans = `SELECT count(*) FROM delivery_attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)`
	const outstanding = `SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.id = d.event_id WHERE e.status <> 3`
	attempts, kept := count(`SELECT count(*) FROM delivery_attempts`), count(outstanding)
	// Deliver every event: FillDeliveries leaves two subscriptions' deliveries pending.
	now := time.Now().Add(time.Second)
	for _, sub := range []string{"plan-b", "plan-c"} {
		var id string
		if err := s.db.Read.QueryRow(`SELECT id FROM subscriptions WHERE name = ?`, sub).Scan(&id); err != nil {
			t.Fatal(err)
		}
		c, err := s.DeliveryClaim(context.Background(), store.ClaimParams{SubscriptionID: id, Consumer: "c", Now: now, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range c.Claimed {
			if _, err := s.DeliverySettle(context.Background(), store.SettleParams{ID: d.Delivery.ID, Lease: d.Delivery.Lease, Now: now}); err != nil {
				t.Fatal(err)
			}
		}
	}
	kept = count(outstanding)
	if attempts == 0 || kept == 0 {
		t.Fatalf("precondition: %d attempts, %d of undelivered events", attempts, kept)
	}
	r, err := s.EventsPurge(context.Background(), store.PurgeParams{Before: now, Now: now, BatchSize: 7})
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
