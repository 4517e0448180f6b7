package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/sergas/core/services/webhook/store"
)

// RunBacklog checks store.BacklogCounter; exec runs SQL on the store's database (to move events to
// statuses no RPC sets yet).
func RunBacklog(t *testing.T, newStore func(t *testing.T) (store.Store, func(q string))) {
	t.Run("BacklogCountsUndeliveredUpToTheLimit", func(t *testing.T) {
		t.Parallel()
		s, exec := newStore(t)
		b, ok := s.(store.BacklogCounter)
		if !ok {
			t.Fatal("store does not count its backlog")
		}
		ctx := context.Background()
		count := func(atMost int64) int64 {
			t.Helper()
			n, err := b.EventBacklog(ctx, atMost)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(10); n != 0 {
			t.Fatalf("empty store: %d", n)
		}
		WantEverything(t, s)
		for i := range 6 {
			if _, _, err := s.EventInsert(ctx, event("zoho", fmt.Sprint("b-", i), []byte("p"))); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(10); n != 6 {
			t.Fatalf("six pending: %d", n)
		}
		if n := count(4); n != 4 {
			t.Fatalf("counting stops at the limit: %d, want 4", n)
		}
		// Failed events are still to be delivered; processing, delivered and dead-lettered ones are not
		// waiting in the queue.
		exec(`UPDATE events SET status = 4 WHERE seq = 1`)
		exec(`UPDATE events SET status = 2 WHERE seq = 2`)
		exec(`UPDATE events SET status = 3 WHERE seq = 3`)
		exec(`UPDATE events SET status = 5 WHERE seq = 4`)
		if n := count(10); n != 3 {
			t.Fatalf("pending 2 + failed 1: %d", n)
		}
	})
}
