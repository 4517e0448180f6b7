package store_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
)

// memLog is a ChainReader over slices, so that each kind of tampering can be made exactly.
type memLog struct {
	// mu makes reads safe from two goroutines (verification reads a page ahead).
	mu     sync.Mutex
	events []*store.Event
	state  store.ChainState
	cps    []*store.Checkpoint
	// failAfter, when set, fails every read of events after that sequence.
	failAfter int64
	// states, when set, answers ChainState calls in turn (the last one from then on).
	states []store.ChainState
	calls  int
}

func (m *memLog) sort() {
	slices.SortFunc(m.events, func(a, b *store.Event) int { return int(a.Sequence - b.Sequence) })
}

func (m *memLog) EventList(ctx context.Context, p store.EventListParams) ([]*store.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.failAfter > 0 && p.After >= m.failAfter {
		return nil, errReadFailed
	}
	if p.Actor != "" || p.Limit <= 0 || !p.Start.IsZero() {
		return nil, errors.New("verification must page the whole log")
	}
	m.sort()
	var out []*store.Event
	if p.Descending {
		for i := len(m.events) - 1; i >= 0 && len(out) < p.Limit; i-- {
			if p.After == 0 || m.events[i].Sequence < p.After {
				out = append(out, m.events[i])
			}
		}
		return out, nil
	}
	for _, e := range m.events {
		if e.Sequence > p.After && len(out) < p.Limit {
			c := *e
			out = append(out, &c)
		}
	}
	return out, nil
}

func (m *memLog) ChainState(context.Context) (store.ChainState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.states) > 0 {
		s := m.states[min(m.calls, len(m.states)-1)]
		m.calls++
		return s, nil
	}
	return m.state, nil
}

func (m *memLog) CheckpointList(_ context.Context, p store.CheckpointListParams) ([]*store.Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := slices.Clone(m.cps)
	slices.SortFunc(cs, func(a, b *store.Checkpoint) int { return int(a.ID - b.ID) })
	if !p.Ascending {
		slices.Reverse(cs)
	}
	var out []*store.Checkpoint
	for _, c := range cs {
		if (p.ToSeq > 0 && (c.Sequence < p.FromSeq || c.Sequence > p.ToSeq)) ||
			(p.AfterID > 0 && c.ID <= p.AfterID) || (p.BeforeID > 0 && c.ID >= p.BeforeID) || len(out) == p.Limit {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

func newEvent(i int) *store.Event {
	t := time.Date(2026, 11, 26, 9, 0, i, 0, time.UTC)
	return &store.Event{ID: fmt.Sprintf("00000000-0000-7000-8000-%012d", i), OccurTime: t, RecordTime: t,
		Actor: "agent-1", Action: fmt.Sprintf("a.%d", i), Resource: "r", Outcome: 1, Metadata: `{}`, Principal: "p"}
}

// chainOf returns a log of n chained events.
func chainOf(n int) *memLog {
	m := &memLog{state: store.ChainState{HeadHash: chain.Genesis, AnchorHash: chain.Genesis}}
	for i := 1; i <= n; i++ {
		e := newEvent(i)
		e.Seal(m.state.HeadSeq, m.state.HeadHash)
		m.events = append(m.events, e)
		m.state.HeadSeq, m.state.HeadHash = e.Sequence, e.Hash
	}
	return m
}

func (m *memLog) at(seq int64) *store.Event {
	for _, e := range m.events {
		if e.Sequence == seq {
			return e
		}
	}
	panic(fmt.Sprintf("no event %d", seq))
}

func (m *memLog) remove(seq int64) {
	m.events = slices.DeleteFunc(m.events, func(e *store.Event) bool { return e.Sequence == seq })
}

// forged returns a chain-correct event at seq linking to prev.
func forged(seq int64, prev []byte) *store.Event {
	e := newEvent(1000 + int(seq))
	e.Actor = "intruder"
	e.Seal(seq-1, prev)
	return e
}

// rehash recomputes e's hash over its stored fields and previous_hash.
func rehash(e *store.Event) { e.Hash = chain.Hash(e.PreviousHash, e.Fields()) }

var testKey = func() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func signedText(c *store.Checkpoint) string {
	return fmt.Sprintf("seq %d\nhash %x\nanchor %d %x\n", c.Sequence, c.Hash, c.AnchorSeq, c.AnchorHash)
}

// checkCheckpoint stands for the service's check: its own key, over the text of the fields.
func checkCheckpoint(c *store.Checkpoint) error {
	switch {
	case c.KeyID != "k1" || !ed25519.PublicKey(c.PublicKey).Equal(testKey.Public()):
		return errors.New("not the service's key")
	case c.SignedText != signedText(c):
		return errors.New("the signed text does not hold the checkpoint's fields")
	case !ed25519.Verify(c.PublicKey, []byte(c.SignedText), c.Signature):
		return errors.New("the signature does not verify")
	}
	return nil
}

// checkpoint signs the stored hash of event seq.
func (m *memLog) checkpoint(seq int64) *store.Checkpoint {
	c := &store.Checkpoint{ID: int64(len(m.cps) + 1), Sequence: seq, Hash: m.at(seq).Hash, AnchorSeq: m.state.AnchorSeq,
		AnchorHash: m.state.AnchorHash, KeyID: "k1", PublicKey: testKey.Public().(ed25519.PublicKey)}
	c.SignedText = signedText(c)
	c.Signature = ed25519.Sign(testKey, []byte(c.SignedText))
	m.cps = append(m.cps, c)
	return c
}

// TestVerifyNamesTheFirstBreak: one case per kind of tampering, each at a sequence inside a page and at
// a page's edge, with several page sizes: Verify names exactly the sequence and the kind.
func TestVerifyNamesTheFirstBreak(t *testing.T) {
	const n = 20
	type tc struct {
		name   string
		tamper func(m *memLog, k int64)
		p      store.VerifyParams
		// want returns the sequence and problem expected for tampering at k (problem 0: valid).
		want func(k int64) (int64, store.Problem)
	}
	at := func(p store.Problem) func(int64) (int64, store.Problem) {
		return func(k int64) (int64, store.Problem) { return k, p }
	}
	cases := []tc{
		{"untouched", func(*memLog, int64) {}, store.VerifyParams{}, func(int64) (int64, store.Problem) { return 0, store.ProblemNone }},
		{"field changed", func(m *memLog, k int64) { m.at(k).Actor = "someone-else" }, store.VerifyParams{}, at(store.ProblemChanged)},
		{"metadata changed", func(m *memLog, k int64) { m.at(k).Metadata = `{"x":1}` }, store.VerifyParams{}, at(store.ProblemChanged)},
		{"hash version changed", func(m *memLog, k int64) { m.at(k).HashVersion = chain.V2 }, store.VerifyParams{}, at(store.ProblemChanged)},
		{"stored hash changed", func(m *memLog, k int64) { m.at(k).Hash = make([]byte, 32) }, store.VerifyParams{}, at(store.ProblemChanged)},
		{"changed and re-hashed", func(m *memLog, k int64) { e := m.at(k); e.Actor = "x"; rehash(e) }, store.VerifyParams{}, at(store.ProblemChanged)},
		{"previous hash re-pointed and re-hashed", func(m *memLog, k int64) {
			e := m.at(k)
			e.PreviousHash = make([]byte, 32)
			rehash(e)
		}, store.VerifyParams{}, func(k int64) (int64, store.Problem) {
			switch k {
			case 1:
				return 0, store.ProblemNone // linking the first event to zeroes is linking it to genesis
			case 2:
				return 1, store.ProblemInserted // event 2 now claims to be the first: 1 sits before it
			}
			return k - 1, store.ProblemChanged
		}},
		{"deleted", func(m *memLog, k int64) { m.remove(k) }, store.VerifyParams{}, at(store.ProblemMissing)},
		{"deleted and renumbered down", func(m *memLog, k int64) {
			m.remove(k)
			for _, e := range m.events {
				if e.Sequence > k {
					e.Sequence--
				}
			}
			m.state.HeadSeq-- // the head hash is still the last event's
		}, store.VerifyParams{}, func(k int64) (int64, store.Problem) {
			if k == n {
				return n - 1, store.ProblemChanged // nothing renumbered: the head's hash is no longer its event's
			}
			return k, store.ProblemMissing
		}},
		{"forged event inserted, later ones renumbered up", func(m *memLog, k int64) {
			for _, e := range m.events {
				if e.Sequence >= k {
					e.Sequence++
				}
			}
			prev := chain.Genesis
			if k > 1 {
				prev = m.at(k - 1).Hash
			}
			m.events = append(m.events, forged(k, prev))
		}, store.VerifyParams{}, func(k int64) (int64, store.Problem) {
			return k, store.ProblemInserted
		}},
		{"forged event inserted, the next re-hashed at its new place", func(m *memLog, k int64) {
			for _, e := range m.events {
				if e.Sequence >= k {
					e.Sequence++
				}
			}
			prev := chain.Genesis
			if k > 1 {
				prev = m.at(k - 1).Hash
			}
			m.events = append(m.events, forged(k, prev))
			rehash(m.at(k + 1))
		}, store.VerifyParams{}, func(k int64) (int64, store.Problem) {
			if k == n {
				return n, store.ProblemChanged // the head's event was re-hashed beyond it: nothing holds the head's hash
			}
			return k, store.ProblemInserted
		}},
		{"forged event beyond the head", func(m *memLog, _ int64) {
			m.events = append(m.events, forged(n+1, m.at(n).Hash))
		}, store.VerifyParams{}, func(int64) (int64, store.Problem) { return n + 1, store.ProblemInserted }},
		{"two neighbours swapped", func(m *memLog, k int64) {
			a, b := m.at(k), m.at(k%n+1)
			a.Sequence, b.Sequence = b.Sequence, a.Sequence
		}, store.VerifyParams{}, func(k int64) (int64, store.Problem) { return min(k, k%n+1), store.ProblemOutOfOrder }},
		{"two events 5 apart swapped", func(m *memLog, k int64) {
			o := (k+4)%n + 1
			a, b := m.at(k), m.at(o)
			a.Sequence, b.Sequence = b.Sequence, a.Sequence
		}, store.VerifyParams{}, func(k int64) (int64, store.Problem) { return min(k, (k+4)%n+1), store.ProblemOutOfOrder }},
		{"tail cut, head left", func(m *memLog, k int64) {
			for s := k; s <= n; s++ {
				m.remove(s)
			}
		}, store.VerifyParams{}, at(store.ProblemMissing)},
		{"head hash changed", func(m *memLog, _ int64) { m.state.HeadHash = make([]byte, 32) }, store.VerifyParams{},
			func(int64) (int64, store.Problem) { return n, store.ProblemChanged }},
		{"rewritten from k to the end, head moved, checkpoint at the end", func(m *memLog, k int64) {
			m.checkpoint(n)
			rewriteFrom(m, k)
		}, store.VerifyParams{}, func(int64) (int64, store.Problem) { return n, store.ProblemCheckpointMismatch }},
		{"rewritten from k to the end, head moved, checkpoints at k and the end", func(m *memLog, k int64) {
			m.checkpoint(n)
			m.checkpoint(k)
			rewriteFrom(m, k)
		}, store.VerifyParams{}, at(store.ProblemCheckpointMismatch)},
		{"tail cut and head moved back under a checkpoint", func(m *memLog, k int64) {
			m.checkpoint(n)
			truncate(m, k)
		}, store.VerifyParams{}, at(store.ProblemMissing)},
		{"checkpoint signature broken", func(m *memLog, k int64) { m.checkpoint(k).Signature[0] ^= 1 }, store.VerifyParams{}, at(store.ProblemCheckpointMismatch)},
		{"checkpoint re-signed by another key", func(m *memLog, k int64) {
			c := m.checkpoint(k)
			pub, priv, _ := ed25519.GenerateKey(rand.Reader)
			c.PublicKey, c.Signature = pub, ed25519.Sign(priv, []byte(c.SignedText))
		}, store.VerifyParams{CheckCheckpoint: checkCheckpoint}, at(store.ProblemCheckpointMismatch)},
		{"checkpoint hash changed under its signature", func(m *memLog, k int64) {
			c := m.checkpoint(k)
			rewriteFrom(m, k)
			c.Hash = m.at(k).Hash // the column agrees with the rewritten chain; the signed text does not
		}, store.VerifyParams{CheckCheckpoint: checkCheckpoint}, at(store.ProblemCheckpointMismatch)},
		{"checkpoint text re-signed with the service's key but other fields", func(m *memLog, k int64) {
			c := m.checkpoint(k)
			c.SignedText = strings.Replace(c.SignedText, "seq", "Seq", 1)
			c.Signature = ed25519.Sign(testKey, []byte(c.SignedText))
		}, store.VerifyParams{CheckCheckpoint: checkCheckpoint}, at(store.ProblemCheckpointMismatch)},
		{"forged checkpoint beyond the head", func(m *memLog, _ int64) {
			c := m.checkpoint(n)
			c.Sequence, c.Signature = n+3, make([]byte, 64)
		}, store.VerifyParams{}, func(int64) (int64, store.Problem) { return n + 3, store.ProblemCheckpointMismatch }},
		{"change before a mismatching checkpoint", func(m *memLog, k int64) {
			m.checkpoint(n).Signature[0] ^= 1
			m.at(k).Actor = "x"
		}, store.VerifyParams{}, at(store.ProblemChanged)},
	}
	for _, page := range []int{1, 3, 1000} {
		for _, c := range cases {
			for _, k := range []int64{1, 2, 3, 7, n - 1, n} {
				t.Run(fmt.Sprintf("%s/k=%d/page=%d", c.name, k, page), func(t *testing.T) {
					m := chainOf(n)
					c.tamper(m, k)
					p := c.p
					p.PageSize = page
					v, err := store.Verify(context.Background(), m, p)
					if err != nil {
						t.Fatal(err)
					}
					seq, problem := c.want(k)
					if v.FirstBad != seq || v.Problem != problem || v.Valid != (problem == store.ProblemNone) {
						t.Fatalf("got %d %v valid=%v (%s), want %d %v", v.FirstBad, v.Problem, v.Valid, v.Detail, seq, problem)
					}
				})
			}
		}
	}
}

// rewriteFrom changes event k and re-seals it and every later event, moving the head, as an attacker
// who knows the encoding would.
func rewriteFrom(m *memLog, k int64) {
	m.sort()
	prev := chain.Genesis
	for _, e := range m.events {
		if e.Sequence == k {
			e.Actor = "rewritten"
		}
		if e.Sequence >= k {
			e.PreviousHash = prev
			rehash(e)
		}
		prev = e.Hash
	}
	m.state.HeadHash = prev
}

// truncate removes events from k on and moves the head back to k-1.
func truncate(m *memLog, k int64) {
	for s := k; s <= m.state.HeadSeq; s++ {
		m.remove(s)
	}
	m.state.HeadSeq, m.state.HeadHash = k-1, chain.Genesis
	if k > 1 {
		m.state.HeadHash = m.at(k - 1).Hash
	}
}

// TestVerifyRanges: the range's bounds, defaults, clipping and refusals.
func TestVerifyRanges(t *testing.T) {
	ctx := context.Background()
	m := chainOf(20)
	m.checkpoint(10)
	m.checkpoint(15)
	for _, c := range []struct {
		start, end, wantStart, wantEnd, events, checkpoints int64
		detail                                              string
	}{
		{0, 0, 1, 20, 20, 2, "Events 1 to 20 and 2 checkpoints verify."},
		{5, 12, 5, 12, 8, 1, "Events 5 to 12 and 1 checkpoint verify."},
		{11, 14, 11, 14, 4, 0, ""},
		{20, 20, 20, 20, 1, 0, ""},
		{5, 0, 5, 20, 16, 2, ""},
		{5, 99, 5, 20, 16, 2, "The range ends at the chain head 20 (end_sequence is beyond it); events 5 to 20 and 2 checkpoints verify."},
		{21, 0, 21, 20, 0, 0, "There is no event in the range to check."},
		{25, 30, 25, 20, 0, 0, ""},
	} {
		v, err := store.Verify(ctx, m, store.VerifyParams{Start: c.start, End: c.end, PageSize: 3})
		if err != nil {
			t.Fatal(err)
		}
		if !v.Valid || v.Start != c.wantStart || v.End != c.wantEnd || v.EventsChecked != c.events || v.CheckpointsChecked != c.checkpoints ||
			v.HeadSeq != 20 || string(v.HeadHash) != string(m.state.HeadHash) || v.AnchorSeq != 0 || (c.detail != "" && v.Detail != c.detail) {
			t.Errorf("[%d, %d]: %+v", c.start, c.end, v)
		}
	}
	for _, p := range []store.VerifyParams{{Start: -1}, {End: -1}, {Start: 5, End: 4}} {
		if _, err := store.Verify(ctx, m, p); !errors.Is(err, errs.ErrInvalid) {
			t.Errorf("%+v: %v, want invalid", p, err)
		}
	}

	// A sub-range is checked against the stored hash of the event before it, which it does not check.
	m.at(4).Actor = "changed"
	if v, _ := store.Verify(ctx, m, store.VerifyParams{Start: 5}); !v.Valid {
		t.Errorf("from 5 with 4 changed: %+v", v)
	}
	m.remove(4)
	if v, _ := store.Verify(ctx, m, store.VerifyParams{Start: 5}); v.FirstBad != 4 || v.Problem != store.ProblemMissing {
		t.Errorf("from 5 with 4 removed: %+v", v)
	}
	m.at(3).Hash = make([]byte, 32)
	if v, _ := store.Verify(ctx, m, store.VerifyParams{Start: 4, End: 4}); v.FirstBad != 4 || v.Problem != store.ProblemMissing {
		t.Errorf("4 alone, removed: %+v", v)
	}

	// An empty log verifies, and so does its head.
	v, err := store.Verify(ctx, chainOf(0), store.VerifyParams{})
	if err != nil || !v.Valid || v.Start != 1 || v.End != 0 || v.HeadSeq != 0 || v.EventsChecked != 0 {
		t.Errorf("empty log: %+v %v", v, err)
	}
	empty := chainOf(0)
	empty.state.HeadHash = make([]byte, 32)
	empty.state.HeadHash[0] = 1
	// The head of an empty log is sequence 0, so the break is named there (Valid and Problem tell it from
	// a valid answer).
	if v, _ := store.Verify(ctx, empty, store.VerifyParams{}); v.Valid || v.Problem != store.ProblemChanged || v.FirstBad != 0 {
		t.Errorf("empty log with a wrong head hash: %+v", v)
	}
}

// TestVerifyFromTheRetentionAnchor: after retention removed events up to the anchor (and signed a
// checkpoint of it), the retained chain verifies from the anchor's hash; a range starting below the
// anchor starts at it; the first retained event must link to the anchor; and an anchor that no
// checkpoint signs (a prefix removed behind retention's back) or that a checkpoint signs with another
// hash is named.
func TestVerifyFromTheRetentionAnchor(t *testing.T) {
	ctx := context.Background()
	cut := func(m *memLog, through int64) {
		m.state.AnchorSeq, m.state.AnchorHash = through, m.at(through).Hash
		for s := int64(1); s <= through; s++ {
			m.remove(s)
		}
	}
	m := chainOf(20)
	m.checkpoint(3) // before the cut: anchor 0
	cut(m, 5)
	if v, _ := store.Verify(ctx, m, store.VerifyParams{}); v.FirstBad != 1 || v.Problem != store.ProblemMissing {
		t.Fatalf("an anchor no checkpoint signs: %+v", v)
	}
	m.checkpoint(20) // retention's checkpoint: anchor 5
	v, err := store.Verify(ctx, m, store.VerifyParams{})
	if err != nil || !v.Valid || v.Start != 6 || v.EventsChecked != 15 || v.AnchorSeq != 5 || v.CheckpointsChecked != 1 {
		t.Fatalf("%+v %v", v, err)
	}
	v, err = store.Verify(ctx, m, store.VerifyParams{Start: 2, End: 8})
	if err != nil || !v.Valid || v.Start != 6 || v.End != 8 || !strings.Contains(v.Detail, "removed by retention") {
		t.Fatalf("%+v %v", v, err)
	}
	if v, _ := store.Verify(ctx, m, store.VerifyParams{Start: 7}); !v.Valid || v.CheckpointsChecked != 1 {
		t.Fatalf("a range after the anchor does not read it: %+v", v)
	}

	// An attacker removes more of the prefix and moves the anchor: the newest checkpoint signed 5, and
	// a forged checkpoint below the range, newer still, does not stand in for it.
	cut(m, 8)
	if v, _ := store.Verify(ctx, m, store.VerifyParams{}); v.FirstBad != 6 || v.Problem != store.ProblemMissing {
		t.Fatalf("a prefix removed behind retention's back: %+v", v)
	}
	m.cps = append(m.cps, &store.Checkpoint{ID: 99, Sequence: 2, AnchorSeq: 8, AnchorHash: m.state.AnchorHash})
	if v, _ := store.Verify(ctx, m, store.VerifyParams{PageSize: 1}); v.FirstBad != 6 || v.Problem != store.ProblemMissing {
		t.Fatalf("a prefix removed, a forged checkpoint signs the anchor: %+v", v)
	}
	m = chainOf(20)
	cut(m, 5)
	m.checkpoint(20)
	m.state.AnchorHash = m.at(6).Hash
	if v, _ := store.Verify(ctx, m, store.VerifyParams{}); v.FirstBad != 5 || v.Problem != store.ProblemCheckpointMismatch {
		t.Fatalf("an anchor hash changed: %+v", v)
	}
	m = chainOf(20)
	cut(m, 5)
	m.checkpoint(20).Signature[3] ^= 1
	if v, _ := store.Verify(ctx, m, store.VerifyParams{}); v.FirstBad != 1 || v.Problem != store.ProblemMissing {
		t.Fatalf("the anchor's only checkpoint forged: %+v", v)
	}
	m.checkpoint(20) // a valid one signed before (id order below is newest first)
	m.cps[0], m.cps[1] = m.cps[1], m.cps[0]
	m.cps[0].ID, m.cps[1].ID = 1, 2
	if v, _ := store.Verify(ctx, m, store.VerifyParams{PageSize: 1}); v.FirstBad != 20 || v.Problem != store.ProblemCheckpointMismatch {
		t.Fatalf("the newest checkpoint forged: %+v", v)
	}
	m.at(9).Actor = "x" // an earlier break comes first
	if v, _ := store.Verify(ctx, m, store.VerifyParams{}); v.FirstBad != 9 || v.Problem != store.ProblemChanged {
		t.Fatalf("the anchor's checkpoint forged, 9 changed: %+v", v)
	}

	m = chainOf(20)
	cut(m, 5)
	m.checkpoint(20)
	e := m.at(6)
	e.PreviousHash = chain.Genesis
	rehash(e)
	if v, _ := store.Verify(ctx, m, store.VerifyParams{}); v.FirstBad != 6 || v.Problem != store.ProblemChanged {
		t.Fatalf("first retained event re-linked: %+v", v)
	}
}

// TestVerifyRetentionDuringTheWalk: events that retention removes while the walk runs are not reported
// missing; the caller is told to verify again.
func TestVerifyRetentionDuringTheWalk(t *testing.T) {
	m := chainOf(20)
	before := m.state
	m.remove(7) // removed by retention after ChainState was read
	after := before
	after.AnchorSeq, after.AnchorHash = 7, m.at(8).PreviousHash
	m.states = []store.ChainState{before, after}
	if _, err := store.Verify(context.Background(), m, store.VerifyParams{}); !errors.Is(err, errs.ErrConflict) {
		t.Fatalf("got %v, want a conflict", err)
	}
}

// TestVerifyStopsWhenCancelled: a cancelled context ends the walk with its error.
func TestVerifyStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := store.Verify(ctx, chainOf(50), store.VerifyParams{PageSize: 5}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestVerifyIgnoresAppendsDuringTheWalk: events appended (and checkpoints signed) after verification read
// the head are not reported as inserted beyond it.
func TestVerifyIgnoresAppendsDuringTheWalk(t *testing.T) {
	m := chainOf(25)
	m.checkpoint(25)
	first := m.state
	first.HeadSeq, first.HeadHash = 20, m.at(20).Hash
	m.states = []store.ChainState{first, m.state}
	v, err := store.Verify(context.Background(), m, store.VerifyParams{})
	if err != nil || !v.Valid || v.End != 20 || v.HeadSeq != 20 {
		t.Fatalf("%+v %v", v, err)
	}
}

var errReadFailed = errors.New("read failed")

// TestVerifyReturnsReadErrors: a page that fails to read, the one read ahead included, fails the
// verification with that error rather than reporting the log.
func TestVerifyReturnsReadErrors(t *testing.T) {
	for _, after := range []int64{1, 5, 9, 10, 11} {
		m := chainOf(30)
		m.failAfter = after
		if _, err := store.Verify(context.Background(), m, store.VerifyParams{PageSize: 5}); !errors.Is(err, errReadFailed) {
			t.Errorf("reads after %d fail: got %v", after, err)
		}
	}
}
