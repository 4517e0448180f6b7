package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// Replays, purges, claims with acks and a subscription created and deleted, all at once over the same
// events, never wait on each other in a cycle (PostgreSQL would fail one with a deadlock) and leave
// every delivery with its event and every event's status true to its deliveries: a purge never deletes
// an event a replay made pending, and a replay never gives a delivery to an event a purge deleted.
func testReplayPurgeRace(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	sub := mustCreate(t, s, newSubscription("race", store.Filter{}))
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	const n = 120
	var es []*store.Event
	for i := range n {
		e := event("zoho", fmt.Sprint("race-", i), []byte("{}"))
		e.ReceiveTime = base.Add(time.Duration(i) * time.Millisecond)
		es = append(es, e)
	}
	if _, err := s.EventInsertBatch(ctx, es); err != nil {
		t.Fatal(err)
	}
	const rounds = 15
	var wg sync.WaitGroup
	fail := func(what string, err error) { t.Errorf("%s: %v", what, err) }
	run := func(what string, fn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := fn(i); err != nil {
					fail(what, err)
					return
				}
			}
		}()
	}
	run("consume", func(int) error {
		c, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: sub.ID, Consumer: "c", Now: clock(), Limit: 40})
		if err != nil {
			return err
		}
		var ps []store.SettleParams
		for _, d := range c.Claimed {
			ps = append(ps, store.SettleParams{ID: d.Delivery.ID, Lease: d.Delivery.Lease, Now: clock()})
		}
		if len(ps) == 0 {
			return nil
		}
		_, err = s.DeliverySettleBatch(ctx, ps)
		return err
	})
	run("replay range", func(int) error {
		_, err := s.DeliveryReplay(ctx, store.ReplayParams{SubscriptionID: sub.ID, From: base, Now: clock()})
		return err
	})
	run("replay one", func(i int) error {
		_, err := s.DeliveryReplay(ctx, store.ReplayParams{SubscriptionID: sub.ID, EventID: es[i*7%n].ID, Now: clock()})
		if errs.KindOf(err) == errs.KindNotFound { // purged
			return nil
		}
		return err
	})
	run("purge", func(int) error {
		_, err := s.EventsPurge(ctx, store.PurgeParams{Before: clock(), Now: clock(), BatchSize: 7})
		return err
	})
	run("subscription churn", func(i int) error {
		other := newSubscription(fmt.Sprint("churn-", i), store.Filter{})
		if err := s.SubscriptionCreate(ctx, other); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.DeliveryReplay(ctx, store.ReplayParams{SubscriptionID: other.ID, From: base, Now: clock()})
			if errs.KindOf(err) == errs.KindNotFound {
				err = nil
			}
			done <- err
		}()
		err := s.SubscriptionDelete(ctx, other.ID)
		if rerr := <-done; rerr != nil {
			return rerr
		}
		return err
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	// Every delivery has its event, and every event's status follows its deliveries.
	byEvent := map[string][]*store.Delivery{}
	for _, d := range deliveriesOf(t, s, store.DeliveryListParams{}) {
		byEvent[d.EventID] = append(byEvent[d.EventID], d)
		if d.SubscriptionID != sub.ID {
			t.Fatalf("a deleted subscription's delivery is left: %+v", d)
		}
	}
	for id, ds := range byEvent {
		e, err := s.EventGet(ctx, id)
		if err != nil {
			t.Fatalf("delivery %d names event %s: %v", ds[0].ID, id, err)
		}
		outstanding := false
		for _, d := range ds {
			outstanding = outstanding || (d.Status != store.DeliveryDelivered && d.Status != store.DeliveryDeadLetter)
		}
		if outstanding != (e.Status == store.StatusPending) {
			t.Fatalf("event %s is %v with deliveries %+v", id, e.Status, ds)
		}
	}
}
