package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// oneDelivery makes a subscription (adjusted by mutate) and one event for it, and returns both.
func oneDelivery(t *testing.T, s DeliveryBackend, mutate func(*store.Subscription)) (*store.Subscription, *store.Event) {
	t.Helper()
	sub := newSubscription("one", store.Filter{})
	if mutate != nil {
		mutate(sub)
	}
	mustCreate(t, s, sub)
	return sub, mustInsert(t, s, event("zoho", "one", []byte("{}")))
}

func claimOne(t *testing.T, s DeliveryBackend, sub *store.Subscription, consumer string, now time.Time) *store.Delivery {
	t.Helper()
	cs := claim(t, s, sub.ID, consumer, now, 10)
	if len(cs) != 1 {
		t.Fatalf("%s claimed %d deliveries at %v, want 1", consumer, len(cs), now)
	}
	return cs[0].Delivery
}

func settle(t *testing.T, s DeliveryBackend, p store.SettleParams) *store.Delivery {
	t.Helper()
	d, err := s.DeliverySettle(context.Background(), p)
	if err != nil {
		t.Fatalf("settle %+v: %v", p, err)
	}
	return d
}

func testLeaseExpiry(t *testing.T, s DeliveryBackend) {
	sub, _ := oneDelivery(t, s, nil)
	now := clock()
	first := claimOne(t, s, sub, "c1", now)
	if cs := claim(t, s, sub.ID, "c2", now.Add(sub.LeaseDuration-time.Microsecond), 10); len(cs) != 0 {
		t.Fatal("claimed before the lease ended")
	}
	end := now.Add(sub.LeaseDuration)
	second := claimOne(t, s, sub, "c2", end)
	if second.ID != first.ID || second.Lease != 2 || second.AttemptCount != 2 || second.Consumer != "c2" {
		t.Fatalf("reclaimed %+v", second)
	}
	_, as := getDelivery(t, s, first.ID)
	want := []store.Attempt{{Number: 1, StartTime: now, Duration: sub.LeaseDuration, Outcome: store.AttemptLeaseExpired, Consumer: "c1"}}
	if !reflect.DeepEqual(as, want) {
		t.Fatalf("attempts %+v\nwant %+v", as, want)
	}
}

// testStaleSettle: once the delivery passed to another consumer, the first one's ack, nack and extend
// are refused and change nothing; the same for a lease already settled.
func testStaleSettle(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub, e := oneDelivery(t, s, nil)
	now := clock()
	first := claimOne(t, s, sub, "c1", now)
	later := now.Add(sub.LeaseDuration)
	second := claimOne(t, s, sub, "c2", later)
	before, beforeAttempts := getDelivery(t, s, first.ID)
	for _, nack := range []bool{false, true} {
		_, err := s.DeliverySettle(ctx, store.SettleParams{ID: first.ID, Lease: first.Lease, Now: later, Nack: nack, Error: "x"})
		wantKind(t, "stale settle", err, errs.KindFailedPrecondition)
	}
	_, err := s.DeliveryExtend(ctx, first.ID, first.Lease, later, later.Add(time.Hour))
	wantKind(t, "stale extend", err, errs.KindFailedPrecondition)
	after, afterAttempts := getDelivery(t, s, first.ID)
	if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(afterAttempts, beforeAttempts) {
		t.Fatalf("a refused settle changed the delivery:\n%+v\n%+v", before, after)
	}
	settle(t, s, store.SettleParams{ID: second.ID, Lease: second.Lease, Now: later})
	_, err = s.DeliverySettle(ctx, store.SettleParams{ID: second.ID, Lease: second.Lease, Now: later})
	wantKind(t, "second ack", err, errs.KindFailedPrecondition)
	_, err = s.DeliverySettle(ctx, store.SettleParams{ID: second.ID + 1000, Lease: 1, Now: later})
	wantKind(t, "unknown delivery", err, errs.KindNotFound)
	if eventStatus(t, s, e.ID) != store.StatusDelivered {
		t.Fatal("event not delivered")
	}
}

func testExpiredAck(t *testing.T, s DeliveryBackend) {
	sub, e := oneDelivery(t, s, nil)
	now := clock()
	d := claimOne(t, s, sub, "c1", now)
	late := now.Add(3 * sub.LeaseDuration)
	got := settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: late})
	if got.Status != store.DeliveryDelivered || !got.AvailableTime.IsZero() || !got.UpdateTime.Equal(late) {
		t.Fatalf("acked %+v", got)
	}
	stored, as := getDelivery(t, s, d.ID)
	if !reflect.DeepEqual(stored, got) {
		t.Fatalf("stored %+v\nreturned %+v", stored, got)
	}
	want := []store.Attempt{{Number: 1, StartTime: now, Duration: late.Sub(now), Outcome: store.AttemptAcked, Consumer: "c1"}}
	if !reflect.DeepEqual(as, want) {
		t.Fatalf("attempts %+v\nwant %+v", as, want)
	}
	if eventStatus(t, s, e.ID) != store.StatusDelivered {
		t.Fatal("event not delivered")
	}
	if cs := claim(t, s, sub.ID, "c2", late.Add(time.Hour), 10); len(cs) != 0 {
		t.Fatal("a delivered delivery was claimed")
	}
}

func testNack(t *testing.T, s DeliveryBackend) {
	sub, e := oneDelivery(t, s, func(s *store.Subscription) {
		s.Retry = store.RetryPolicy{MaxRetries: 5, BackoffBase: 10 * time.Second, BackoffCap: 25 * time.Second}
	})
	now := clock()
	d := claimOne(t, s, sub, "c1", now)
	got := settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now, Nack: true, Error: "boom"})
	// Attempt 1 failed: base (10 s), equal jitter: in [5 s, 10 s].
	if got.Status != store.DeliveryFailed || got.LastError != "boom" || got.AvailableTime.Before(now.Add(5*time.Second)) ||
		got.AvailableTime.After(now.Add(10*time.Second)) {
		t.Fatalf("nacked %+v", got)
	}
	if eventStatus(t, s, e.ID) != store.StatusPending {
		t.Fatal("a failed delivery's event is not pending")
	}
	if cs := claim(t, s, sub.ID, "c1", got.AvailableTime.Add(-time.Microsecond), 10); len(cs) != 0 {
		t.Fatal("claimed before its retry time")
	}
	d = claimOne(t, s, sub, "c1", got.AvailableTime)
	// Attempt 2 failed: 20 s jittered to [10 s, 20 s].
	at := got.AvailableTime
	got = settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: at, Nack: true})
	if got.AvailableTime.Before(at.Add(10*time.Second)) || got.AvailableTime.After(at.Add(20*time.Second)) || got.LastError != "" {
		t.Fatalf("second nack %+v", got)
	}
	d = claimOne(t, s, sub, "c1", got.AvailableTime)
	retryAt := got.AvailableTime.Add(time.Hour + 7*time.Microsecond)
	got = settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: d.LeaseStartTime, Nack: true, RetryAt: retryAt, Error: "later"})
	if !got.AvailableTime.Equal(retryAt) || got.Status != store.DeliveryFailed {
		t.Fatalf("nack with RetryAt: %+v", got)
	}
	_, as := getDelivery(t, s, d.ID)
	if len(as) != 3 || as[0].Outcome != store.AttemptNacked || as[0].Error != "boom" || as[2].Error != "later" || as[2].Number != 3 {
		t.Fatalf("attempts %+v", as)
	}
}

func testDeadByNacks(t *testing.T, s DeliveryBackend) {
	sub, e := oneDelivery(t, s, func(s *store.Subscription) { s.Retry = store.RetryPolicy{MaxRetries: 2} })
	now := clock()
	for i := range 3 {
		d := claimOne(t, s, sub, "c", now)
		got := settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now, Nack: true, Error: "fail"})
		want := store.DeliveryFailed
		if i == 2 {
			want = store.DeliveryDeadLetter
		}
		if got.Status != want || got.AttemptCount != int32(i+1) {
			t.Fatalf("nack %d: %+v", i+1, got)
		}
	}
	if cs := claim(t, s, sub.ID, "c", now.Add(time.Hour), 10); len(cs) != 0 {
		t.Fatal("a dead letter was claimed")
	}
	if eventStatus(t, s, e.ID) != store.StatusDeadLetter {
		t.Fatalf("event is %v, want dead letter", eventStatus(t, s, e.ID))
	}
}

func testDeadByExpiry(t *testing.T, s DeliveryBackend) {
	sub, e := oneDelivery(t, s, func(s *store.Subscription) { s.Retry.MaxRetries = 1 })
	now := clock()
	d := claimOne(t, s, sub, "c1", now)
	now = now.Add(sub.LeaseDuration)
	d = claimOne(t, s, sub, "c2", now)
	now = now.Add(sub.LeaseDuration)
	if cs := claim(t, s, sub.ID, "c3", now, 10); len(cs) != 0 {
		t.Fatalf("an expired delivery out of attempts was handed out: %+v", cs[0].Delivery)
	}
	got, as := getDelivery(t, s, d.ID)
	if got.Status != store.DeliveryDeadLetter || got.LastError != store.LeaseExpiredError || !got.AvailableTime.IsZero() || got.Consumer != "c2" {
		t.Fatalf("dead by expiry: %+v", got)
	}
	if len(as) != 2 || as[0].Outcome != store.AttemptLeaseExpired || as[1].Outcome != store.AttemptLeaseExpired || as[1].Consumer != "c2" {
		t.Fatalf("attempts %+v", as)
	}
	if eventStatus(t, s, e.ID) != store.StatusDeadLetter {
		t.Fatal("event not dead")
	}
	// A claim that finds dead letters first still hands out what comes after them.
	next := mustInsert(t, s, event("zoho", "next", []byte("{}")))
	if cs := claim(t, s, sub.ID, "c3", now.Add(time.Hour), 1); len(cs) != 1 || cs[0].Event.ID != next.ID {
		t.Fatalf("claim after a dead letter: %+v", cs)
	}
}

// testEventStatus: an event waits on all its deliveries: pending while any is outstanding, delivered
// when all are, dead letter when one is dead and none outstanding, pending again on redrive.
func testEventStatus(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	a := mustCreate(t, s, newSubscription("a", store.Filter{}))
	b := mustCreate(t, s, newSubscription("b", store.Filter{}))
	now := clock()
	e := mustInsert(t, s, event("zoho", "two", []byte("{}")))
	da, db := claimOne(t, s, a, "c", now), claimOne(t, s, b, "c", now)
	settle(t, s, store.SettleParams{ID: da.ID, Lease: da.Lease, Now: now})
	if got := eventStatus(t, s, e.ID); got != store.StatusPending {
		t.Fatalf("one of two acked: %v", got)
	}
	settle(t, s, store.SettleParams{ID: db.ID, Lease: db.Lease, Now: now})
	if got := eventStatus(t, s, e.ID); got != store.StatusDelivered {
		t.Fatalf("both acked: %v", got)
	}
	// Dead on one subscription while the other is outstanding: pending, then dead letter.
	dead := mustCreate(t, s, func() *store.Subscription {
		x := newSubscription("x", store.Filter{})
		x.Retry.MaxRetries = 0
		return x
	}())
	e2 := mustInsert(t, s, event("zoho", "three", []byte("{}")))
	dx := claimOne(t, s, dead, "c", now)
	settle(t, s, store.SettleParams{ID: dx.ID, Lease: dx.Lease, Now: now, Nack: true, Error: "no"})
	if got := eventStatus(t, s, e2.ID); got != store.StatusPending {
		t.Fatalf("dead while others are outstanding: %v", got)
	}
	for _, sub := range []*store.Subscription{a, b} {
		d := claimOne(t, s, sub, "c", now)
		settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now})
	}
	if got := eventStatus(t, s, e2.ID); got != store.StatusDeadLetter {
		t.Fatalf("one dead, others delivered: %v", got)
	}
	later := now.Add(time.Minute)
	if n, err := s.DeliveryRedrive(ctx, store.RedriveParams{SubscriptionID: dead.ID, Now: later}); err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	if got := eventStatus(t, s, e2.ID); got != store.StatusPending {
		t.Fatalf("redriven: %v", got)
	}
	d := claimOne(t, s, dead, "c", later)
	if d.AttemptCount != 1 || d.Lease != 2 {
		t.Fatalf("redriven delivery %+v: attempts restart, leases do not", d)
	}
	settle(t, s, store.SettleParams{ID: d.ID, Lease: d.Lease, Now: later})
	if got := eventStatus(t, s, e2.ID); got != store.StatusDelivered {
		t.Fatalf("redriven and acked: %v", got)
	}
	if e, err := s.EventGet(ctx, e2.ID); err != nil || !e.UpdateTime.Equal(later) {
		t.Fatalf("event update time %v (%v), want %v", e.UpdateTime, err, later)
	}
}
