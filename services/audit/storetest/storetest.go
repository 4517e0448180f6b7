// Package storetest is the audit store's conformance suite. Every backend's tests call Run, so that
// SQLite and PostgreSQL behave the same.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
)

// Run runs the suite; newStore returns an empty, migrated store for one subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("AppendChains", func(t *testing.T) { t.Parallel(); testAppendChains(t, newStore(t)) })
	t.Run("GetAndNotFound", func(t *testing.T) { t.Parallel(); testGet(t, newStore(t)) })
	t.Run("Idempotency", func(t *testing.T) { t.Parallel(); testIdempotency(t, newStore(t)) })
	t.Run("ListFiltersAndPages", func(t *testing.T) { t.Parallel(); testList(t, newStore(t)) })
	t.Run("ConcurrentAppendsStayGapFree", func(t *testing.T) { t.Parallel(); testConcurrent(t, newStore(t)) })
	t.Run("IdempotencyKeysBelongToTheirPrincipal", func(t *testing.T) { t.Parallel(); testKeysPerPrincipal(t, newStore(t)) })
	t.Run("PrincipalIsStoredAndHashed", func(t *testing.T) { t.Parallel(); testPrincipal(t, newStore(t)) })
	t.Run("ContextFieldsAreStoredAndHashed", func(t *testing.T) { t.Parallel(); testContextFields(t, newStore(t)) })
	t.Run("ListEveryFilterBothDirections", func(t *testing.T) { t.Parallel(); testListEveryFilter(t, newStore(t)) })
	t.Run("BatchAppendsChainInOrder", func(t *testing.T) { t.Parallel(); testBatch(t, newStore(t)) })
	t.Run("BatchKeysResolveAsIfSequential", func(t *testing.T) { t.Parallel(); testBatchKeys(t, newStore(t)) })
	t.Run("ConcurrentBatchesStayGapFree", func(t *testing.T) { t.Parallel(); testConcurrentBatches(t, newStore(t)) })
	t.Run("AppendAllIsAllOrNothing", func(t *testing.T) { t.Parallel(); testAppendAll(t, newStore(t)) })
	t.Run("ChainState", func(t *testing.T) { t.Parallel(); testChainState(t, newStore(t)) })
	t.Run("Checkpoints", func(t *testing.T) { t.Parallel(); testCheckpoints(t, newStore(t)) })
	t.Run("ConcurrentCheckpointsFollowTheChain", func(t *testing.T) { t.Parallel(); testConcurrentCheckpoints(t, newStore(t)) })
	t.Run("RetentionCutsAPrefixInBatches", func(t *testing.T) { t.Parallel(); testRetention(t, newStore(t)) })
	t.Run("RetentionKeepsTheHead", func(t *testing.T) { t.Parallel(); testRetentionKeepsTheHead(t, newStore(t)) })
	t.Run("RetentionDuringAppends", func(t *testing.T) { t.Parallel(); testRetentionDuringAppends(t, newStore(t)) })
	t.Run("VerifyWholeAndInRanges", func(t *testing.T) { t.Parallel(); testVerify(t, newStore(t)) })
	t.Run("VerifyDuringAppends", func(t *testing.T) { t.Parallel(); testVerifyDuringAppends(t, newStore(t)) })
	t.Run("VerifyAfterRetention", func(t *testing.T) { t.Parallel(); testVerifyAfterRetention(t, newStore(t)) })
}

// Writer is the principal of the events NewEvent makes.
const Writer = "apikey:test-writer"

// NewEvent returns an unsealed event as the server would build it.
func NewEvent(actor, action string, occur time.Time) *store.Event {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &store.Event{
		ID: uuid.Must(uuid.NewV7()).String(), OccurTime: occur.UTC().Truncate(time.Microsecond), RecordTime: now,
		Actor: actor, Action: action, Resource: "zoho/org-1", Outcome: 1, Metadata: `{"k":"v"}`, Principal: Writer,
	}
}

// VerifyChain checks that events (in sequence order from 1) link up and hash correctly, each with the
// hash version it records.
func VerifyChain(t *testing.T, events []*store.Event) {
	t.Helper()
	prev := chain.Genesis
	for i, e := range events {
		if e.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d", i, e.Sequence)
		}
		if !bytes.Equal(e.PreviousHash, prev) {
			t.Fatalf("event %d: previous hash does not match the hash before it", e.Sequence)
		}
		if !bytes.Equal(e.Hash, chain.Hash(prev, e.Fields())) {
			t.Fatalf("event %d: stored hash does not match its fields", e.Sequence)
		}
		prev = e.Hash
	}
}

func all(t *testing.T, s store.Store) []*store.Event {
	t.Helper()
	es, err := s.EventList(context.Background(), store.EventListParams{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func testAppendChains(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 5 {
		in := NewEvent("agent-1", fmt.Sprintf("a.%d", i), time.Now())
		got, dup, err := s.EventAppend(ctx, in)
		if err != nil || dup {
			t.Fatalf("append: %v dup=%v", err, dup)
		}
		if got.Sequence != int64(i+1) || len(got.Hash) != chain.Size {
			t.Fatalf("append %d: sequence %d hash %x", i, got.Sequence, got.Hash)
		}
	}
	VerifyChain(t, all(t, s))
}

func testGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := NewEvent("agent-1", "token.refresh", time.Now().Add(-time.Minute))
	in.IdempotencyKey = "k-1"
	stored, _, err := s.EventAppend(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.EventGet(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("got %+v\nwant %+v", got, stored)
	}
	if _, err := s.EventGet(ctx, uuid.NewString()); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("missing event: %v", err)
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := NewEvent("agent-1", "crm.deal.update", time.Now())
	first.IdempotencyKey = "retry-me"
	a, dup, err := s.EventAppend(ctx, first)
	if err != nil || dup {
		t.Fatalf("first: %v %v", err, dup)
	}
	again := NewEvent("agent-1", "crm.deal.update", time.Now())
	again.IdempotencyKey = "retry-me"
	b, dup, err := s.EventAppend(ctx, again)
	if err != nil || !dup {
		t.Fatalf("second: err %v, duplicate %v", err, dup)
	}
	if b.ID != a.ID || b.Sequence != a.Sequence {
		t.Fatalf("duplicate returned %s/%d, want %s/%d", b.ID, b.Sequence, a.ID, a.Sequence)
	}
	if n := len(all(t, s)); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for i := range 10 {
		e := NewEvent(fmt.Sprintf("agent-%d", i%2), "x", base.Add(time.Duration(i)*time.Minute))
		if i == 9 {
			e.Outcome = 3
		}
		if _, _, err := s.EventAppend(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(es []*store.Event) (out []int64) {
		for _, e := range es {
			out = append(out, e.Sequence)
		}
		return out
	}
	cases := []struct {
		name string
		p    store.EventListParams
		want []int64
	}{
		{"actor", store.EventListParams{Actor: "agent-1", Limit: 100}, []int64{2, 4, 6, 8, 10}},
		{"outcome", store.EventListParams{Outcome: 3, Limit: 100}, []int64{10}},
		{"time range", store.EventListParams{Start: base.Add(2 * time.Minute), End: base.Add(5 * time.Minute), Limit: 100}, []int64{3, 4, 5}},
		{"page after", store.EventListParams{After: 7, Limit: 2}, []int64{8, 9}},
		{"descending", store.EventListParams{Descending: true, Limit: 3}, []int64{10, 9, 8}},
		{"descending after", store.EventListParams{Descending: true, After: 3, Limit: 5}, []int64{2, 1}},
		{"no match", store.EventListParams{Action: "nothing", Limit: 5}, nil},
	}
	for _, c := range cases {
		got, err := s.EventList(ctx, c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(seqs(got), c.want) {
			t.Errorf("%s: got %v want %v", c.name, seqs(got), c.want)
		}
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errc := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e := NewEvent(fmt.Sprintf("w%d", w), "c", time.Now())
				if i%3 == 0 {
					// Several workers race on one key with one content: one stores, the others get it back.
					e.Actor, e.IdempotencyKey = "shared", fmt.Sprintf("shared-%d", i)
				}
				if _, _, err := s.EventAppend(ctx, e); err != nil {
					errc <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	es := all(t, s)
	// Keys shared-0, -3, -6, -9 are appended once each; the other 6 events of every worker all land.
	if want := workers*(each-4) + 4; len(es) != want {
		t.Fatalf("%d events, want %d", len(es), want)
	}
	VerifyChain(t, es)
}

// testKeysPerPrincipal: another writer reusing a key neither receives the first event nor keeps its own
// from being stored; the owner of the key still gets its duplicate.
func testKeysPerPrincipal(t *testing.T, s store.Store) {
	ctx := context.Background()
	victim := NewEvent("agent-1", "crm.deal.update", time.Now())
	victim.Principal, victim.IdempotencyKey, victim.Metadata = "apikey:victim", "predictable-1", `{"secret":"deal terms"}`
	// The attacker claims the key first, then the victim writes with it.
	claim := NewEvent("agent-x", "noise", time.Now())
	claim.Principal, claim.IdempotencyKey = "apikey:attacker", "predictable-1"
	if _, dup, err := s.EventAppend(ctx, claim); err != nil || dup {
		t.Fatalf("claim: %v dup=%v", err, dup)
	}
	v, dup, err := s.EventAppend(ctx, victim)
	if err != nil || dup || v.ID != victim.ID || v.Principal != "apikey:victim" {
		t.Fatalf("victim's event was not stored: %+v dup=%v err=%v", v, dup, err)
	}
	steal := NewEvent("agent-x", "noise", time.Now())
	steal.Principal, steal.IdempotencyKey = "apikey:attacker", "predictable-1"
	got, dup, err := s.EventAppend(ctx, steal)
	if err != nil || !dup || got.ID != claim.ID || got.Metadata == victim.Metadata {
		t.Fatalf("attacker's retry: %+v dup=%v err=%v, want its own first event", got, dup, err)
	}
	retry := NewEvent("agent-1", "crm.deal.update", time.Now())
	retry.Principal, retry.IdempotencyKey, retry.Metadata = "apikey:victim", "predictable-1", victim.Metadata
	if got, dup, err := s.EventAppend(ctx, retry); err != nil || !dup || got.ID != victim.ID {
		t.Fatalf("victim's retry: %+v dup=%v err=%v", got, dup, err)
	}
	if n := len(all(t, s)); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
}

func testPrincipal(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := NewEvent("agent-1", "tool.call", time.Now())
	in.Principal = "jwt:https://issuer.example#agent-1"
	stored, _, err := s.EventAppend(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.EventGet(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Principal != in.Principal || got.HashVersion != chain.Current || !reflect.DeepEqual(got, stored) {
		t.Fatalf("stored %+v, want principal %q at hash version %d", got, in.Principal, chain.Current)
	}
	forged := *got
	forged.Principal = "apikey:someone-else"
	if bytes.Equal(chain.Hash(got.PreviousHash, forged.Fields()), got.Hash) {
		t.Fatal("the hash does not cover the principal")
	}
	VerifyChain(t, all(t, s))
}

// testContextFields: actor type, session, request id and source service come back as stored, at hash
// version 3, and changing any of them (or moving the event to version 2, which does not hash them)
// breaks the hash.
func testContextFields(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := NewEvent("agent-1", "tool.call", time.Now())
	in.ActorType, in.SessionID, in.RequestID, in.SourceService = 1, "sess-42", "4bf92f3577b34da6a3ce929d0e0e4736", "sergas-token"
	stored, _, err := s.EventAppend(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.EventGet(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.HashVersion != chain.V3 || got.ActorType != 1 || got.SessionID != "sess-42" ||
		got.RequestID != in.RequestID || got.SourceService != "sergas-token" || !reflect.DeepEqual(got, stored) {
		t.Fatalf("stored %+v, want the context fields at hash version 3", got)
	}
	for name, change := range map[string]func(e *store.Event){
		"actor type":     func(e *store.Event) { e.ActorType = 2 },
		"session":        func(e *store.Event) { e.SessionID = "sess-43" },
		"request id":     func(e *store.Event) { e.RequestID = "other" },
		"source service": func(e *store.Event) { e.SourceService = "sergas-webhook" },
		"hash version":   func(e *store.Event) { e.HashVersion = chain.V2 },
	} {
		forged := *got
		change(&forged)
		if bytes.Equal(chain.Hash(got.PreviousHash, forged.Fields()), got.Hash) {
			t.Errorf("the hash does not cover the %s", name)
		}
	}
	VerifyChain(t, all(t, s))
}

// testListEveryFilter pages through each filter that ListEvents accepts, in both directions, two events
// at a time, and compares with the matching events picked out by hand.
func testListEveryFilter(t *testing.T, s store.Store) {
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var stored []*store.Event
	for i := range 12 {
		e := NewEvent(fmt.Sprintf("agent-%d", i%3), fmt.Sprintf("act.%d", i%2), base.Add(time.Duration(i)*time.Minute))
		e.Resource = fmt.Sprintf("res/%d", i%4)
		e.Outcome = int32(1 + i%3)
		e.ActorType, e.SessionID = int32(i%4), fmt.Sprintf("sess-%d", i%3)
		e.RequestID, e.SourceService = fmt.Sprintf("req-%d", i/2), fmt.Sprintf("svc-%d", i%2)
		got, _, err := s.EventAppend(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, got)
	}
	filters := map[string]struct {
		p     store.EventListParams
		match func(*store.Event) bool
	}{
		"actor":    {store.EventListParams{Actor: "agent-1"}, func(e *store.Event) bool { return e.Actor == "agent-1" }},
		"action":   {store.EventListParams{Action: "act.0"}, func(e *store.Event) bool { return e.Action == "act.0" }},
		"resource": {store.EventListParams{Resource: "res/2"}, func(e *store.Event) bool { return e.Resource == "res/2" }},
		"outcome":  {store.EventListParams{Outcome: 3}, func(e *store.Event) bool { return e.Outcome == 3 }},
		"time range": {store.EventListParams{Start: base.Add(3 * time.Minute), End: base.Add(9 * time.Minute)}, func(e *store.Event) bool {
			return !e.OccurTime.Before(base.Add(3*time.Minute)) && e.OccurTime.Before(base.Add(9*time.Minute))
		}},
		"actor and outcome": {store.EventListParams{Actor: "agent-0", Outcome: 1}, func(e *store.Event) bool { return e.Actor == "agent-0" && e.Outcome == 1 }},
		"actor type":        {store.EventListParams{ActorType: 2}, func(e *store.Event) bool { return e.ActorType == 2 }},
		"session":           {store.EventListParams{SessionID: "sess-1"}, func(e *store.Event) bool { return e.SessionID == "sess-1" }},
		"request id":        {store.EventListParams{RequestID: "req-3"}, func(e *store.Event) bool { return e.RequestID == "req-3" }},
		"source service":    {store.EventListParams{SourceService: "svc-1"}, func(e *store.Event) bool { return e.SourceService == "svc-1" }},
		"session and actor type": {store.EventListParams{SessionID: "sess-0", ActorType: 3}, func(e *store.Event) bool {
			return e.SessionID == "sess-0" && e.ActorType == 3
		}},
	}
	for name, f := range filters {
		for _, desc := range []bool{false, true} {
			var want, got []int64
			for _, e := range stored {
				if f.match(e) {
					want = append(want, e.Sequence)
				}
			}
			if desc {
				slices.Reverse(want)
			}
			p := f.p
			p.Descending, p.Limit = desc, 2
			for range len(stored) + 1 { // bounded: every page but the last holds two events
				page, err := s.EventList(ctx, p)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for _, e := range page {
					got = append(got, e.Sequence)
				}
				if len(page) < p.Limit {
					break
				}
				p.After = page[len(page)-1].Sequence
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s descending=%v: got %v want %v", name, desc, got, want)
			}
		}
	}
}
