package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/services/token/store"
)

// queueOutbox queues n audit events (ev-0 … ev-n-1) with one write.
func queueOutbox(t *testing.T, s store.Store, n int) {
	t.Helper()
	var out []store.OutboxEntry
	for i := range n {
		out = append(out, store.OutboxEntry{IdempotencyKey: fmt.Sprint("ev-", i), Payload: []byte{byte(i)}, CreateTime: now()})
	}
	if _, err := s.ConnectionPut(context.Background(), Conn("zoho", "org-1", now(), time.Hour), out); err != nil {
		t.Fatal(err)
	}
}

func claim(t *testing.T, s store.Store, owner string, at time.Time, limit int) []string {
	t.Helper()
	got, err := s.OutboxClaim(context.Background(), store.OutboxClaimParams{Owner: owner, Now: at, Until: at.Add(30 * time.Second), Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range got {
		if o.ClaimOwner != owner || !o.ClaimExpireTime.Equal(at.Add(30*time.Second)) {
			t.Fatalf("claimed entry %+v not marked as %s's", o, owner)
		}
		keys = append(keys, o.IdempotencyKey)
	}
	return keys
}

func testOutboxClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	queueOutbox(t, s, 5)
	at := now()
	if got := claim(t, s, "a", at, 3); fmt.Sprint(got) != "[ev-0 ev-1 ev-2]" {
		t.Fatalf("a claimed %v", got)
	}
	if got := claim(t, s, "b", at, 10); fmt.Sprint(got) != "[ev-3 ev-4]" {
		t.Fatalf("b claimed %v, want only what a did not hold", got)
	}
	if got := claim(t, s, "c", at, 10); len(got) != 0 {
		t.Fatalf("c claimed %v while every entry is held", got)
	}
	all, _ := s.OutboxList(ctx, 10)
	// a gives ev-2 back (not sent); someone else may take it at once.
	if err := s.OutboxRelease(ctx, "a", []int64{all[2].ID, all[3].ID}); err != nil { // ev-3 is b's: untouched
		t.Fatal(err)
	}
	if got := claim(t, s, "c", at, 10); fmt.Sprint(got) != "[ev-2]" {
		t.Fatalf("after release c claimed %v", got)
	}
	// a parks ev-0 (refused for good) and delivers ev-1.
	if err := s.OutboxPark(ctx, all[0].ID, "InvalidArgument: actor must be at most 256 bytes", at); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxDelete(ctx, []int64{all[1].ID}); err != nil {
		t.Fatal(err)
	}
	// Claims lapse: the claims of b and c (owners that died) are taken over; the parked entry never is.
	later := at.Add(31 * time.Second)
	if got := claim(t, s, "d", later, 10); fmt.Sprint(got) != "[ev-2 ev-3 ev-4]" {
		t.Fatalf("after the claims lapsed d claimed %v", got)
	}
	if got := claim(t, s, "e", later.Add(time.Hour), 10); fmt.Sprint(got) != "[ev-2 ev-3 ev-4]" {
		t.Fatalf("an hour later e claimed %v (the parked entry must stay parked)", got)
	}
	rest, _ := s.OutboxList(ctx, 10)
	if len(rest) != 4 || rest[0].IdempotencyKey != "ev-0" || !rest[0].ParkTime.Equal(at) ||
		rest[0].ParkReason != "InvalidArgument: actor must be at most 256 bytes" || rest[0].ClaimOwner != "" {
		t.Fatalf("outbox after parking: %+v", rest)
	}
}

// Many claimers at once (replicas) never get the same entry: on PostgreSQL this needs the row locks of
// FOR UPDATE SKIP LOCKED, on SQLite the single writer.
func testOutboxClaimsAreExclusive(t *testing.T, s store.Store) {
	const entries, claimers = 60, 8
	queueOutbox(t, s, entries)
	seen := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	at := now()
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			owner := fmt.Sprint("replica-", i)
			for range entries { // bounded: each round claims at least one entry or stops
				got, err := s.OutboxClaim(context.Background(), store.OutboxClaimParams{Owner: owner, Now: at, Until: at.Add(time.Minute), Limit: 3})
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, o := range got {
					if prev, ok := seen[o.IdempotencyKey]; ok {
						t.Errorf("%s claimed by %s and %s", o.IdempotencyKey, prev, owner)
					}
					seen[o.IdempotencyKey] = owner
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(seen) != entries {
		t.Fatalf("%d of %d entries claimed", len(seen), entries)
	}
}
