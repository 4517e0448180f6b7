package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/services/webhook/store"
)

// testIngestRacingSubscriptions: batches are stored while subscriptions are created and deleted (on
// PostgreSQL from other connections, as other replicas would). Afterwards every event's status agrees
// with its deliveries (pending exactly when one is outstanding), and no delivery of a deleted
// subscription is left (a fan-out racing the delete made none, or the delete removed it).
func testIngestRacingSubscriptions(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	keep := mustCreate(t, s, newSubscription("keep", store.Filter{Sources: []string{"github"}}))
	const batches, size = 40, 10
	done := make(chan struct{})
	var wg sync.WaitGroup
	var deleted []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 1000; i++ { // bounded; stops when the ingest ends
			select {
			case <-done:
				return
			default:
			}
			sub := newSubscription(fmt.Sprint("churn-", i), store.Filter{Sources: []string{"zoho"}})
			if err := s.SubscriptionCreate(ctx, sub); err != nil {
				t.Error(err)
				return
			}
			if err := s.SubscriptionDelete(ctx, sub.ID); err != nil {
				t.Error(err)
				return
			}
			deleted = append(deleted, sub.ID)
		}
	}()
	var ids []string
	for b := range batches {
		var es []*store.Event
		for i := range size {
			es = append(es, event([]string{"zoho", "github"}[i%2], fmt.Sprint("c", b, "-", i), []byte("{}")))
		}
		got, err := s.EventInsertBatch(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			ids = append(ids, r.Event.ID)
			if stored := eventStatus(t, s, r.Event.ID); stored != r.Event.Status && stored == store.StatusPending {
				t.Fatalf("returned %v, stored %v", r.Event.Status, stored)
			}
		}
	}
	close(done)
	wg.Wait()
	if len(deleted) == 0 {
		t.Fatal("no subscription was created and deleted during the ingest")
	}
	for _, id := range deleted {
		if n := len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: id})); n != 0 {
			t.Fatalf("%d deliveries of deleted subscription %s left", n, id)
		}
	}
	now := time.Now()
	for _, id := range ids {
		ds := deliveriesOf(t, s, store.DeliveryListParams{EventID: id})
		want := store.StatusDelivered
		for _, d := range ds {
			if d.SubscriptionID != keep.ID {
				t.Fatalf("event %s has a delivery of subscription %s", id, d.SubscriptionID)
			}
			want = store.StatusPending
		}
		if got := eventStatus(t, s, id); got != want {
			t.Fatalf("event %s is %v with %d deliveries at %v", id, got, len(ds), now)
		}
	}
}

// testConcurrentSettles: the deliveries of one event to many subscriptions are acked at once (on
// PostgreSQL from several connections): the last settle sees all the others, so the event ends
// delivered, not pending on a stale view of its siblings.
func testConcurrentSettles(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	const subs, events = 8, 5
	var ss []*store.Subscription
	for i := range subs {
		ss = append(ss, mustCreate(t, s, newSubscription(fmt.Sprint("s", i), store.Filter{})))
	}
	var es []*store.Event
	for i := range events {
		es = append(es, mustInsert(t, s, event("zoho", fmt.Sprint("e", i), []byte("{}"))))
	}
	now := clock()
	var claimed []store.Claimed
	for _, sub := range ss {
		claimed = append(claimed, claim(t, s, sub.ID, "c", now, events)...)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, c := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.DeliverySettle(ctx, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now}); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	for _, e := range es {
		if got := eventStatus(t, s, e.ID); got != store.StatusDelivered {
			t.Fatalf("event %s is %v after all its deliveries were acked", e.ID, got)
		}
	}
}
