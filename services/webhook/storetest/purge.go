package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// A purge deletes the delivered events received before its time (also those no subscription wanted),
// oldest first in batches, with their deliveries; events with a delivery pending, leased, failed or
// dead, and events received later, stay with theirs. A purged event's dedupe key is forgotten.
func testPurge(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Microsecond).Add(-2 * time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	ev := map[int]*store.Event{}
	ins := func(i int) {
		e := event("zoho", fmt.Sprint("purge-", i), []byte("{}"))
		e.ReceiveTime = at(i)
		ev[i] = mustInsert(t, s, e)
	}
	ins(0) // no subscription yet: delivered without deliveries
	sub := newSubscription("all", store.Filter{})
	sub.Retry.MaxRetries = 1
	mustCreate(t, s, sub)
	for _, i := range []int{1, 2, 3, 4, 10, 11, 12, 13, 14, 40} {
		ins(i)
	}
	now := clock()
	ack := func(c store.Claimed) {
		settle(t, s, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now})
	}
	nack := func(c store.Claimed, retryAt time.Time) {
		settle(t, s, store.SettleParams{ID: c.Delivery.ID, Lease: c.Delivery.Lease, Now: now, Nack: true, RetryAt: retryAt, Error: "no"})
	}
	// Minute 1 delivered, 2 leased, 3 failed, 4 dead, 5 pending; 10-14 and 40 delivered.
	cs := claim(t, s, sub.ID, "c", now, 4)
	ack(cs[0])
	nack(cs[2], now.Add(time.Hour))
	nack(cs[3], at(0))
	nack(claim(t, s, sub.ID, "c", now, 1)[0], time.Time{})
	for _, c := range claim(t, s, sub.ID, "c", now, 100) {
		ack(c)
	}
	ins(5) // after the claims: pending
	kept := []int{2, 3, 4, 5, 40}
	purged := []int{0, 1, 10, 11, 12, 13, 14}
	var purgedDeliveries []int64
	for _, i := range purged[1:] {
		purgedDeliveries = append(purgedDeliveries, deliveriesOf(t, s, store.DeliveryListParams{EventID: ev[i].ID})[0].ID)
	}
	r, err := s.EventsPurge(ctx, store.PurgeParams{Before: at(30), Now: now, BatchSize: 2, Actor: "apikey:ops"})
	if err != nil || r != (store.PurgeResult{Events: 7, Deliveries: 6}) {
		t.Fatalf("purge: %+v %v", r, err)
	}
	for _, i := range purged {
		if _, err := s.EventGet(ctx, ev[i].ID); errs.KindOf(err) != errs.KindNotFound {
			t.Fatalf("minute %d not purged: %v", i, err)
		}
	}
	for _, id := range purgedDeliveries {
		if _, _, err := s.DeliveryGet(ctx, id); errs.KindOf(err) != errs.KindNotFound {
			t.Fatalf("delivery %d not purged: %v", id, err)
		}
	}
	for _, i := range kept {
		if _, err := s.EventGet(ctx, ev[i].ID); err != nil {
			t.Fatalf("minute %d: %v", i, err)
		}
		if ds := deliveriesOf(t, s, store.DeliveryListParams{EventID: ev[i].ID}); len(ds) != 1 {
			t.Fatalf("minute %d has %d deliveries", i, len(ds))
		}
	}
	if r, err := s.EventsPurge(ctx, store.PurgeParams{Before: at(30), Now: now, BatchSize: 2}); err != nil || r != (store.PurgeResult{}) {
		t.Fatalf("second purge: %+v %v", r, err)
	}
	// The sender repeats minute 0's delivery: its key was purged with it, so it is stored again.
	e := event("zoho", "purge-0", []byte("{}"))
	if got, dup, err := s.EventInsert(ctx, e); err != nil || dup || got.ID != e.ID {
		t.Fatalf("repeat after purge: %+v dup=%v %v", got, dup, err)
	}
}

// Purges refuse what they cannot do, and stop when their context ends.
func testPurgeRefusals(t *testing.T, s DeliveryBackend) {
	ctx := context.Background()
	now := clock()
	_, err := s.EventsPurge(ctx, store.PurgeParams{Before: now, Now: now})
	wantKind(t, "no batch size", err, errs.KindInvalid)
	_, err = s.EventsPurge(ctx, store.PurgeParams{Now: now, BatchSize: 10})
	wantKind(t, "no time", err, errs.KindInvalid)
	e := mustInsert(t, s, event("zoho", "stays", []byte("{}")))
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.EventsPurge(done, store.PurgeParams{Before: now, Now: now, BatchSize: 10}); err == nil {
		t.Fatal("a purge ran on a context that had ended")
	}
	if _, err := s.EventGet(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
}
