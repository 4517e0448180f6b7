package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sergas/core/services/webhook/store"
)

// PlanSubscriptionID is the subscription FillDeliveries makes: the backends' query-plan tests name it.
const PlanSubscriptionID = "01900000-0000-7000-8000-00000000000a"

// PlanEventID names an event for the plan tests' queries (any id: plans do not depend on it).
const PlanEventID = "01900000-0000-7000-8000-0000000000e1"

// DeliveryListShapes are the filter combinations ListDeliveries accepts, each on a later page. The
// backends' query-plan tests check that each is served by an index in id order.
var DeliveryListShapes = map[string]store.DeliveryListParams{
	"none":                {AfterID: 1, Limit: 10},
	"subscription":        {SubscriptionID: PlanSubscriptionID, AfterID: 1, Limit: 10},
	"event":               {EventID: PlanEventID, AfterID: 1, Limit: 10},
	"status":              {Status: store.DeliveryPending, AfterID: 1, Limit: 10},
	"subscription+status": {SubscriptionID: PlanSubscriptionID, Status: store.DeliveryDeadLetter, AfterID: 1, Limit: 10},
}

// PlanRedrive is a redrive with every filter, for the plan tests.
var PlanRedrive = store.RedriveParams{SubscriptionID: PlanSubscriptionID, Source: "zoho", From: time.Unix(1, 0), To: time.Unix(2, 0),
	ErrorContains: "500", Now: time.Unix(3, 0)}

// FillDeliveries stores n events, for three subscriptions (one of them PlanSubscriptionID), and settles
// most of the first one's deliveries (delivered, failed, dead), so that the tables are worth planning
// for and hold mostly finished deliveries, as they do in time.
func FillDeliveries(t testing.TB, s store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	for i, name := range []string{"plan-a", "plan-b", "plan-c"} {
		sub := newSubscription(name, store.Filter{})
		if i == 0 {
			sub.ID = PlanSubscriptionID
			sub.Retry.MaxRetries = 0
		}
		if err := s.SubscriptionCreate(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	Fill(t, s, n)
	now := time.Now().Add(time.Second)
	claim, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: PlanSubscriptionID, Consumer: "fill", Now: now, Limit: n})
	cs := claim.Claimed
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if i%10 == 9 {
			continue // still leased
		}
		p := store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now, Nack: i%10 == 8, Error: fmt.Sprint("HTTP ", 500+i%3)}
		if _, err := s.DeliverySettle(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
}
