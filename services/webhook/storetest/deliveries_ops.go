package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// killAll makes every due delivery of sub a dead letter (sub must allow no retries), with error
// errText, and returns them.
func killAll(t *testing.T, s DeliveryBackend, sub *store.Subscription, now time.Time, errText func(*store.Event) string) []*store.Delivery {
	t.Helper()
	var out []*store.Delivery
	for _, c := range claim(t, s, sub.ID, "c", now, 1000) {
		out = append(out, settle(t, s, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now, Nack: true, Error: errText(c.Event)}))
	}
	return out
}

func testRedrive(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub := newSubscription("redrive", store.Filter{})
	sub.Retry.MaxRetries = 0
	mustCreate(t, s, sub)
	other := newSubscription("other", store.Filter{})
	other.Retry.MaxRetries = 0
	mustCreate(t, s, other)
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	for i := range 12 {
		e := event([]string{"zoho", "github", "stripe"}[i%3], fmt.Sprint("r", i), []byte("{}"))
		e.ReceiveTime = base.Add(time.Duration(i) * time.Minute)
		mustInsert(t, s, e)
	}
	now := clock()
	errText := func(e *store.Event) string {
		if e.ReceiveTime.Sub(base)/time.Minute%2 == 0 {
			return "HTTP 500 from endpoint"
		}
		return "timeout"
	}
	if n := len(killAll(t, s, sub, now, errText)); n != 12 {
		t.Fatalf("killed %d", n)
	}
	killAll(t, s, other, now, errText)
	cases := []struct {
		name string
		p    store.RedriveParams
		want int64
	}{
		{"source", store.RedriveParams{Source: "github"}, 4},
		{"from", store.RedriveParams{From: base.Add(10 * time.Minute)}, 2}, // minutes 10, 11
		{"to", store.RedriveParams{To: base.Add(2 * time.Minute)}, 2},      // minutes 0, 1
		{"error", store.RedriveParams{ErrorContains: "500"}, 6},
		{"error is case-sensitive", store.RedriveParams{ErrorContains: "http"}, 0},
		{"all together", store.RedriveParams{Source: "zoho", From: base.Add(3 * time.Minute), To: base.Add(10 * time.Minute), ErrorContains: "HTTP"}, 1}, // minute 6
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.p
			p.SubscriptionID, p.Now = sub.ID, now
			n, err := s.DeliveryRedrive(ctx, p)
			if err != nil || n != c.want {
				t.Fatalf("redrove %d (%v), want %d", n, err, c.want)
			}
			for _, d := range deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID, Status: store.DeliveryPending}) {
				if d.AttemptCount != 0 || !d.AvailableTime.Equal(now) || d.LastError == "" {
					t.Fatalf("redriven delivery %+v", d)
				}
			}
			// Put them back for the next case: redriven ones are pending and due.
			killAll(t, s, sub, now, errText)
		})
	}
	if n := len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: other.ID, Status: store.DeliveryDeadLetter})); n != 12 {
		t.Fatalf("another subscription's dead letters were redriven: %d left", n)
	}
	if n, err := s.DeliveryRedrive(ctx, store.RedriveParams{SubscriptionID: sub.ID, Now: now}); err != nil || n != 12 {
		t.Fatalf("redrive all: %d %v", n, err)
	}
}

func testDeleteCascade(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	keep := mustCreate(t, s, newSubscription("keep", store.Filter{Sources: []string{"zoho"}}))
	gone := mustCreate(t, s, newSubscription("gone", store.Filter{}))
	shared := mustInsert(t, s, event("zoho", "shared", []byte("{}")))
	only := mustInsert(t, s, event("github", "only", []byte("{}")))
	now := clock()
	d := claimOne(t, s, keep, "c", now)
	settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now})
	var goneIDs []int64
	for _, c := range claim(t, s, gone.ID, "c", now, 10) {
		goneIDs = append(goneIDs, c.Delivery.ID)
		settle(t, s, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now, Nack: true, RetryAt: now})
	}
	if eventStatus(t, s, shared.ID) != store.StatusPending || eventStatus(t, s, only.ID) != store.StatusPending {
		t.Fatal("events not pending on the failed deliveries")
	}
	if err := s.SubscriptionDelete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SubscriptionGet(ctx, gone.ID); errs.KindOf(err) != errs.KindNotFound {
		t.Fatalf("deleted subscription still read: %v", err)
	}
	for _, id := range goneIDs {
		if _, _, err := s.DeliveryGet(ctx, id); errs.KindOf(err) != errs.KindNotFound {
			t.Fatalf("delivery %d outlived its subscription: %v", id, err)
		}
	}
	if n := len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: gone.ID})); n != 0 {
		t.Fatalf("%d deliveries left", n)
	}
	if eventStatus(t, s, shared.ID) != store.StatusDelivered || eventStatus(t, s, only.ID) != store.StatusDelivered {
		t.Fatal("events waiting only on the deleted subscription were not settled")
	}
	if _, as := getDelivery(t, s, d.ID); len(as) != 1 {
		t.Fatal("the kept subscription's attempts went too")
	}
	wantKind(t, "delete again", s.SubscriptionDelete(ctx, gone.ID), errs.KindNotFound)
	// A new subscription with the name is a new one: no deliveries of the old.
	again := mustCreate(t, s, newSubscription("gone", store.Filter{}))
	if n := len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: again.ID})); n != 0 {
		t.Fatalf("recreated subscription has %d deliveries", n)
	}
}

func testExtend(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub, _ := oneDelivery(t, s, nil)
	now := clock()
	d := claimOne(t, s, sub, "c1", now)
	until := now.Add(10 * sub.LeaseDuration)
	got, err := s.DeliveryExtend(ctx, d.ID, d.Lease, now.Add(time.Second), until)
	if err != nil || !got.AvailableTime.Equal(until) || got.Lease != d.Lease || got.Status != store.DeliveryLeased {
		t.Fatalf("extend: %+v %v", got, err)
	}
	if cs := claim(t, s, sub.ID, "c2", now.Add(2*sub.LeaseDuration), 10); len(cs) != 0 {
		t.Fatal("claimed within the extended lease")
	}
	if n, err := s.DeliveryInFlight(ctx, sub.ID, "c1", now.Add(2*sub.LeaseDuration)); err != nil || n != 1 {
		t.Fatalf("in flight within the extended lease: %d %v", n, err)
	}
	_, err = s.DeliveryExtend(ctx, d.ID, d.Lease, now, now)
	wantKind(t, "extend to now", err, errs.KindInvalid)
	_, err = s.DeliveryExtend(ctx, d.ID, d.Lease+1, now, until)
	wantKind(t, "extend another lease", err, errs.KindFailedPrecondition)
	_, err = s.DeliveryExtend(ctx, d.ID+1000, 1, now, until)
	wantKind(t, "extend unknown", err, errs.KindNotFound)
	// An ended lease not passed on can still be extended.
	late := until.Add(time.Minute)
	if got, err := s.DeliveryExtend(ctx, d.ID, d.Lease, late, late.Add(time.Minute)); err != nil || !got.AvailableTime.Equal(late.Add(time.Minute)) {
		t.Fatalf("extend an ended lease: %+v %v", got, err)
	}
}

func testInFlight(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub := mustCreate(t, s, newSubscription("inflight", store.Filter{}))
	other := mustCreate(t, s, newSubscription("other", store.Filter{}))
	for i := range 5 {
		mustInsert(t, s, event("zoho", fmt.Sprint("i", i), []byte("{}")))
	}
	now := clock()
	a := claim(t, s, sub.ID, "a", now, 3)
	claim(t, s, sub.ID, "b", now, 1)
	claim(t, s, other.ID, "a", now, 5)
	count := func(consumer string, at time.Time) int {
		n, err := s.DeliveryInFlight(ctx, sub.ID, consumer, at)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count("a", now) != 3 || count("b", now) != 1 || count("c", now) != 0 {
		t.Fatalf("in flight a=%d b=%d c=%d", count("a", now), count("b", now), count("c", now))
	}
	settle(t, s, store.SettleParams{ID: a[0].Delivery.ID, Lease: a[0].Delivery.Lease, Now: now})
	settle(t, s, store.SettleParams{ID: a[1].Delivery.ID, Lease: a[1].Delivery.Lease, Now: now, Nack: true})
	if n := count("a", now); n != 1 {
		t.Fatalf("after ack and nack: %d", n)
	}
	if n := count("a", now.Add(sub.LeaseDuration)); n != 0 {
		t.Fatalf("after the lease ended: %d", n)
	}
}

func testDeliveryList(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	a := mustCreate(t, s, newSubscription("a", store.Filter{}))
	b := mustCreate(t, s, newSubscription("b", store.Filter{Sources: []string{"zoho"}}))
	var events []*store.Event
	for i := range 6 {
		events = append(events, mustInsert(t, s, event([]string{"zoho", "github"}[i%2], fmt.Sprint("l", i), []byte("{}"))))
	}
	now := clock()
	for _, c := range claim(t, s, a.ID, "c", now, 2) {
		settle(t, s, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now})
	}
	all := deliveriesOf(t, s, store.DeliveryListParams{})
	if len(all) != 9 {
		t.Fatalf("%d deliveries, want 9", len(all))
	}
	for _, f := range []store.DeliveryListParams{
		{}, {SubscriptionID: a.ID}, {SubscriptionID: b.ID}, {EventID: events[0].ID}, {Status: store.DeliveryPending},
		{Status: store.DeliveryDelivered}, {SubscriptionID: a.ID, Status: store.DeliveryPending}, {SubscriptionID: b.ID, EventID: events[2].ID},
	} {
		var want, got []*store.Delivery
		for _, d := range all {
			if (f.SubscriptionID == "" || d.SubscriptionID == f.SubscriptionID) && (f.EventID == "" || d.EventID == f.EventID) &&
				(f.Status == 0 || d.Status == f.Status) {
				want = append(want, d)
			}
		}
		p := f
		p.Limit = 2
		for range 10 {
			page, err := s.DeliveryList(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if len(page) < p.Limit {
				break
			}
			p.AfterID = page[len(page)-1].ID
		}
		if !reflect.DeepEqual(got, want) || len(want) == 0 {
			t.Errorf("list %+v: %d deliveries, want %d", f, len(got), len(want))
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatal("not in id order")
		}
	}
	if _, err := s.DeliveryList(ctx, store.DeliveryListParams{}); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("zero limit: %v", err)
	}
	if _, err := s.DeliveryList(ctx, store.DeliveryListParams{Status: 9, Limit: 1}); errs.KindOf(err) != errs.KindInvalid {
		t.Fatalf("bad status: %v", err)
	}
}
