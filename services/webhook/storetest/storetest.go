// Package storetest is the webhook store's conformance suite. Every backend's tests call Run, so that
// SQLite and PostgreSQL behave the same.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// Run runs the suite; newStore returns an empty, migrated store for one subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("InsertGetExactBytes", func(t *testing.T) { t.Parallel(); testInsertGet(t, newStore(t)) })
	t.Run("Dedupe", func(t *testing.T) { t.Parallel(); testDedupe(t, newStore(t)) })
	t.Run("ConcurrentDuplicatesStoreOnce", func(t *testing.T) { t.Parallel(); testConcurrentDedupe(t, newStore(t)) })
	t.Run("ListFiltersAndPages", func(t *testing.T) { t.Parallel(); testList(t, newStore(t)) })
	t.Run("ListEveryFilterShape", func(t *testing.T) { t.Parallel(); testListShapes(t, newStore(t)) })
	t.Run("NormalisedRoundTrip", func(t *testing.T) { t.Parallel(); testNormalised(t, newStore(t)) })
}

// ListShapes are the filter combinations ListEvents accepts, each on a later page (After set). The
// backends' query-plan tests check that every one is served by an index in seq order.
var ListShapes = map[string]store.EventListParams{
	"none":             {After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
	"source":           {Source: "zoho", After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
	"status":           {Status: store.StatusPending, After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
	"source+status":    {Source: "zoho", Status: store.StatusPending, After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
	"module":           {Module: "Deals", After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
	"module+operation": {Module: "Deals", Operation: "update", After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
	"operation":        {Operation: "update", After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
	"event_type":       {EventType: "invoice.paid", After: store.Cursor{Tx: 1, Seq: 1}, Limit: 10},
}

// Fill stores n events spread over three sources, for tests that need a table worth planning for.
func Fill(t testing.TB, s store.Store, n int) {
	t.Helper()
	for i := range n {
		src := []string{"zoho", "github", "stripe"}[i%3]
		e := event(src, fmt.Sprint("fill-", i), []byte("p"))
		switch src {
		case "zoho": // Zoho notifications carry a module and an operation, the others an event type
			e.Module, e.Operation = []string{"Deals", "Leads"}[i/3%2], []string{"insert", "update", "delete"}[i/6%3]
			e.RecordIDs, e.AffectedFields, e.ServerTime = []string{fmt.Sprint(4150868000000 + i)}, []string{"Stage"}, e.ReceiveTime
		default:
			e.EventType = []string{"invoice.paid", "push", "charge.failed"}[i/3%3]
		}
		if _, _, err := s.EventInsert(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func event(source, key string, payload []byte) *store.Event {
	return &store.Event{
		ID: uuid.Must(uuid.NewV7()).String(), Source: source, DedupeKey: key, Status: store.StatusPending,
		ContentType: "application/json", Payload: payload,
		Headers:     []store.Header{{Name: "Content-Type", Values: []string{"application/json"}}, {Name: "X-Multi", Values: []string{"a", "b"}}},
		ReceiveTime: time.Now().UTC().Truncate(time.Microsecond), SenderAddress: "2001:db8::7",
	}
}

func testInsertGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Bytes that are not valid UTF-8 or JSON must come back exactly: signatures are over raw bytes.
	payload := []byte{'{', 0x00, 0xff, 0xfe, '"', '\n', '}'}
	in := event("zoho", "k1", payload)
	stored, dup, err := s.EventInsert(ctx, in)
	if err != nil || dup || stored.Seq <= 0 {
		t.Fatalf("insert: %v dup=%v seq=%d", err, dup, stored.Seq)
	}
	got, err := s.EventGet(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("got %+v\nwant %+v", got, stored)
	}
	empty := event("zoho", "k2", []byte{})
	empty.Headers = []store.Header{}
	if _, _, err := s.EventInsert(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if got, err := s.EventGet(ctx, empty.ID); err != nil || len(got.Payload) != 0 || got.Payload == nil {
		t.Fatalf("empty payload: %v %#v", err, got)
	}
	if _, err := s.EventGet(ctx, uuid.NewString()); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func testDedupe(t *testing.T, s store.Store) {
	ctx := context.Background()
	first, _, err := s.EventInsert(ctx, event("zoho", "same", []byte(`{"a":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	again, dup, err := s.EventInsert(ctx, event("zoho", "same", []byte(`{"a":1}`)))
	if err != nil || !dup || again.ID != first.ID {
		t.Fatalf("duplicate: err %v dup %v id %s want %s", err, dup, again.ID, first.ID)
	}
	// The same key from another source is a different delivery.
	if _, dup, err := s.EventInsert(ctx, event("other", "same", nil)); err != nil || dup {
		t.Fatalf("other source: %v dup=%v", err, dup)
	}
}

func testConcurrentDedupe(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 16
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, _, err := s.EventInsert(ctx, event("zoho", "race", []byte("x")))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = e.ID
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent duplicates stored twice: %v", ids)
		}
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	WantEverything(t, s)
	var want []string
	for i := range 7 {
		src := "zoho"
		if i%3 == 2 {
			src = "other"
		}
		e, _, err := s.EventInsert(ctx, event(src, fmt.Sprint(i), []byte("p")))
		if err != nil {
			t.Fatal(err)
		}
		if src == "zoho" {
			want = append(want, e.ID)
		}
	}
	var got []string
	p := store.EventListParams{Source: "zoho", Status: store.StatusPending, Limit: 2}
	for pages := 0; pages < 10; pages++ {
		page, err := s.EventList(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			if e.Payload != nil || e.Headers != nil {
				t.Fatal("list loaded payload or headers")
			}
			got = append(got, e.ID)
		}
		if len(page) < p.Limit {
			break
		}
		p.After = page[len(page)-1].Cursor()
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("listed %v\nwant %v", got, want)
	}
	none, err := s.EventList(ctx, store.EventListParams{Status: store.StatusDelivered, Limit: 10})
	if err != nil || len(none) != 0 {
		t.Fatalf("status filter: %v %d", err, len(none))
	}
}

// testListShapes pages through every filter shape and checks each page against a filter applied here.
func testListShapes(t *testing.T, s store.Store) {
	ctx := context.Background()
	WantEverything(t, s)
	Fill(t, s, 36)
	all, err := s.EventList(ctx, store.EventListParams{Limit: 100})
	if err != nil || len(all) != 36 {
		t.Fatalf("list all: %d %v", len(all), err)
	}
	for name, shape := range ListShapes {
		var want, got []string
		for _, e := range all {
			if (shape.Source == "" || e.Source == shape.Source) && (shape.Status == 0 || e.Status == shape.Status) &&
				(shape.Module == "" || e.Module == shape.Module) && (shape.Operation == "" || e.Operation == shape.Operation) &&
				(shape.EventType == "" || e.EventType == shape.EventType) {
				want = append(want, e.ID)
			}
		}
		p := shape
		p.After, p.Limit = store.Cursor{}, 3
		for pages := 0; pages < 20; pages++ {
			page, err := s.EventList(ctx, p)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, e := range page {
				if e.SenderAddress != "2001:db8::7" {
					t.Fatalf("%s: sender address %q", name, e.SenderAddress)
				}
				got = append(got, e.ID)
			}
			if len(page) < p.Limit {
				break
			}
			p.After = page[len(page)-1].Cursor()
		}
		if !reflect.DeepEqual(got, want) || len(want) == 0 {
			t.Errorf("%s: listed %v\nwant %v", name, got, want)
		}
	}
}
