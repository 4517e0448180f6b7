package audit

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/storetest"
)

// testClock is a settable testClock for a test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func storedCheckpoints(t *testing.T, st store.Store) []*store.Checkpoint {
	t.Helper()
	cs, err := st.CheckpointList(context.Background(), store.CheckpointListParams{Ascending: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestCheckpointerSchedule: with a testClock the test moves, a scheduled checkpoint is signed only once an
// interval has passed since the last checkpoint (of any kind) and only when the head moved since it; an
// empty log is never signed; a last checkpoint dated ahead of this testClock delays the next by at most one
// interval.
func TestCheckpointerSchedule(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, d)
			clk := &testClock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}
			cp := newCheckpointer(st, newTestKey(t), time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
			cp.now = clk.now
			tick := func(wantSigned int, wantWait time.Duration) {
				t.Helper()
				before := len(storedCheckpoints(t, st))
				wait, err := cp.tick(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(storedCheckpoints(t, st)) - before; got != wantSigned || wait != wantWait {
					t.Fatalf("at %v: signed %d, wait %v; want %d, %v", clk.now(), got, wait, wantSigned, wantWait)
				}
			}
			appendOne := func() {
				if _, _, err := st.EventAppend(ctx, storetest.NewEvent("a", "x", time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			tick(0, time.Hour) // empty log
			appendOne()
			appendOne()
			tick(1, time.Hour)
			last := storedCheckpoints(t, st)[0]
			if last.Sequence != 2 || last.Kind != int32(auditv1.CheckpointKind_CHECKPOINT_KIND_SCHEDULED) || VerifyCheckpoint(last) != nil {
				t.Fatalf("scheduled checkpoint: %+v", last)
			}
			clk.set(clk.now().Add(20 * time.Minute))
			appendOne()
			tick(0, 40*time.Minute) // moved, but not yet due
			clk.set(clk.now().Add(40 * time.Minute))
			tick(1, time.Hour) // due and moved
			clk.set(clk.now().Add(2 * time.Hour))
			tick(0, time.Hour) // due, but the head has not moved
			if _, err := cp.Sign(ctx, auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND); err != nil {
				t.Fatal(err)
			}
			appendOne()
			tick(0, time.Hour) // an on-demand checkpoint just now restarts the interval
			clk.set(clk.now().Add(-3 * time.Hour))
			tick(0, time.Hour) // the last checkpoint lies ahead of this testClock: wait one interval, not three
		})
	}
}

// TestCheckpointerSignsOnSchedule: through the platform's Serve, the checkpoint worker (leader-elected;
// on PostgreSQL through the advisory lock) signs the head on its own once it moved, and again after it
// moves further.
func TestCheckpointerSignsOnSchedule(t *testing.T) {
	writer := authtest.NewKey(t, "writer", auth.ScopeAuditWrite)
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := signedConfig(t, d)
			cfg.Signing.Interval = 50 * time.Millisecond
			s := serveSigned(t, cfg, []authtest.Key{writer}, nil)
			c := s.client(t, writer.Key)
			st := s.svc.server.store
			signed := func(seq int64) func() bool {
				return func() bool {
					for _, cp := range storedCheckpoints(t, st) {
						if cp.Sequence == seq && cp.Kind == int32(auditv1.CheckpointKind_CHECKPOINT_KIND_SCHEDULED) && VerifyCheckpoint(cp) == nil {
							return true
						}
					}
					return false
				}
			}
			record := func(n int) {
				for range n {
					if _, err := c.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "a", Action: "b", Outcome: auditv1.Outcome_OUTCOME_SUCCESS}); err != nil {
						t.Fatal(err)
					}
				}
			}
			record(3)
			// PostgreSQL's elector waits out a takeover delay (about 4 s) before the worker starts.
			testutil.Eventually(t, 30*time.Second, "a scheduled checkpoint of sequence 3", signed(3))
			record(2)
			testutil.Eventually(t, 10*time.Second, "a scheduled checkpoint of sequence 5", signed(5))
		})
	}
}
