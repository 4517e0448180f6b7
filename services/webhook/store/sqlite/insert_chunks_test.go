package sqlite_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/sqlite"
)

// TestInsertBatchAcrossStatements: a batch larger than one statement's rows (500) is inserted by
// several prepared statements in one transaction, every event once, the seqs one consecutive run; the same
// batch again finds every event a duplicate with its seq, and batch sizes seen before reuse their
// statements without mixing up rows.
func TestInsertBatchAcrossStatements(t *testing.T) {
	ctx := context.Background()
	s := sqlite.New(dbtest.Open(t, db.SQLite, "webhook").SQLite)
	batch := func(n int, tag string) []*store.Event {
		es := make([]*store.Event, n)
		for i := range es {
			es[i] = &store.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "s", DedupeKey: fmt.Sprintf("%s-%d", tag, i),
				Status: store.StatusPending, ContentType: "application/json", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i)),
				ReceiveTime: time.Now().UTC().Truncate(time.Microsecond), SenderAddress: "127.0.0.1"}
		}
		return es
	}
	check := func(es []*store.Event, dup bool) []int64 {
		t.Helper()
		got, err := s.EventInsertBatch(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
		seqs := make([]int64, len(got))
		for i, in := range got {
			if in.Event == nil || in.Duplicate != dup || in.Event.DedupeKey != es[i].DedupeKey {
				t.Fatalf("event %d: %+v, want duplicate=%v of %s", i, in, dup, es[i].DedupeKey)
			}
			seqs[i] = in.Event.Seq
		}
		return seqs
	}
	big := batch(1203, "big")
	seqs := check(big, false)
	// Rows go in in (source, dedupe key) order (store.PlanBatch), so the seqs are one run of
	// consecutive numbers in that order, not in the batch's.
	sorted := slices.Sorted(slices.Values(seqs))
	for i := 1; i < len(sorted); i++ {
		if sorted[i] != sorted[i-1]+1 {
			t.Fatalf("seqs not one consecutive run: %d after %d", sorted[i], sorted[i-1])
		}
	}
	if again := check(big, true); !slices.Equal(again, seqs) {
		t.Fatal("duplicates answered with other seqs")
	}
	last := sorted[len(sorted)-1]
	for round := range 3 {
		got := slices.Sorted(slices.Values(check(batch(7, fmt.Sprint("small", round)), false)))
		if got[0] <= last || got[6] != got[0]+6 {
			t.Fatalf("round %d got seqs %v after %d: want a run of 7 after it", round, got, last)
		}
		last = got[6]
	}
}
