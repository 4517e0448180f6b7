package sqlite

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/storetest"
)

// The delivery queries read indexes, never the whole deliveries table: the claim reads the partial
// deliveries_due index (no delivered or dead row in it) in hand-out order, the in-flight count one
// consumer's entries of deliveries_in_flight alone, every ListDeliveries filter an index in id order,
// and the event status and fan-out the deliveries of one event (deliveries_event_id).
func TestDeliveryPlansUseIndexes(t *testing.T) {
	s := New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	// No ANALYZE: the service never runs it, so these are the plans it gets.
	storetest.FillDeliveries(t, s, 300)
	now := time.Now().UnixMicro()
	check := func(name, q string, args []any, want ...string) {
		t.Helper()
		plan := explain(t, s, sqlq.Rebind(q), args)
		for _, w := range want {
			if !slices.ContainsFunc(strings.Split(w, "|"), func(w string) bool { return strings.Contains(plan, w) }) {
				t.Errorf("%s: plan does not use %q:\n%s", name, w, plan)
			}
		}
		if strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "SCAN deliveries") {
			t.Errorf("%s: plan sorts or scans deliveries:\n%s", name, plan)
		}
	}
	check("claim", deliveriesDue, []any{storetest.PlanSubscriptionID, now, 10}, "USING INDEX deliveries_due (subscription_id=? AND available_time<?)")
	check("in flight", store.InFlightQuery, []any{storetest.PlanSubscriptionID, "c", now}, "USING COVERING INDEX deliveries_in_flight")
	for name, p := range storetest.DeliveryListShapes {
		q, args := store.DeliveryListQuery("", p)
		want := map[string]string{"none": "SEARCH deliveries USING INTEGER PRIMARY KEY", "subscription": "USING INDEX deliveries_subscription_id",
			"event": "USING INDEX deliveries_event_id", "status": "USING INDEX deliveries_status_id",
			"subscription+status": "USING INDEX deliveries_subscription_id|USING INDEX deliveries_status_id"}[name]
		check("list "+name, q, args, want)
	}
	check("event status", eventsSettle, []any{`["` + storetest.PlanEventID + `"]`, now}, "USING INDEX deliveries_event_id")
	check("fan-out", fanOutSQL, []any{1, 10}, "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)")
	check("unwanted events", settleUnwantedSQL, []any{1, 10}, "SEARCH events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
		"USING COVERING INDEX deliveries_event_id")
	q, args := store.RedriveQuery("", storetest.PlanRedrive, func(t time.Time) any { return t.UnixMicro() },
		func(col, arg string) string { return "instr(" + col + ", " + arg + ") > 0" })
	check("redrive", q, args, "USING INDEX deliveries_subscription_id|USING INDEX deliveries_status_id")
	check("delete attempts", attemptsDelete, []any{storetest.PlanSubscriptionID}, "deliveries_subscription_id")
	check("delete deliveries", deliveriesDelete, []any{storetest.PlanSubscriptionID}, "deliveries_subscription_id")
}
