package postgres

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/storetest"
)

// The delivery queries read indexes, never the whole deliveries table: the claim reads the partial
// deliveries_due index (no delivered or dead row in it) in hand-out order, the in-flight count one
// consumer's entries of deliveries_in_flight, every ListDeliveries filter an index in id order, the event
// status the deliveries of one event (deliveries_event_id), and the fan-out the events of the batch by id.
// Sequential scans are off so that the small test tables show the plans of large ones.
func TestDeliveryPlansUseIndexes(t *testing.T) {
	s := New(dbtest.Open(t, db.Postgres, "webhook").Postgres)
	storetest.FillDeliveries(t, s, 300)
	now := time.Now()
	check := func(name, q string, args []any, want ...string) {
		t.Helper()
		plan := explain(t, s, q, args)
		for _, w := range want {
			if !slices.ContainsFunc(strings.Split(w, "|"), func(w string) bool { return strings.Contains(plan, w) }) {
				t.Errorf("%s: plan does not use %q:\n%s", name, w, plan)
			}
		}
		if strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan on deliveries") {
			t.Errorf("%s: plan sorts or scans deliveries:\n%s", name, plan)
		}
	}
	check("claim", deliveriesDue, []any{storetest.PlanSubscriptionID, now, 10}, "Index Scan using deliveries_due ", "LockRows")
	check("in flight", store.InFlightQuery, []any{storetest.PlanSubscriptionID, "c", now}, "using deliveries_in_flight ")
	for name, p := range storetest.DeliveryListShapes {
		q, args := store.DeliveryListQuery(text, p)
		want := map[string]string{"none": "Index Scan using deliveries_pkey ", "subscription": "Index Scan using deliveries_subscription_id ",
			"event": "Index Scan using deliveries_event_id ", "status": "Index Scan using deliveries_status_id ",
			"subscription+status": "Index Scan using deliveries_subscription_id |Index Scan using deliveries_status_id "}[name]
		check("list "+name, q, args, want)
	}
	ids := []string{storetest.PlanEventID}
	check("event lock", lockEvents, []any{ids}, "Index Scan using events_id_key ")
	check("event status", eventsSettle, []any{ids, now}, "Index Scan using events_id_key ", "Index Scan on deliveries_event_id |Index Scan using deliveries_event_id ")
	check("fan-out", fanOutSQL, []any{ids}, "Index Scan using events_id_key ")
	q, args := store.RedriveQuery(text, storetest.PlanRedrive, func(t time.Time) any { return t },
		func(col, arg string) string { return "strpos(" + col + ", " + arg + ") > 0" })
	check("redrive", q, args, "deliveries_subscription_id |deliveries_status_id ")
	check("delete attempts", attemptsDelete, []any{[]int64{1, 2}}, "delivery_attempts_pkey")
	check("delete deliveries", deliveriesDelete, []any{storetest.PlanSubscriptionID}, "deliveries_subscription_id ")
}
