package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
)

// FakeSign returns a sign function for CheckpointAppend that fills every field from the chain state
// without real cryptography (the store keeps what it is given; services/audit tests the signatures).
func FakeSign(kind int32, keyID string, at time.Time) func(store.ChainState) (*store.Checkpoint, error) {
	return func(st store.ChainState) (*store.Checkpoint, error) {
		text := fmt.Sprintf("test %d %x %d %x %s\n", st.HeadSeq, st.HeadHash, st.AnchorSeq, st.AnchorHash, keyID)
		return &store.Checkpoint{
			Sequence: st.HeadSeq, Hash: st.HeadHash, Time: at.UTC().Truncate(time.Microsecond), Kind: kind,
			AnchorSeq: st.AnchorSeq, AnchorHash: st.AnchorHash, KeyID: keyID,
			PublicKey: bytes.Repeat([]byte(keyID[:1]), 32), SignedText: text, Signature: bytes.Repeat([]byte{7}, 64),
		}, nil
	}
}

// testChainState: the empty log reads as sequence 0 and the genesis hash, with no anchor; after appends
// the head is the last event, read without a lock.
func testChainState(t *testing.T, s store.Store) {
	ctx := context.Background()
	st, err := s.ChainState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := store.ChainState{HeadSeq: 0, HeadHash: chain.Genesis, AnchorSeq: 0, AnchorHash: chain.Genesis}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("empty log: %+v, want %+v", st, want)
	}
	var last *store.Event
	for i := range 3 {
		if last, _, err = s.EventAppend(ctx, NewEvent("a", fmt.Sprintf("x.%d", i), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if st, err = s.ChainState(ctx); err != nil {
		t.Fatal(err)
	}
	want.HeadSeq, want.HeadHash = last.Sequence, last.Hash
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("after 3 appends: %+v, want %+v", st, want)
	}
}

// testCheckpoints: checkpoints sign the chain state read in their transaction, are numbered in order,
// read back exactly, listed newest or oldest first with paging and a sequence range; a failed sign
// stores nothing; a key is found by id.
func testCheckpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC)
	var cps []*store.Checkpoint
	for i := range 5 {
		if _, _, err := s.EventAppend(ctx, NewEvent("a", fmt.Sprintf("x.%d", i), time.Now())); err != nil {
			t.Fatal(err)
		}
		key := "aaaaaaaaaaaaaaaa"
		if i >= 3 {
			key = "bbbbbbbbbbbbbbbb" // a rotated key
		}
		c, err := s.CheckpointAppend(ctx, FakeSign(int32(1+i%3), key, at.Add(time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		if c.Sequence != int64(i+1) || (i > 0 && c.ID <= cps[i-1].ID) {
			t.Fatalf("checkpoint %d: id %d sequence %d", i, c.ID, c.Sequence)
		}
		if c.Time.Nanosecond()%1000 != 0 {
			t.Fatalf("time %v is finer than microseconds", c.Time)
		}
		cps = append(cps, c)
	}
	got, err := s.CheckpointGet(ctx, cps[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cps[2]) {
		t.Fatalf("get: %+v\nwant %+v", got, cps[2])
	}
	if _, err := s.CheckpointGet(ctx, cps[4].ID+100); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("missing checkpoint: %v", err)
	}
	ids := func(cs []*store.Checkpoint) (out []int64) {
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	id := func(i int) int64 { return cps[i].ID }
	cases := []struct {
		name string
		p    store.CheckpointListParams
		want []int64
	}{
		{"newest first", store.CheckpointListParams{Limit: 3}, []int64{id(4), id(3), id(2)}},
		{"before", store.CheckpointListParams{BeforeID: id(2), Limit: 3}, []int64{id(1), id(0)}},
		{"oldest first", store.CheckpointListParams{Ascending: true, Limit: 2}, []int64{id(0), id(1)}},
		{"after", store.CheckpointListParams{Ascending: true, AfterID: id(3), Limit: 10}, []int64{id(4)}},
		{"sequence range", store.CheckpointListParams{FromSeq: 2, ToSeq: 4, Ascending: true, Limit: 10}, []int64{id(1), id(2), id(3)}},
		{"range newest first", store.CheckpointListParams{FromSeq: 2, ToSeq: 4, Limit: 2}, []int64{id(3), id(2)}},
		{"empty range", store.CheckpointListParams{FromSeq: 6, ToSeq: 9, Limit: 10}, nil},
	}
	for _, c := range cases {
		got, err := s.CheckpointList(ctx, c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(ids(got), c.want) {
			t.Errorf("%s: got %v want %v", c.name, ids(got), c.want)
		}
	}
	full, err := s.CheckpointList(ctx, store.CheckpointListParams{Ascending: true, Limit: 10})
	if err != nil || !reflect.DeepEqual(full, cps) {
		t.Fatalf("list returns other checkpoints than were stored (%v)", err)
	}

	boom := errors.New("no key")
	if _, err := s.CheckpointAppend(ctx, func(store.ChainState) (*store.Checkpoint, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed sign: %v", err)
	}
	if after, _ := s.CheckpointList(ctx, store.CheckpointListParams{Limit: 10}); len(after) != 5 {
		t.Fatalf("%d checkpoints after a failed sign, want 5", len(after))
	}

	for _, k := range []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"} {
		pub, err := s.SigningKeyGet(ctx, k)
		if err != nil || !bytes.Equal(pub, bytes.Repeat([]byte(k[:1]), 32)) {
			t.Fatalf("key %s: %x %v", k, pub, err)
		}
	}
	if _, err := s.SigningKeyGet(ctx, "cccccccccccccccc"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
}

// testConcurrentCheckpoints: checkpoints signed while appends run get ids in the order of the heads
// they sign, each head a real event.
func testConcurrentCheckpoints(t *testing.T, s store.Store) {
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		for i := range 60 {
			if _, _, err := s.EventAppend(ctx, NewEvent("a", fmt.Sprintf("x.%d", i), time.Now())); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			for range 10 {
				if _, err := s.CheckpointAppend(ctx, FakeSign(1, "aaaaaaaaaaaaaaaa", time.Now())); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cps, err := s.CheckpointList(ctx, store.CheckpointListParams{Ascending: true, Limit: 100})
	if err != nil || len(cps) != 40 {
		t.Fatalf("%d checkpoints (%v), want 40", len(cps), err)
	}
	byseq := map[int64][]byte{0: chain.Genesis}
	for _, e := range all(t, s) {
		byseq[e.Sequence] = e.Hash
	}
	for i, c := range cps {
		if i > 0 && c.Sequence < cps[i-1].Sequence {
			t.Fatalf("checkpoint %d signs head %d after checkpoint %d signed %d", c.ID, c.Sequence, cps[i-1].ID, cps[i-1].Sequence)
		}
		if !bytes.Equal(byseq[c.Sequence], c.Hash) {
			t.Fatalf("checkpoint %d signs sequence %d with a hash the chain does not have", c.ID, c.Sequence)
		}
	}
}
