package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/store"
)

// TestRefusedAppendCommitsNothing: an insert the database refuses stops the whole append: nothing of the
// batch is stored, the head does not move, the caller gets the domain error, and the connection goes
// back to work (many refusals in a row do not use up the pool). It guards any change to how the append's
// statements travel (a pipelined INSERT, UPDATE and COMMIT was tried and measured no faster).
func TestRefusedAppendCommitsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := dbtest.Open(t, db.Postgres, "audit")
	log := New(h.Postgres)
	now := time.Now().UTC().Truncate(time.Microsecond)
	ev := func(id string) store.Pending {
		return store.Pending{Event: &store.Event{ID: id, OccurTime: now, RecordTime: now, Actor: "a", Action: "b", Outcome: 1,
			Metadata: "{}", Principal: "apikey:w"}}
	}
	id := func(i int) string { return fmt.Sprintf("0190b6d0-0000-7000-8000-%012d", i) }
	if _, err := log.Append(ctx, []store.Pending{ev(id(1)), ev(id(2)), ev(id(3))}); err != nil {
		t.Fatal(err)
	}
	for i := range 30 { // more than the pool's connections
		batch := []store.Pending{ev(id(100 + i)), ev(id(2)), ev(id(200 + i))} // id 2 is stored already
		if i%2 == 1 {
			batch = batch[1:2]
		}
		if _, err := log.Append(ctx, batch); errs.KindOf(err) != errs.KindAlreadyExists {
			t.Fatalf("append %d reusing a stored id: %v, want AlreadyExists", i, err)
		}
	}
	var seq int64
	if err := h.Postgres.Pool.QueryRow(ctx, `SELECT sequence FROM chain_head`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := h.Postgres.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if seq != 3 || stored != 3 {
		t.Fatalf("after refused appends: head %d, %d events stored; want 3 and 3", seq, stored)
	}
	res, err := log.Append(ctx, []store.Pending{ev(id(4))})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Event.Sequence != 4 {
		t.Fatalf("next append got sequence %d, want 4", res[0].Event.Sequence)
	}
}
