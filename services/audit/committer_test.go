package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

// batchLog records the size of every Append transaction, committed or not, and holds each one while its
// gate is open (nil: never held).
type batchLog struct {
	store.Store
	mu    sync.Mutex
	sizes []int
	gate  chan struct{}
}

func (b *batchLog) Append(ctx context.Context, ps []store.Pending) ([]store.Result, error) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(ps))
	gate := b.gate
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.Store.Append(ctx, ps)
}

func (b *batchLog) batches() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

func openStore(t *testing.T, d db.Dialect) store.Store {
	h := dbtest.Open(t, d, "audit")
	if d == db.SQLite {
		return sqlite.New(h.SQLite)
	}
	return postgres.New(h.Postgres)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// held is a running committer whose worker is held in the commit of one event (the plug) until release
// is called: the calls queued meanwhile form the next batch, deterministically. The plug is stored like
// any event (the first after what the store held).
type held struct {
	c    *committer
	log  *batchLog
	wg   sync.WaitGroup
	mu   sync.Mutex
	res  map[int]store.Result
	errs map[int]error

	plug chan error
	stop context.CancelFunc // stops the worker; it drains what it accepted once released
	done chan struct{}      // closed when Run has returned
}

func holdCommitter(t *testing.T, st store.Store, cfg GroupCommit) *held {
	bl := &batchLog{Store: st, gate: make(chan struct{})}
	c := newCommitter(bl, cfg, quietLog())
	ctx, stop := context.WithCancel(context.Background())
	h := &held{c: c, log: bl, res: map[int]store.Result{}, errs: map[int]error{}, plug: make(chan error, 1), stop: stop,
		done: make(chan struct{})}
	go func() { _ = c.Run(ctx); close(h.done) }()
	t.Cleanup(func() {
		h.release(t)
		stop()
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	// Only a running committer queues the plug for its worker; before, the plug would commit alone on
	// its caller's goroutine and the calls behind it would not be gathered.
	testutil.Eventually(t, 10*time.Second, "the committer to accept calls", c.Running)
	go func() {
		_, err := c.Do(context.Background(), store.Pending{Event: storetest.NewEvent("plug", "act", time.Now())})
		h.plug <- err
	}()
	testutil.Eventually(t, 10*time.Second, "the plug to be in its commit", func() bool { return len(bl.batches()) == 1 })
	return h
}

// release lets the plug's commit, and every later one, go on; the plug must be stored.
func (h *held) release(t *testing.T) {
	t.Helper()
	h.log.mu.Lock()
	gate := h.log.gate
	h.log.gate = nil
	h.log.mu.Unlock()
	if gate == nil {
		return
	}
	close(gate)
	if err := <-h.plug; err != nil {
		t.Fatalf("the plug: %v", err)
	}
}

// submit appends p as call i in the background.
func (h *held) submit(ctx context.Context, i int, p store.Pending) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		r, err := h.c.Do(ctx, p)
		h.mu.Lock()
		h.res[i], h.errs[i] = r, err
		h.mu.Unlock()
	}()
}

// waitQueued waits until n calls are queued behind the plug.
func (h *held) waitQueued(t *testing.T, n int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%d queued calls", n), func() bool { return h.c.Queued() == n })
}

func keyed(actor, key string) store.Pending {
	e := storetest.NewEvent(actor, "act", time.Now())
	e.IdempotencyKey = key
	return store.Pending{Event: e}
}

// TestGroupCommitOneBadEventFailsAlone: in one gathered batch, an event the database refuses (an id
// already stored) and an idempotency key reused for other content fail alone; the others are stored in
// order, each answered with its own sequence and hash, and keys repeated inside the batch resolve as if
// the calls had come one after the other.
func TestGroupCommitOneBadEventFailsAlone(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, d)
			ctx := context.Background()
			first, _, err := st.EventAppend(ctx, keyed("agent-0", "k-stored").Event)
			if err != nil {
				t.Fatal(err)
			}
			h := holdCommitter(t, st, GroupCommit{MaxEvents: 256, Window: time.Millisecond})
			clash := storetest.NewEvent("agent-x", "clash", time.Now())
			clash.ID = first.ID // the database refuses a second event with this id
			calls := []store.Pending{
				{Event: storetest.NewEvent("agent-1", "ok", time.Now())},
				{Event: clash},
				keyed("agent-0", "k-stored"), // a retry of the stored event
				keyed("agent-9", "k-stored"), // the same key with other content
				keyed("agent-2", "k-new"),
				keyed("agent-2", "k-new"), // a retry inside the batch
				{Event: storetest.NewEvent("agent-3", "ok", time.Now())},
			}
			for i, p := range calls {
				h.submit(ctx, i, p)
				h.waitQueued(t, i+1) // in this order
			}
			h.release(t)
			h.wg.Wait()
			if !errors.Is(h.errs[1], errs.ErrAlreadyExists) {
				t.Errorf("the clashing id: %v, want AlreadyExists", h.errs[1])
			}
			for _, i := range []int{0, 2, 3, 4, 5, 6} {
				if h.errs[i] != nil {
					t.Errorf("call %d failed with the bad one: %v", i, h.errs[i])
				}
			}
			if !errors.Is(h.res[3].Err, errs.ErrAlreadyExists) {
				t.Errorf("key reused for other content: %+v", h.res[3])
			}
			if r := h.res[2]; !r.Duplicate || r.Event.ID != first.ID {
				t.Errorf("retry of a stored key: %+v", r)
			}
			if r := h.res[5]; !r.Duplicate || r.Event.ID != h.res[4].Event.ID || r.Event.Sequence != h.res[4].Event.Sequence {
				t.Errorf("retry inside the batch: %+v, first %+v", r.Event, h.res[4].Event)
			}
			es, err := st.EventList(ctx, store.EventListParams{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			storetest.VerifyChain(t, es)
			if len(es) != 5 {
				t.Fatalf("%d events stored, want 5 (the plug and 4 of the calls)", len(es))
			}
			for _, i := range []int{0, 4, 6} {
				got := es[h.res[i].Event.Sequence-1]
				if got.ID != calls[i].Event.ID || string(got.Hash) != string(h.res[i].Event.Hash) {
					t.Errorf("call %d was answered with sequence %d, which holds %s", i, h.res[i].Event.Sequence, got.ID)
				}
			}
			if b := h.log.batches(); len(b) < 3 || b[0] != 1 || b[1] != len(calls) {
				t.Errorf("batches %v: want the plug, the %d calls gathered, then split", b, len(calls))
			}
		})
	}
}

// TestGroupCommitDrainsOnStop: calls accepted before the stop are committed by the drain and answered;
// after it, calls are appended one by one.
func TestGroupCommitDrainsOnStop(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, d)
			h := holdCommitter(t, st, GroupCommit{MaxEvents: 4, Window: time.Millisecond})
			const n = 10
			for i := range n {
				h.submit(context.Background(), i, store.Pending{Event: storetest.NewEvent(fmt.Sprintf("agent-%d", i), "act", time.Now())})
			}
			h.waitQueued(t, n)
			h.stop() // stopped while the plug commits: everything queued behind it is the drain's
			h.release(t)
			select {
			case <-h.done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
			h.wg.Wait()
			for i := range n {
				if h.errs[i] != nil || h.res[i].Event == nil {
					t.Fatalf("call %d: %v", i, h.errs[i])
				}
			}
			if b := h.log.batches(); !slices.Equal(b, []int{1, 4, 4, 2}) {
				t.Errorf("batches %v, want the plug, then the drain's [4 4 2]", b)
			}
			// Stopped: the next call is appended on its own, at once.
			r, err := h.c.Do(context.Background(), store.Pending{Event: storetest.NewEvent("late", "act", time.Now())})
			if err != nil || r.Event.Sequence != n+2 {
				t.Fatalf("after the stop: %+v %v", r, err)
			}
			if b := h.log.batches(); !slices.Equal(b, []int{1, 4, 4, 2, 1}) {
				t.Errorf("batches %v: the call after the stop was not appended alone", b)
			}
			es, err := st.EventList(context.Background(), store.EventListParams{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != n+2 {
				t.Fatalf("%d events stored, want %d (the plug, the drained calls, the late one)", len(es), n+2)
			}
			storetest.VerifyChain(t, es)
		})
	}
}

// TestGroupCommitCallerGoneBeforeCommit: a caller whose context ends while it waits gets the context's
// error; when it ended before its batch was taken, its event is not stored.
func TestGroupCommitCallerGoneBeforeCommit(t *testing.T) {
	st := openStore(t, db.SQLite)
	h := holdCommitter(t, st, GroupCommit{MaxEvents: 256, Window: time.Millisecond})
	gone, cancel := context.WithCancel(context.Background())
	h.submit(gone, 0, store.Pending{Event: storetest.NewEvent("gone", "act", time.Now())})
	h.submit(context.Background(), 1, store.Pending{Event: storetest.NewEvent("stays", "act", time.Now())})
	h.waitQueued(t, 2)
	cancel()
	// The cancelled caller returns without the committer.
	testutil.Eventually(t, 10*time.Second, "the cancelled caller to return", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		_, ok := h.errs[0]
		return ok
	})
	h.release(t)
	h.wg.Wait()
	if !errors.Is(h.errs[0], context.Canceled) || h.errs[1] != nil {
		t.Fatalf("errors %v", h.errs)
	}
	es, err := st.EventList(context.Background(), store.EventListParams{Limit: 10})
	if err != nil || len(es) != 2 || es[0].Actor != "plug" || es[1].Actor != "stays" {
		t.Fatalf("stored %d events (%v), want only the plug and the waiting caller's", len(es), err)
	}
}

// failing refuses every batch that holds an event of actor "poison", like a database refusing a row.
type failing struct{ store.Store }

func (f failing) Append(ctx context.Context, ps []store.Pending) ([]store.Result, error) {
	for _, p := range ps {
		if p.Event.Actor == "poison" {
			return nil, errs.New(errs.KindInternal, "refused")
		}
	}
	return f.Store.Append(ctx, ps)
}

// TestGroupCommitSplitsAroundARefusedEvent: a batch of 64 with one event the store refuses is split until
// that event fails alone; an outage fails the batch without splitting.
func TestGroupCommitSplitsAroundARefusedEvent(t *testing.T) {
	st := openStore(t, db.SQLite)
	h := holdCommitter(t, failing{st}, GroupCommit{MaxEvents: 256, Window: time.Millisecond})
	const n, bad = 64, 37
	for i := range n {
		actor := fmt.Sprintf("agent-%d", i)
		if i == bad {
			actor = "poison"
		}
		h.submit(context.Background(), i, store.Pending{Event: storetest.NewEvent(actor, "act", time.Now())})
	}
	h.waitQueued(t, n)
	h.release(t)
	h.wg.Wait()
	for i := range n {
		if (h.errs[i] != nil) != (i == bad) {
			t.Errorf("call %d: %v", i, h.errs[i])
		}
	}
	// The plug, then log2(64) = 6 levels: 1 + 2·6 transactions.
	if b := h.log.batches(); len(b) > 1+13 || len(b) < 2 || b[1] != n {
		t.Errorf("%d transactions to isolate one event: %v", len(b), b)
	}
	es, err := st.EventList(context.Background(), store.EventListParams{Limit: 100})
	if err != nil || len(es) != n { // the plug and all but the refused one
		t.Fatalf("%d stored, %v", len(es), err)
	}
	storetest.VerifyChain(t, es)
	if db.Splittable(errs.Wrap(errs.KindUnavailable, errors.New("down"), "database unavailable")) || db.Splittable(context.DeadlineExceeded) {
		t.Error("an unavailable database or a timeout would be retried event by event")
	}
}

func TestGroupCommitIsConfigurable(t *testing.T) {
	cfg := LoadConfig(config.FromMap(map[string]string{"AUDIT_GROUP_COMMIT_MAX_EVENTS": "64", "AUDIT_GROUP_COMMIT_WINDOW": "5ms"}))
	if cfg.GroupCommit != (GroupCommit{MaxEvents: 64, Window: 5 * time.Millisecond}) {
		t.Fatalf("group commit %+v", cfg.GroupCommit)
	}
	if LoadConfig(config.FromMap(nil)).GroupCommit != DefaultGroupCommit {
		t.Fatal("defaults")
	}
	for name, v := range map[string]string{"AUDIT_GROUP_COMMIT_MAX_EVENTS": "0", "AUDIT_GROUP_COMMIT_WINDOW": "2s"} {
		env := config.FromMap(map[string]string{name: v})
		LoadConfig(env)
		if env.Err() == nil {
			t.Errorf("%s=%s accepted", name, v)
		}
	}
}

// TestGroupCommitDoesNotHoldALoneCall: calls that come one at a time are committed at once, however long
// the window: it applies only after a batch of more than one.
func TestGroupCommitDoesNotHoldALoneCall(t *testing.T) {
	st := openStore(t, db.SQLite)
	c := newCommitter(st, GroupCommit{MaxEvents: 256, Window: time.Hour}, quietLog())
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	testutil.Eventually(t, 10*time.Second, "the committer to accept calls", c.Running)
	callCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // far below the window
	defer cancel()
	for i := range 5 {
		r, err := c.Do(callCtx, store.Pending{Event: storetest.NewEvent("agent-1", "act", time.Now())})
		if err != nil || r.Event.Sequence != int64(i+1) {
			t.Fatalf("call %d: %+v %v", i, r, err)
		}
	}
}
