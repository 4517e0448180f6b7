package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
)

// appendRecordedAt appends one event whose record_time is at (the service's clock, as a test sets it).
func appendRecordedAt(t *testing.T, s store.Store, at time.Time) *store.Event {
	t.Helper()
	e := NewEvent("a", "x", at)
	e.RecordTime = at.UTC().Truncate(time.Microsecond)
	stored, _, err := s.EventAppend(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// testRetention: retention removes the prefix of events recorded before the cutoff in batches, moving
// the anchor to the last removed event, and stops at the first newer event (an older event after it
// stays); the remaining chain links to the anchor and appends go on from the head.
func testRetention(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC()
	old, cutoff := now.Add(-400*24*time.Hour), now.Add(-365*24*time.Hour)
	var es []*store.Event
	for range 7 {
		es = append(es, appendRecordedAt(t, s, old))
	}
	es = append(es, appendRecordedAt(t, s, now))                              // 8: new
	es = append(es, appendRecordedAt(t, s, old))                              // 9: old, but after a new one
	es = append(es, appendRecordedAt(t, s, now), appendRecordedAt(t, s, now)) // 10, 11

	cut, err := s.RetentionCut(ctx, cutoff, 3)
	if err != nil {
		t.Fatal(err)
	}
	if cut.From != 0 || cut.Through != 3 || cut.Removed != 3 || !cut.More || !bytes.Equal(cut.AnchorHash, es[2].Hash) {
		t.Fatalf("first batch: %+v", cut)
	}
	var cuts []store.Cut
	for range 10 { // bounded: each batch removes at least one event or ends the loop
		c, err := s.RetentionCut(ctx, cutoff, 3)
		if err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, c)
		if !c.More {
			break
		}
	}
	if len(cuts) != 2 || cuts[0].Through != 6 || cuts[1].Through != 7 || cuts[1].Removed != 1 || cuts[1].More {
		t.Fatalf("later batches: %+v", cuts)
	}
	if c, err := s.RetentionCut(ctx, cutoff, 3); err != nil || c.Removed != 0 || c.Through != 7 {
		t.Fatalf("nothing left to cut: %+v %v", c, err)
	}
	st, err := s.ChainState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.AnchorSeq != 7 || !bytes.Equal(st.AnchorHash, es[6].Hash) || st.HeadSeq != 11 || !bytes.Equal(st.HeadHash, es[10].Hash) {
		t.Fatalf("chain state after the cut: %+v", st)
	}
	rest := all(t, s)
	if len(rest) != 4 || rest[0].Sequence != 8 || !bytes.Equal(rest[0].PreviousHash, st.AnchorHash) {
		t.Fatalf("%d events remain from %d", len(rest), rest[0].Sequence)
	}
	if _, err := s.EventGet(ctx, es[0].ID); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("removed event: %v", err)
	}
	next := appendRecordedAt(t, s, now)
	if next.Sequence != 12 || !bytes.Equal(next.PreviousHash, es[10].Hash) {
		t.Fatalf("append after the cut: sequence %d", next.Sequence)
	}
}

// testRetentionKeepsTheHead: when every event is old, all but the head event go; an empty log and a
// log of one event have nothing to cut.
func testRetentionKeepsTheHead(t *testing.T, s store.Store) {
	ctx := context.Background()
	future := time.Now().Add(time.Hour)
	if c, err := s.RetentionCut(ctx, future, 100); err != nil || c.Removed != 0 {
		t.Fatalf("empty log: %+v %v", c, err)
	}
	first := appendRecordedAt(t, s, time.Now().Add(-time.Hour))
	if c, err := s.RetentionCut(ctx, future, 100); err != nil || c.Removed != 0 {
		t.Fatalf("one event: %+v %v", c, err)
	}
	for range 4 {
		appendRecordedAt(t, s, time.Now().Add(-time.Hour))
	}
	c, err := s.RetentionCut(ctx, future, 100)
	if err != nil || c.Removed != 4 || c.Through != 4 || c.More {
		t.Fatalf("all old: %+v %v", c, err)
	}
	rest := all(t, s)
	if len(rest) != 1 || rest[0].Sequence != 5 {
		t.Fatalf("%d events remain", len(rest))
	}
	st, _ := s.ChainState(ctx)
	if st.HeadSeq != 5 || st.AnchorSeq != 4 || bytes.Equal(st.AnchorHash, chain.Genesis) || first.Sequence != 1 {
		t.Fatalf("chain state: %+v", st)
	}
}

// Exec runs one statement directly on a backend's database, as someone with database access would; the
// statement is written with $N placeholders (rebound for SQLite by the caller).
type Exec func(ctx context.Context, query string, args ...any) error

// Guards checks a backend's append-only guards around retention with direct SQL on s's database: a
// plain DELETE of a retained event (or of all) and any UPDATE are refused; the anchor moves only
// forward, to a stored event's own hash, below the head; checkpoints are never changed or removed; a
// refused statement leaves everything as it was.
func Guards(t *testing.T, s store.Store, exec Exec, sqlite bool) {
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	var es []*store.Event
	for range 6 {
		es = append(es, appendRecordedAt(t, s, old))
	}
	if _, err := s.RetentionCut(ctx, time.Now().Add(-24*time.Hour), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckpointAppend(ctx, FakeSign(3, "aaaaaaaaaaaaaaaa", time.Now())); err != nil {
		t.Fatal(err)
	}
	run := func(q string, args ...any) error {
		if sqlite {
			q = sqlq.Rebind(q)
		}
		return exec(ctx, q, args...)
	}
	refused := []struct {
		name string
		q    string
		args []any
	}{
		{"delete a retained event", "DELETE FROM events WHERE sequence = $1", []any{int64(3)}},
		{"delete every event", "DELETE FROM events", nil},
		{"delete the head", "DELETE FROM events WHERE sequence = $1", []any{int64(6)}},
		{"update an event", "UPDATE events SET actor = 'forged' WHERE sequence = $1", []any{int64(4)}},
		{"anchor backward", "UPDATE chain_head SET anchor_sequence = $1, anchor_hash = $2 WHERE id = 1", []any{int64(1), es[0].Hash}},
		{"anchor to a wrong hash", "UPDATE chain_head SET anchor_sequence = $1, anchor_hash = $2 WHERE id = 1", []any{int64(4), es[2].Hash}},
		{"anchor onto the head", "UPDATE chain_head SET anchor_sequence = $1, anchor_hash = $2 WHERE id = 1", []any{int64(6), es[5].Hash}},
		{"anchor past the head", "UPDATE chain_head SET anchor_sequence = $1 WHERE id = 1", []any{int64(9)}},
		{"anchor in place", "UPDATE chain_head SET anchor_sequence = anchor_sequence WHERE id = 1", nil},
		{"update a checkpoint", "UPDATE checkpoints SET sequence = 1", nil},
		{"delete a checkpoint", "DELETE FROM checkpoints", nil},
	}
	if !sqlite {
		refused = append(refused, struct {
			name string
			q    string
			args []any
		}{"truncate events", "TRUNCATE events", nil}, struct {
			name string
			q    string
			args []any
		}{"truncate checkpoints", "TRUNCATE checkpoints", nil})
	}
	for _, r := range refused {
		if err := run(r.q, r.args...); err == nil {
			t.Errorf("%s: %q succeeded", r.name, r.q)
		}
	}
	st, err := s.ChainState(ctx)
	if err != nil || st.AnchorSeq != 2 || !bytes.Equal(st.AnchorHash, es[1].Hash) || st.HeadSeq != 6 {
		t.Fatalf("chain state after the refused statements: %+v %v", st, err)
	}
	rest := all(t, s)
	if len(rest) != 4 || rest[0].Sequence != 3 || rest[0].Actor != "a" {
		t.Fatalf("events after the refused statements: %d", len(rest))
	}
	if cps, _ := s.CheckpointList(ctx, store.CheckpointListParams{Limit: 10}); len(cps) != 1 || cps[0].AnchorSeq != 2 {
		t.Fatalf("checkpoints after the refused statements: %v", cps)
	}
	// What the guards let through is the retention path itself: the anchor forward to a stored event,
	// then the events at or below it.
	if err := run("UPDATE chain_head SET anchor_sequence = $1, anchor_hash = $2 WHERE id = 1", int64(3), es[2].Hash); err != nil {
		t.Fatalf("anchor forward: %v", err)
	}
	if err := run("DELETE FROM events WHERE sequence <= $1", int64(3)); err != nil {
		t.Fatalf("delete at the anchor: %v", err)
	}
	if err := run("DELETE FROM events WHERE sequence <= $1", int64(4)); err == nil {
		t.Fatal("a delete reaching above the anchor succeeded")
	}
	if n := len(all(t, s)); n != 3 {
		t.Fatalf("%d events remain, want 3", n)
	}
}

// testRetentionDuringAppends: retention batches and checkpoints interleave with concurrent appends
// without deadlock or error; afterwards every new event is stored once, the retained chain runs from the
// anchor to the head without a gap, and every checkpoint signs a state the chain was in.
func testRetentionDuringAppends(t *testing.T, s store.Store) {
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	for range 4 {
		ps := make([]store.Pending, 50)
		for i := range ps {
			e := NewEvent("old", "x", old)
			e.RecordTime = old.UTC().Truncate(time.Microsecond)
			ps[i] = store.Pending{Event: e}
		}
		if _, err := s.AppendAll(ctx, ps); err != nil {
			t.Fatal(err)
		}
	}
	const writers, each = 4, 25
	errc := make(chan error, writers+2)
	for range writers {
		go func() {
			for range each {
				if _, _, err := s.EventAppend(ctx, NewEvent("new", "x", time.Now())); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	go func() {
		for range 100 { // bounded: 200 old events in batches of 7
			c, err := s.RetentionCut(ctx, time.Now().Add(-24*time.Hour), 7)
			if err != nil {
				errc <- err
				return
			}
			if _, err := s.CheckpointAppend(ctx, FakeSign(3, "aaaaaaaaaaaaaaaa", time.Now())); err != nil {
				errc <- err
				return
			}
			if !c.More {
				break
			}
		}
		errc <- nil
	}()
	for range writers + 1 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.ChainState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es := all(t, s)
	prev, seq, newer := st.AnchorHash, st.AnchorSeq, 0
	for _, e := range es {
		if e.Sequence != seq+1 || !bytes.Equal(e.PreviousHash, prev) || !bytes.Equal(e.Hash, chain.Hash(prev, e.Fields())) {
			t.Fatalf("retained chain breaks at %d (anchor %d)", e.Sequence, st.AnchorSeq)
		}
		if e.Actor == "new" {
			newer++
		}
		prev, seq = e.Hash, e.Sequence
	}
	if seq != st.HeadSeq || newer != writers*each || st.AnchorSeq == 0 {
		t.Fatalf("head %d (chain ends at %d), %d new events of %d, anchor %d", st.HeadSeq, seq, newer, writers*each, st.AnchorSeq)
	}
	for _, c := range mustCheckpoints(t, s) {
		if c.AnchorSeq > c.Sequence || (c.Sequence > st.AnchorSeq && c.Sequence <= st.HeadSeq && !bytes.Equal(es[c.Sequence-st.AnchorSeq-1].Hash, c.Hash)) {
			t.Fatalf("checkpoint %d signs %d/%x, not a state of the chain", c.ID, c.Sequence, c.Hash)
		}
	}
}

func mustCheckpoints(t *testing.T, s store.Store) []*store.Checkpoint {
	t.Helper()
	cs, err := s.CheckpointList(context.Background(), store.CheckpointListParams{Ascending: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// GapStopsRetention: when an event is missing below the cut (someone deleted it with the guards
// dropped), retention fails with FAILED_PRECONDITION and removes nothing, so that the evidence stays for
// VerifyChain. dropGuard is the statement that drops the backend's delete guard.
func GapStopsRetention(t *testing.T, s store.Store, exec Exec, sqlite bool, dropGuard string) {
	ctx := context.Background()
	for range 6 {
		appendRecordedAt(t, s, time.Now().Add(-48*time.Hour))
	}
	q := "DELETE FROM events WHERE sequence = $1"
	if sqlite {
		q = sqlq.Rebind(q)
	}
	if err := exec(ctx, dropGuard); err != nil {
		t.Fatal(err)
	}
	if err := exec(ctx, q, int64(3)); err != nil {
		t.Fatal(err)
	}
	// cut runs one batch; refused says it must fail with FAILED_PRECONDITION, otherwise succeed.
	cut := func(batch int64, refused bool, what string) {
		t.Helper()
		_, err := s.RetentionCut(ctx, time.Now(), batch)
		if refused != (err != nil) || (refused && errs.KindOf(err) != errs.KindFailedPrecondition) {
			t.Fatalf("%s: %v", what, err)
		}
	}
	cut(10, true, "a batch over the gap")
	cut(2, false, "a batch below the gap") // events 1 and 2 are intact: they may go
	cut(1, true, "a batch ending at the gap")
	cut(10, true, "a batch starting at the gap")
	st, err := s.ChainState(ctx)
	if err != nil || st.AnchorSeq != 2 {
		t.Fatalf("anchor %d (%v), want 2: nothing past the gap may go", st.AnchorSeq, err)
	}
	if n := len(all(t, s)); n != 3 {
		t.Fatalf("%d events remain, want 3 (4, 5, 6)", n)
	}
}
