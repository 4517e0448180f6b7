package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// BatchSettler is a store that settles many leases in one transaction (both backends).
type BatchSettler interface {
	DeliverySettleBatch(ctx context.Context, ps []store.SettleParams) ([]store.SettleResult, error)
}

// testSettleBatch: each element is settled as DeliverySettle would, refusals stay per element, results
// come in request order, and the events are settled.
func testSettleBatch(t *testing.T, s DeliveryBackend) {
	bs, ok := s.(BatchSettler)
	if !ok {
		t.Fatal("store does not settle batches")
	}
	ctx := context.Background()
	sub := mustCreate(t, s, newSubscription("batch", store.Filter{}))
	for i := range 5 {
		mustInsert(t, s, event("zoho", fmt.Sprint("sb", i), []byte("{}")))
	}
	now := clock()
	cs := claim(t, s, sub.ID, "c", now, 10)
	if len(cs) != 5 {
		t.Fatalf("claimed %d", len(cs))
	}
	d := func(i int) *store.Delivery { return cs[i].Delivery }
	retryAt := now.Add(time.Hour)
	ps := []store.SettleParams{
		{ID: d(4).ID, Lease: d(4).Lease, Now: now},                                               // ack, named first but locked last
		{ID: d(1).ID, Lease: d(1).Lease, Now: now, Nack: true, RetryAt: retryAt, Error: "later"}, // nack
		{ID: d(2).ID, Lease: d(2).Lease, Now: now},                                               // ack
		{ID: d(2).ID, Lease: d(2).Lease, Now: now},                                               // the same again: refused
		{ID: d(3).ID, Lease: d(3).Lease + 1, Now: now},                                           // not its lease: refused
		{ID: d(4).ID + 1000, Lease: 1, Now: now},                                                 // unknown: not found
	}
	res, err := bs.DeliverySettleBatch(ctx, ps)
	if err != nil || len(res) != len(ps) {
		t.Fatalf("batch: %d results, %v", len(res), err)
	}
	if res[0].Err != nil || res[0].Delivery.Status != store.DeliveryDelivered || res[0].Delivery.ID != d(4).ID {
		t.Fatalf("ack: %+v", res[0])
	}
	if res[1].Err != nil || res[1].Delivery.Status != store.DeliveryFailed || !res[1].Delivery.AvailableTime.Equal(retryAt) {
		t.Fatalf("nack: %+v", res[1])
	}
	if res[2].Err != nil || res[2].Delivery.Status != store.DeliveryDelivered {
		t.Fatalf("ack: %+v", res[2])
	}
	wantKind(t, "same delivery twice", res[3].Err, errs.KindFailedPrecondition)
	wantKind(t, "other lease", res[4].Err, errs.KindFailedPrecondition)
	wantKind(t, "unknown", res[5].Err, errs.KindNotFound)
	for i, want := range []store.DeliveryStatus{store.DeliveryLeased, store.DeliveryFailed, store.DeliveryDelivered, store.DeliveryLeased, store.DeliveryDelivered} {
		got, as := getDelivery(t, s, d(i).ID)
		if got.Status != want {
			t.Fatalf("delivery %d is %v, want %v", i, got.Status, want)
		}
		if n := len(as); (want == store.DeliveryLeased) != (n == 0) {
			t.Fatalf("delivery %d has %d attempts", i, n)
		}
	}
	if eventStatus(t, s, cs[2].Event.ID) != store.StatusDelivered || eventStatus(t, s, cs[1].Event.ID) != store.StatusPending {
		t.Fatal("events not settled")
	}
	if res, err := bs.DeliverySettleBatch(ctx, []store.SettleParams{{ID: d(0).ID, Lease: d(0).Lease, Error: "\x00"}}); err == nil {
		t.Fatalf("NUL in an error: %+v", res)
	}
}

// testSettleBatchesRace: two batches settle the same deliveries named in opposite orders, at once: each
// delivery is acked by exactly one of them and neither fails (no deadlock on PostgreSQL).
func testSettleBatchesRace(t *testing.T, s DeliveryBackend) {
	bs := s.(BatchSettler)
	sub := mustCreate(t, s, newSubscription("race", store.Filter{}))
	fillEvents(t, s, 60)
	now := clock()
	var ps []store.SettleParams
	for _, c := range claim(t, s, sub.ID, "c", now, 100) {
		ps = append(ps, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now})
	}
	rev := slices.Clone(ps)
	slices.Reverse(rev)
	var wg sync.WaitGroup
	results := make([][]store.SettleResult, 2)
	for k, batch := range [][]store.SettleParams{ps, rev} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := bs.DeliverySettleBatch(context.Background(), batch)
			if err != nil {
				t.Error(err)
			}
			results[k] = res
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	acked := map[int64]int{}
	for k := range results {
		for _, r := range results[k] {
			if r.Err == nil {
				acked[r.Delivery.ID]++
			}
		}
	}
	if len(acked) != len(ps) {
		t.Fatalf("%d deliveries acked, want %d", len(acked), len(ps))
	}
	for id, n := range acked {
		if n != 1 {
			t.Fatalf("delivery %d acked %d times", id, n)
		}
	}
}
