package storetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sergas/core/services/audit/store"
)

// appendN appends n events in batches of up to 500.
func appendN(t *testing.T, s store.Store, n int) {
	t.Helper()
	for done := 0; done < n; {
		var es []*store.Event
		for i := 0; i < min(500, n-done); i++ {
			es = append(es, NewEvent("agent-1", fmt.Sprintf("a.%d", done+i), time.Now()))
		}
		if _, err := s.Append(context.Background(), pending(es...)); err != nil {
			t.Fatal(err)
		}
		done += len(es)
	}
}

// signHead stores a checkpoint of the current head, signed by key over a text of its fields.
func signHead(t *testing.T, s store.Store, key ed25519.PrivateKey) *store.Checkpoint {
	t.Helper()
	c, err := sign(s, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sign(s store.Store, key ed25519.PrivateKey) (*store.Checkpoint, error) {
	return s.CheckpointAppend(context.Background(), func(st store.ChainState) (*store.Checkpoint, error) {
		c := &store.Checkpoint{Sequence: st.HeadSeq, Hash: st.HeadHash, Time: time.Now().UTC().Truncate(time.Microsecond), Kind: 2,
			AnchorSeq: st.AnchorSeq, AnchorHash: st.AnchorHash, KeyID: "test", PublicKey: key.Public().(ed25519.PublicKey)}
		c.SignedText = fmt.Sprintf("%d %x %d %x", c.Sequence, c.Hash, c.AnchorSeq, c.AnchorHash)
		c.Signature = ed25519.Sign(key, []byte(c.SignedText))
		return c, nil
	})
}

func verifyOK(t *testing.T, s store.Store, p store.VerifyParams) *store.Verification {
	t.Helper()
	v, err := store.Verify(context.Background(), s, p)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Valid {
		t.Fatalf("%+v does not verify: %s", p, v.Detail)
	}
	return v
}

// testVerify: an untouched log verifies whole and in sub-ranges, in pages of any size, with the
// checkpoints of each range compared (several at one sequence too, paged by id).
func testVerify(t *testing.T, s store.Store) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if v := verifyOK(t, s, store.VerifyParams{}); v.Start != 1 || v.End != 0 || v.EventsChecked != 0 || v.HeadSeq != 0 {
		t.Fatalf("empty log: %+v", v)
	}
	appendN(t, s, 10)
	signHead(t, s, key)
	signHead(t, s, key) // nothing appended between: two checkpoints at 10
	appendN(t, s, 1190)
	signHead(t, s, key)
	appendN(t, s, 300)
	for _, c := range []struct {
		p                   store.VerifyParams
		events, checkpoints int64
	}{
		{store.VerifyParams{}, 1500, 3},
		{store.VerifyParams{PageSize: 1}, 1500, 3},
		{store.VerifyParams{PageSize: 7}, 1500, 3},
		{store.VerifyParams{Start: 10, End: 10, PageSize: 1}, 1, 2},
		{store.VerifyParams{Start: 11, End: 1199}, 1189, 0},
		{store.VerifyParams{Start: 1000, End: 1200}, 201, 1},
		{store.VerifyParams{Start: 1400, End: 5000}, 101, 0},
	} {
		v := verifyOK(t, s, c.p)
		if v.EventsChecked != c.events || v.CheckpointsChecked != c.checkpoints || v.HeadSeq != 1500 {
			t.Errorf("%+v: %+v", c.p, v)
		}
	}
}

// testVerifyDuringAppends: verification that runs while events are appended and checkpoints signed
// finds nothing wrong: what was appended after it read the head is neither inserted nor cut. The
// appender keeps going until several verifications have finished, so that they overlap.
func testVerifyDuringAppends(t *testing.T, s store.Store) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 50)
	var verified, appended, signed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 5000 && verified.Load() < 5; i++ {
			if _, _, err := s.EventAppend(context.Background(), NewEvent("agent-2", "during", time.Now())); err != nil {
				t.Error(err)
				return
			}
			appended.Add(1)
			if i%10 == 0 {
				if _, err := sign(s, key); err != nil {
					t.Error(err)
					return
				}
				signed.Add(1)
			}
		}
	}()
	overlapped := 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		v, err := store.Verify(context.Background(), s, store.VerifyParams{PageSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		if !v.Valid {
			t.Fatalf("verification %d during appends: %+v", verified.Load(), v)
		}
		if !finished {
			overlapped++
		}
		verified.Add(1)
	}
	if overlapped < 5 {
		t.Fatalf("only %d verifications ran during the appends", overlapped)
	}
	if v := verifyOK(t, s, store.VerifyParams{}); v.EventsChecked != 50+appended.Load() || v.CheckpointsChecked != signed.Load() {
		t.Fatalf("after: %+v (appended %d, signed %d)", v, appended.Load(), signed.Load())
	}
}

// testVerifyAfterRetention: once retention removed a prefix and signed its anchor, the rest verifies
// from the anchor, and a range starting below it starts at it. Until the anchor is signed, the removal
// is reported (MISSING from the first removed event).
func testVerifyAfterRetention(t *testing.T, s store.Store) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 30)
	signHead(t, s, key)
	cut, err := s.RetentionCut(context.Background(), time.Now().Add(time.Hour), 10)
	if err != nil || cut.Through != 10 {
		t.Fatalf("cut: %+v %v", cut, err)
	}
	v, err := store.Verify(context.Background(), s, store.VerifyParams{})
	if err != nil || v.Valid || v.FirstBad != 1 || v.Problem != store.ProblemMissing {
		t.Fatalf("before the anchor is signed: %+v %v", v, err)
	}
	signHead(t, s, key)
	v = verifyOK(t, s, store.VerifyParams{})
	if v.Start != 11 || v.EventsChecked != 20 || v.AnchorSeq != 10 || string(v.AnchorHash) != string(cut.AnchorHash) {
		t.Fatalf("%+v", v)
	}
	if v := verifyOK(t, s, store.VerifyParams{Start: 3, End: 12}); v.Start != 11 || v.EventsChecked != 2 || !strings.Contains(v.Detail, "retention") {
		t.Fatalf("%+v", v)
	}
}
