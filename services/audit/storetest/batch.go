package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

func pending(es ...*store.Event) []store.Pending {
	ps := make([]store.Pending, len(es))
	for i, e := range es {
		ps[i] = store.Pending{Event: e}
	}
	return ps
}

// testBatch: one Append of many events stores them all, in order, each sealed to the one before, after
// what was there.
func testBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, _, err := s.EventAppend(ctx, NewEvent("agent-0", "before", time.Now())); err != nil {
		t.Fatal(err)
	}
	var es []*store.Event
	for i := range 300 {
		es = append(es, NewEvent("agent-1", fmt.Sprintf("a.%d", i), time.Now()))
	}
	res, err := s.Append(ctx, pending(es...))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Duplicate || r.Event.ID != es[i].ID || r.Event.Sequence != int64(i+2) {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	got := all(t, s)
	if len(got) != 301 {
		t.Fatalf("%d events stored, want 301", len(got))
	}
	VerifyChain(t, got)
	// An empty batch, or one of duplicates only, changes nothing.
	if res, err := s.Append(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

// testBatchKeys: idempotency keys inside one batch, and between batches, resolve as if the events had
// been appended one after the other; a conflicting key fails that event alone.
func testBatchKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	stored := NewEvent("agent-1", "first", time.Now())
	stored.IdempotencyKey = "k-stored"
	if _, _, err := s.EventAppend(ctx, stored); err != nil {
		t.Fatal(err)
	}
	retryStored := NewEvent("agent-1", "first", time.Now())
	retryStored.IdempotencyKey = "k-stored"
	conflictStored := NewEvent("agent-1", "other", time.Now())
	conflictStored.IdempotencyKey = "k-stored"
	a := NewEvent("agent-2", "in-batch", time.Now())
	a.IdempotencyKey = "k-new"
	aAgain := NewEvent("agent-2", "in-batch", time.Now())
	aAgain.IdempotencyKey = "k-new"
	aConflict := NewEvent("agent-2", "changed", time.Now())
	aConflict.IdempotencyKey = "k-new"
	other := NewEvent("agent-3", "in-batch", time.Now())
	other.Principal, other.IdempotencyKey = "apikey:other-writer", "k-new" // another principal's key
	plain := NewEvent("agent-4", "plain", time.Now())
	timed := NewEvent("agent-5", "timed", time.Now().Add(-time.Minute))
	timed.IdempotencyKey = "k-timed"
	timedLater := NewEvent("agent-5", "timed", time.Now())
	timedLater.IdempotencyKey = "k-timed"

	ps := pending(retryStored, conflictStored, a, aAgain, aConflict, other, plain, timed, timedLater)
	ps[8].OccurGiven = true // a retry that names another occur_time is other content
	res, err := s.Append(ctx, ps)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(i int, id string, dup bool, conflict bool) {
		t.Helper()
		r := res[i]
		switch {
		case conflict:
			if !errors.Is(r.Err, errs.ErrAlreadyExists) || r.Event != nil {
				t.Errorf("event %d: %+v, want AlreadyExists", i, r)
			}
		case r.Err != nil || r.Duplicate != dup || r.Event.ID != id:
			t.Errorf("event %d: %+v err %v, want id %s duplicate %v", i, r.Event, r.Err, id, dup)
		}
	}
	expect(0, stored.ID, true, false)
	expect(1, "", false, true)
	expect(2, a.ID, false, false)
	expect(3, a.ID, true, false)
	expect(4, "", false, true)
	expect(5, other.ID, false, false)
	expect(6, plain.ID, false, false)
	expect(7, timed.ID, false, false)
	expect(8, "", false, true)
	if res[3].Event.Sequence != res[2].Event.Sequence {
		t.Errorf("in-batch duplicate has sequence %d, want %d", res[3].Event.Sequence, res[2].Event.Sequence)
	}
	got := all(t, s)
	if len(got) != 5 {
		t.Fatalf("%d events stored, want 5", len(got))
	}
	VerifyChain(t, got)
	// In a later batch the keys stored by this one are duplicates too.
	res, err = s.Append(ctx, pending(aAgain))
	if err != nil || !res[0].Duplicate || res[0].Event.ID != a.ID {
		t.Fatalf("next batch: %+v %v", res, err)
	}
}

// testConcurrentBatches: batches of different sizes appended at once from many goroutines, sharing
// keys, leave one gap-free chain with each key stored once.
func testConcurrentBatches(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, rounds = 8, 6
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				var es []*store.Event
				for i := range 1 + (w+r)%7 {
					es = append(es, NewEvent(fmt.Sprintf("w%d", w), fmt.Sprintf("r%d.%d", r, i), time.Now()))
				}
				k := NewEvent("shared", "keyed", time.Now())
				k.IdempotencyKey = fmt.Sprintf("round-%d", r)
				es = append(es, k)
				res, err := s.Append(ctx, pending(es...))
				if err != nil {
					errc <- err
					continue
				}
				for _, x := range res {
					if x.Err != nil {
						errc <- x.Err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	want := rounds // one keyed event per round
	for w := range workers {
		for r := range rounds {
			want += 1 + (w+r)%7
		}
	}
	got := all(t, s)
	if len(got) != want {
		t.Fatalf("%d events, want %d", len(got), want)
	}
	VerifyChain(t, got)
}
