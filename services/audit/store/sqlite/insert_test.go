package sqlite

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit/store"
)

// TestInsertEveryBatchSize: batches of any size, written through the statements the driver prepares
// once, store every event exactly as given, and the driver still closes its database afterwards (SQLite
// refuses to close a connection that keeps prepared statements).
func TestInsertEveryBatchSize(t *testing.T) {
	ctx := context.Background()
	c := dbtest.Config(t, db.SQLite)
	h, err := db.Open(ctx, c, "audit", true)
	if err != nil {
		t.Fatal(err)
	}
	log := New(h.SQLite)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var want []store.Event
	for b, n := range []int{1, 7, 8, 9, 63, 64, 65, 137, 200} {
		var ps []store.Pending
		for i := range n {
			key := ""
			if i%2 == 0 {
				key = fmt.Sprintf("b%d-%d", b, i)
			}
			ps = append(ps, store.Pending{Event: &store.Event{ID: fmt.Sprintf("0190b6d0-%04d-7000-8000-%012d", b, i), OccurTime: now.Add(time.Duration(i) * time.Microsecond),
				RecordTime: now, Actor: fmt.Sprintf("agent-%d", i), Action: "act", Resource: fmt.Sprintf("r/%d", i), Outcome: int32(1 + i%3),
				Metadata: fmt.Sprintf(`{"i":%d}`, i), IdempotencyKey: key, Principal: "apikey:w", ActorType: int32(i % 4),
				SessionID: "s", RequestID: fmt.Sprintf("req-%d", i), SourceService: "svc"}})
		}
		res, err := log.Append(ctx, ps)
		if err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
		for _, r := range res {
			want = append(want, *r.Event)
		}
	}
	got, err := log.EventList(ctx, store.EventListParams{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events stored, %d appended", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(*got[i], want[i]) {
			t.Fatalf("event %d stored as\n%+v\nappended as\n%+v", i+1, *got[i], want[i])
		}
	}
	if err := log.Close(); err != nil {
		t.Fatalf("close after appends: %v", err)
	}
}
