package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// RunBatch runs the conformance suite of EventInsertBatch, the group committer's insert.
func RunBatch(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("BatchStoresEachWithItsOwnEvent", func(t *testing.T) { t.Parallel(); testBatchInsert(t, newStore(t)) })
	t.Run("BatchDuplicatesStoreOnce", func(t *testing.T) { t.Parallel(); testBatchDuplicates(t, newStore(t)) })
	t.Run("BatchIsAllOrNothing", func(t *testing.T) { t.Parallel(); testBatchAtomic(t, newStore(t)) })
	t.Run("ConcurrentOverlappingBatches", func(t *testing.T) { t.Parallel(); testConcurrentBatches(t, newStore(t)) })
}

// listAll lists every stored event (settled or not: nothing runs concurrently when it is called).
func listAll(t *testing.T, s store.Store) []*store.Event {
	t.Helper()
	es, err := s.EventList(context.Background(), store.EventListParams{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func testBatchInsert(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got, err := s.EventInsertBatch(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty batch: %v, %v", got, err)
	}
	var es []*store.Event
	for i := range 10 {
		e := event([]string{"zoho", "github"}[i%2], fmt.Sprint("k", 9-i), []byte(fmt.Sprint(`{"n":`, i, `}`)))
		if i == 3 {
			e.Payload = nil // an empty body is still stored, as a body
		}
		if i == 4 {
			e.Module, e.Operation, e.RecordIDs, e.ServerTime = "Deals", "update", []string{"41508"}, e.ReceiveTime
		}
		es = append(es, e)
	}
	got, err := s.EventInsertBatch(ctx, es)
	if err != nil || len(got) != len(es) {
		t.Fatalf("batch: %d results, %v", len(got), err)
	}
	seqs := map[int64]bool{}
	for i, r := range got {
		if r.Duplicate || r.Event.ID != es[i].ID || r.Event.DedupeKey != es[i].DedupeKey || r.Event.Seq <= 0 || seqs[r.Event.Seq] {
			t.Fatalf("result %d answers another event, a duplicate or a reused seq: %+v", i, r)
		}
		seqs[r.Event.Seq] = true
		stored, err := s.EventGet(ctx, es[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		// The answer is what a read returns (the read's payload is never nil).
		if stored.Seq != r.Event.Seq || stored.Tx != r.Event.Tx || !bytes.Equal(stored.Payload, r.Event.Payload) || r.Event.Payload == nil ||
			!stored.UpdateTime.Equal(r.Event.UpdateTime) || stored.Module != es[i].Module || !slices.Equal(stored.RecordIDs, es[i].RecordIDs) ||
			!stored.ServerTime.Equal(es[i].ServerTime) || len(stored.Headers) != 2 {
			t.Fatalf("event %d: answered %+v, stored %+v", i, r.Event, stored)
		}
	}
	if n := len(listAll(t, s)); n != len(es) {
		t.Fatalf("%d events listed, want %d", n, len(es))
	}
}

// A key already stored, and a key twice in one batch, each store one event; every later delivery is
// answered with the first one's event as a duplicate.
func testBatchDuplicates(t *testing.T, s store.Store) {
	ctx := context.Background()
	before, _, err := s.EventInsert(ctx, event("zoho", "k1", []byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	es := []*store.Event{
		event("zoho", "k1", []byte("a")),   // stored before
		event("zoho", "k2", []byte("b")),   // new
		event("zoho", "k2", []byte("b")),   // the one before, in this batch
		event("github", "k2", []byte("c")), // the same key from another source is another delivery
		event("zoho", "k1", []byte("a")),   // stored before, again
		event("zoho", "k2", []byte("b")),   // the third of k2
	}
	got, err := s.EventInsertBatch(ctx, es)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id  string
		dup bool
	}{{before.ID, true}, {es[1].ID, false}, {es[1].ID, true}, {es[3].ID, false}, {before.ID, true}, {es[1].ID, true}}
	for i, w := range want {
		if got[i].Event.ID != w.id || got[i].Duplicate != w.dup {
			t.Fatalf("result %d: id %s dup %v, want id %s dup %v", i, got[i].Event.ID, got[i].Duplicate, w.id, w.dup)
		}
	}
	if n := len(listAll(t, s)); n != 3 {
		t.Fatalf("%d events stored, want 3 (k1, zoho k2, github k2)", n)
	}
}

// An event the database refuses fails the whole batch and nothing of it is stored: the group committer
// then retries the batch in parts so that only that event fails.
func testBatchAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	first, _, err := s.EventInsert(ctx, event("zoho", "k0", []byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	clash := event("zoho", "other-key", []byte("b"))
	clash.ID = first.ID // an id already stored: refused by the id's unique index, not a duplicate delivery
	es := []*store.Event{event("zoho", "k1", nil), clash, event("zoho", "k2", nil)}
	if _, err := s.EventInsertBatch(ctx, es); errs.KindOf(err) != errs.KindAlreadyExists {
		t.Fatalf("batch with a refused event: %v, want already exists", err)
	}
	if n := len(listAll(t, s)); n != 1 {
		t.Fatalf("%d events stored after a failed batch, want only the one before", n)
	}
}

// Batches from several writers (replicas) that share keys, in different orders, store each key once,
// answer every delivery of a key with one event, and never fail (no deadlock on PostgreSQL).
func testConcurrentBatches(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, keys = 6, 40
	answers := make([][]store.Inserted, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var es []*store.Event
			for k := range keys {
				if w%2 == 1 {
					k = keys - 1 - k // the reverse order: the lock order must not come from the caller
				}
				es = append(es, event("zoho", fmt.Sprint("key-", k), []byte("x")))
			}
			got, err := s.EventInsertBatch(ctx, es)
			if err != nil {
				t.Error(err)
				return
			}
			answers[w] = got
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	byKey := map[string]string{}
	stored := 0
	for _, got := range answers {
		for _, r := range got {
			if id, ok := byKey[r.Event.DedupeKey]; ok && id != r.Event.ID {
				t.Fatalf("key %s answered with two events: %s and %s", r.Event.DedupeKey, id, r.Event.ID)
			}
			byKey[r.Event.DedupeKey] = r.Event.ID
			if !r.Duplicate {
				stored++
			}
		}
	}
	if stored != keys {
		t.Fatalf("%d deliveries answered as stored, want %d (one per key)", stored, keys)
	}
	if n := len(listAll(t, s)); n != keys {
		t.Fatalf("%d events stored, want %d", n, keys)
	}
}
