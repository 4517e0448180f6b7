package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// testAppendAll: AppendAll stores a batch of 1,000 in one go, resolves keys as Append does (a repeat with
// the same content, inside the batch or from before, is a duplicate of the first), and when one key was
// used for other content stores nothing and names that event's index.
func testAppendAll(t *testing.T, s store.Store) {
	ctx := context.Background()
	stored := NewEvent("agent-1", "first", time.Now())
	stored.IdempotencyKey = "k-stored"
	if _, _, err := s.EventAppend(ctx, stored); err != nil {
		t.Fatal(err)
	}
	keyed := func(action, key string) *store.Event {
		e := NewEvent("agent-1", action, time.Now())
		e.IdempotencyKey = key
		return e
	}

	var es []*store.Event
	for range 997 {
		es = append(es, NewEvent("agent-2", "bulk", time.Now()))
	}
	es = append(es, keyed("first", "k-stored"), keyed("new", "k-new"), keyed("new", "k-new"))
	res, err := s.AppendAll(ctx, pending(es...))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:997] {
		if r.Err != nil || r.Duplicate || r.Event.Sequence != int64(i+2) {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if r := res[997]; !r.Duplicate || r.Event.ID != stored.ID {
		t.Errorf("retry of a stored key: %+v", r)
	}
	if r := res[998]; r.Duplicate || r.Event.Sequence != 999 {
		t.Errorf("new key: %+v", r)
	}
	if r := res[999]; !r.Duplicate || r.Event.ID != res[998].Event.ID {
		t.Errorf("repeat inside the batch: %+v", r)
	}
	if got := all(t, s); len(got) != 999 {
		t.Fatalf("%d events stored, want 999", len(got))
	}

	for name, bad := range map[string][]*store.Event{
		"a stored key":       {NewEvent("agent-3", "ok", time.Now()), keyed("changed", "k-stored")},
		"a key of the batch": {keyed("x", "k-b"), NewEvent("agent-3", "ok", time.Now()), keyed("y", "k-b")},
	} {
		_, err := s.AppendAll(ctx, pending(bad...))
		idx := "events[1]"
		if len(bad) == 3 {
			idx = "events[2]"
		}
		var de *errs.Error
		if !errors.Is(err, errs.ErrAlreadyExists) || !errors.As(err, &de) || !strings.Contains(de.Msg, idx) {
			t.Errorf("%s used for other content: %v, want AlreadyExists naming %s", name, err, idx)
		}
	}
	got := all(t, s)
	if len(got) != 999 {
		t.Fatalf("%d events stored after refused batches, want 999: a refused batch stored something", len(got))
	}
	VerifyChain(t, got)
	// The chain goes on from where it was.
	if res, err := s.AppendAll(ctx, pending(keyed("y", "k-b"))); err != nil || res[0].Event.Sequence != 1000 {
		t.Fatalf("after the refusals: %v %v", res, err)
	}
}
