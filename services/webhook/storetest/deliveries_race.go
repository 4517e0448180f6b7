package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// fillEvents stores n events in batches (so that the test runs fast on PostgreSQL too).
func fillEvents(t *testing.T, s DeliveryBackend, n int) {
	t.Helper()
	for i := 0; i < n; i += 50 {
		var es []*store.Event
		for j := i; j < min(n, i+50); j++ {
			es = append(es, event("zoho", fmt.Sprint("race-", j), []byte("{}")))
		}
		if _, err := s.EventInsertBatch(context.Background(), es); err != nil {
			t.Fatal(err)
		}
	}
}

// testConcurrentClaims: claimers racing on one subscription within one lease period each get their
// own deliveries, and together all of them.
func testConcurrentClaims(t *testing.T, s DeliveryBackend) {
	const events, claimers = 300, 8
	sub := mustCreate(t, s, newSubscription("race", store.Filter{}))
	fillEvents(t, s, events)
	now := clock()
	var mu sync.Mutex
	owner := map[int64]int{}
	var wg sync.WaitGroup
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range events { // bounded: each round that claims anything takes at least one delivery
				claim, err := s.DeliveryClaim(context.Background(), store.ClaimParams{SubscriptionID: sub.ID, Consumer: fmt.Sprint("c", c), Now: now, Limit: 7})
				cs := claim.Claimed
				if err != nil {
					t.Error(err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, x := range cs {
					if prev, ok := owner[x.Delivery.ID]; ok {
						t.Errorf("delivery %d handed to claimers %d and %d in one lease period", x.Delivery.ID, prev, c)
					}
					owner[x.Delivery.ID] = c
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(owner) != events {
		t.Fatalf("claimed %d deliveries, want %d", len(owner), events)
	}
}

// testRacingAcks: 4 consumers claim and ack while leases keep expiring under them (a shared clock moves
// past a lease every few claims), so deliveries pass between them; each delivery is acked exactly once,
// every other ack of it refused, and all end delivered.
func testRacingAcks(t *testing.T, s DeliveryBackend) {
	const events, consumers = 120, 4
	sub := newSubscription("acks", store.Filter{})
	sub.Retry.MaxRetries = 1000
	mustCreate(t, s, sub)
	fillEvents(t, s, events)
	base := clock()
	var tick atomic.Int64
	var acked sync.Map // delivery id -> *atomic.Int32
	var refused atomic.Int64
	var wg sync.WaitGroup
	for c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for range 50 * events {
				// Each claim moves the clock by a third of a lease: a delivery not acked within three
				// claims (of any consumer) is handed to another.
				now := base.Add(time.Duration(tick.Add(1)) * sub.LeaseDuration / 3)
				claim, err := s.DeliveryClaim(ctx, store.ClaimParams{SubscriptionID: sub.ID, Consumer: fmt.Sprint("c", c), Now: now, Limit: 5})
				cs := claim.Claimed
				if err != nil {
					t.Error(err)
					return
				}
				if len(cs) == 0 {
					if left := len(deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID, Status: store.DeliveryDelivered})); left == events {
						return
					}
					continue
				}
				for _, x := range cs {
					_, err := s.DeliverySettle(ctx, store.SettleParams{ID: x.Delivery.ID, Lease: x.Delivery.Lease, Now: now})
					switch errs.KindOf(err) {
					case errs.KindFailedPrecondition:
						refused.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					n, _ := acked.LoadOrStore(x.Delivery.ID, new(atomic.Int32))
					n.(*atomic.Int32).Add(1)
				}
			}
		}()
	}
	wg.Wait()
	count := 0
	acked.Range(func(k, v any) bool {
		count++
		if n := v.(*atomic.Int32).Load(); n != 1 {
			t.Errorf("delivery %v acked %d times", k, n)
		}
		return true
	})
	if count != events {
		t.Fatalf("%d deliveries acked, want %d", count, events)
	}
	for _, d := range deliveriesOf(t, s, store.DeliveryListParams{SubscriptionID: sub.ID}) {
		_, as := getDelivery(t, s, d.ID)
		n := 0
		for _, a := range as {
			if a.Outcome == store.AttemptAcked {
				n++
			}
		}
		if d.Status != store.DeliveryDelivered || n != 1 {
			t.Fatalf("delivery %+v has %d acked attempts", d, n)
		}
	}
	t.Logf("%d stale acks refused", refused.Load())
}
