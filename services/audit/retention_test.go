package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/audit/chain"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/storetest"
)

// countingCuts records the batches retention ran.
type countingCuts struct {
	store.Store
	mu   sync.Mutex
	cuts []store.Cut
}

func (c *countingCuts) RetentionCut(ctx context.Context, cutoff time.Time, batch int64) (store.Cut, error) {
	cut, err := c.Store.RetentionCut(ctx, cutoff, batch)
	c.mu.Lock()
	c.cuts = append(c.cuts, cut)
	c.mu.Unlock()
	return cut, err
}

// verifyFromAnchor recomputes the retained chain: it starts at the anchor and links up to the head.
func verifyFromAnchor(t *testing.T, st store.Store) store.ChainState {
	t.Helper()
	cs, err := st.ChainState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	es, err := st.EventList(context.Background(), store.EventListParams{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	prev, seq := cs.AnchorHash, cs.AnchorSeq
	for _, e := range es {
		if e.Sequence != seq+1 || !bytes.Equal(e.PreviousHash, prev) || !bytes.Equal(e.Hash, chain.Hash(prev, e.Fields())) {
			t.Fatalf("retained chain breaks at %d", e.Sequence)
		}
		prev, seq = e.Hash, e.Sequence
	}
	if seq != cs.HeadSeq || !bytes.Equal(prev, cs.HeadHash) {
		t.Fatalf("retained chain ends at %d, head %d", seq, cs.HeadSeq)
	}
	return cs
}

// TestRetentionAcrossTheCut: events recorded (by the service's clock, set back 40 days) before the
// retention period are removed in batches, through real gRPC on both backends: the newer events and the
// head stay and link to the anchor (the last removed event), an audit.retention event says what was
// cut, and a RETENTION checkpoint signs the new anchor and the head; a second run cuts nothing and signs
// nothing; a cut that was never signed (a run stopped between its cut and its checkpoint) is signed by
// the next run.
func TestRetentionAcrossTheCut(t *testing.T) {
	writer := authtest.NewKey(t, "writer", auth.ScopeAuditWrite, auth.ScopeAuditRead)
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := signedConfig(t, d)
			cfg.Retention = Retention{Days: 30, Every: time.Hour, Batch: 3}
			clk := &testClock{t: time.Now().Add(-40 * 24 * time.Hour)}
			s := serveSigned(t, cfg, []authtest.Key{writer}, func(svc *Service) {
				svc.server.now = clk.now
				svc.cfg.Retention.Days = 0 // no retention worker: the test runs retention itself
			})
			c := s.client(t, writer.Key)
			var events []*auditv1.Event
			record := func(n int) {
				for range n {
					resp, err := c.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "agent-1", Action: "a.b", Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
					if err != nil {
						t.Fatal(err)
					}
					events = append(events, resp.GetEvent())
				}
			}
			record(7)
			before, err := s.svc.server.checkpoints.Sign(ctx, auditv1.CheckpointKind_CHECKPOINT_KIND_ON_DEMAND)
			if err != nil {
				t.Fatal(err)
			}
			clk.set(time.Now())
			record(3)

			st := s.svc.server.store
			counted := &countingCuts{Store: st}
			s.svc.retainer.st = counted
			removed, err := s.svc.retainer.RunOnce(ctx)
			if err != nil || removed != 7 {
				t.Fatalf("retention removed %d (%v), want 7", removed, err)
			}
			var sizes []int64
			for _, cut := range counted.cuts {
				sizes = append(sizes, cut.Removed)
			}
			if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 {
				t.Fatalf("batches removed %v, want [3 3 1]", sizes)
			}
			cs := verifyFromAnchor(t, st)
			if cs.AnchorSeq != 7 || !bytes.Equal(cs.AnchorHash, events[6].GetHash()) || cs.HeadSeq != 11 {
				t.Fatalf("chain state after the cut: %+v", cs)
			}
			_, err = c.GetEvent(ctx, &auditv1.GetEventRequest{Id: events[0].GetId()})
			wantCodeIs(t, "GetEvent of a removed event", err, codes.NotFound)
			if _, err := c.GetEvent(ctx, &auditv1.GetEventRequest{Id: events[7].GetId()}); err != nil {
				t.Fatalf("a newer event is gone: %v", err)
			}

			list, err := c.ListEvents(ctx, &auditv1.ListEventsRequest{Action: "audit.retention"})
			if err != nil || len(list.GetEvents()) != 1 {
				t.Fatalf("audit.retention events: %v %v", list, err)
			}
			re := list.GetEvents()[0]
			var m struct{ From, Through, Removed, Days float64 }
			fields := re.GetMetadata().GetFields()
			m.From, m.Through, m.Removed, m.Days = fields["from_sequence"].GetNumberValue(), fields["through_sequence"].GetNumberValue(),
				fields["removed"].GetNumberValue(), fields["retention_days"].GetNumberValue()
			if re.GetSequence() != 11 || re.GetPrincipal() != retentionPrincipal || re.GetActorType() != auditv1.ActorType_ACTOR_TYPE_SERVICE ||
				m.From != 1 || m.Through != 7 || m.Removed != 7 || m.Days != 30 {
				t.Fatalf("audit.retention event: %v", re)
			}

			cps := storedCheckpoints(t, st)
			last := cps[len(cps)-1]
			if len(cps) != 2 || cps[0].ID != before.ID || last.Kind != int32(auditv1.CheckpointKind_CHECKPOINT_KIND_RETENTION) ||
				last.AnchorSeq != 7 || !bytes.Equal(last.AnchorHash, cs.AnchorHash) || last.Sequence != 11 || !bytes.Equal(last.Hash, cs.HeadHash) {
				t.Fatalf("checkpoints after the cut: %+v", last)
			}
			key, err := s.client(t, "").GetSigningKey(ctx, &auditv1.GetSigningKeyRequest{})
			if err != nil {
				t.Fatal(err)
			}
			verifyWith(t, key, checkpointToProto(last))
			verifyWith(t, key, checkpointToProto(cps[0])) // checkpoints of removed events stay

			if removed, err := s.svc.retainer.RunOnce(ctx); err != nil || removed != 0 || len(storedCheckpoints(t, st)) != 2 {
				t.Fatalf("second run: removed %d, %d checkpoints (%v)", removed, len(storedCheckpoints(t, st)), err)
			}

			// A cut without its checkpoint, as if the process had died between the two.
			if cut, err := st.RetentionCut(ctx, time.Now().Add(time.Hour), 100); err != nil || cut.Through != 10 {
				t.Fatalf("unsigned cut: %+v %v", cut, err)
			}
			if removed, err := s.svc.retainer.RunOnce(ctx); err != nil || removed != 0 {
				t.Fatalf("run after an unsigned cut: %d %v", removed, err)
			}
			cps = storedCheckpoints(t, st)
			if last = cps[len(cps)-1]; len(cps) != 3 || last.Kind != int32(auditv1.CheckpointKind_CHECKPOINT_KIND_RETENTION) || last.AnchorSeq != 10 {
				t.Fatalf("the unsigned cut was not signed: %+v", last)
			}
			verifyFromAnchor(t, st)
		})
	}
}

// TestRetentionWorker: the platform runs retention on its own (on the leader) and keeps running it.
func TestRetentionWorker(t *testing.T) {
	writer := authtest.NewKey(t, "writer", auth.ScopeAuditWrite)
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := signedConfig(t, d)
			cfg.Retention = Retention{Days: 1, Every: 50 * time.Millisecond, Batch: 100}
			clk := &testClock{t: time.Now().Add(-48 * time.Hour)}
			s := serveSigned(t, cfg, []authtest.Key{writer}, func(svc *Service) { svc.server.now = clk.now })
			c := s.client(t, writer.Key)
			for range 4 {
				if _, err := c.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "a", Action: "b", Outcome: auditv1.Outcome_OUTCOME_SUCCESS}); err != nil {
					t.Fatal(err)
				}
			}
			clk.set(time.Now())
			if _, err := c.RecordEvent(ctx, &auditv1.RecordEventRequest{Actor: "a", Action: "b", Outcome: auditv1.Outcome_OUTCOME_SUCCESS}); err != nil {
				t.Fatal(err)
			}
			st := s.svc.server.store
			testutil.Eventually(t, 30*time.Second, "a RETENTION checkpoint of anchor 4", func() bool {
				for _, cp := range storedCheckpoints(t, st) {
					if cp.Kind == int32(auditv1.CheckpointKind_CHECKPOINT_KIND_RETENTION) && cp.AnchorSeq == 4 {
						return true
					}
				}
				return false
			})
			verifyFromAnchor(t, st)
		})
	}
}

func TestRetentionConfiguration(t *testing.T) {
	if c := LoadConfig(config.FromMap(nil)).Retention; c != DefaultRetention || c.Days != 365 {
		t.Fatalf("default retention %+v", c)
	}
	// A key file name is enough: LoadConfig only reads settings (production needs a signing key).
	env := config.FromMap(map[string]string{"AUDIT_RETENTION_DAYS": "0", "AUDIT_SIGNING_KEY": "/etc/sergas/audit/key.pem"})
	if c := LoadConfig(env).Retention; c.Days != 0 || env.Err() != nil {
		t.Fatalf("AUDIT_RETENTION_DAYS=0: %+v %v", c, env.Err())
	}
	env = config.FromMap(map[string]string{"AUDIT_RETENTION_DAYS": "-1"})
	if LoadConfig(env); env.Err() == nil {
		t.Fatal("AUDIT_RETENTION_DAYS=-1 accepted")
	}
}

// TestRetentionBatchFollowsItsTime: a batch that took longer than batchTarget shrinks the next one in
// proportion (not below minBatch), a quick one grows it at most fourfold, never beyond the configured
// size.
func TestRetentionBatchFollowsItsTime(t *testing.T) {
	for _, c := range []struct {
		batch int64
		took  time.Duration
		want  int64
	}{
		{5000, 200 * time.Millisecond, 1250},
		{5000, 20 * time.Millisecond, 5000},
		{1000, 10 * time.Millisecond, 4000},
		{1000, 50 * time.Millisecond, 1000},
		{100, 10 * time.Second, minBatch},
		{5000, 0, 5000},
	} {
		if got := nextBatch(c.batch, c.took, 5000); got != c.want {
			t.Errorf("after %d in %v: %d, want %d", c.batch, c.took, got, c.want)
		}
	}
	if got := nextBatch(3, time.Second, 3); got != 3 {
		t.Errorf("configured batch below minBatch: %d, want 3", got)
	}
}

// failingCuts fails every retention batch with err, counting the calls.
type failingCuts struct {
	store.Store
	err   error
	calls chan struct{}
}

func (f *failingCuts) RetentionCut(context.Context, time.Time, int64) (store.Cut, error) {
	select {
	case f.calls <- struct{}{}:
	default:
	}
	return store.Cut{}, f.err
}

// TestRetentionWorkerOnFailure: a run refused by the log (a gap) keeps the worker on its schedule, to
// try again at the next run; a database failure ends the worker with the error, for the platform to
// restart it after a backoff.
func TestRetentionWorkerOnFailure(t *testing.T) {
	st := openStore(t, db.SQLite)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gap := &failingCuts{Store: st, err: errs.New(errs.KindFailedPrecondition, "gap"), calls: make(chan struct{}, 1)}
	r := &retainer{st: gap, cfg: Retention{Days: 1, Every: 10 * time.Millisecond, Batch: 10}, now: time.Now, log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for i := range 3 { // three runs: the worker is still on its schedule after two refusals
		select {
		case <-gap.calls:
		case err := <-done:
			t.Fatalf("the worker ended after %d refused runs: %v", i, err)
		case <-time.After(10 * time.Second):
			t.Fatal("no retention run")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped worker: %v", err)
	}

	down := &failingCuts{Store: st, err: errs.New(errs.KindUnavailable, "database unavailable"), calls: make(chan struct{}, 1)}
	r.st = down
	select {
	case err := <-runIn(r):
		if errs.KindOf(err) != errs.KindUnavailable {
			t.Fatalf("worker ended with %v, want the database's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker kept running on a failing database")
	}
}

func runIn(r *retainer) <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	return done
}

// failSecond runs the first retention batch and fails the next ones with err.
type failSecond struct {
	store.Store
	err   error
	calls int
}

func (f *failSecond) RetentionCut(ctx context.Context, cutoff time.Time, batch int64) (store.Cut, error) {
	if f.calls++; f.calls > 1 {
		return store.Cut{}, f.err
	}
	return f.Store.RetentionCut(ctx, cutoff, batch)
}

// TestRetentionRecordsWhatItRemovedBeforeAFailure: when a batch fails after others removed events, the
// run still records the audit.retention event and signs the RETENTION checkpoint for what was removed,
// then reports the failure.
func TestRetentionRecordsWhatItRemovedBeforeAFailure(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := openStore(t, d)
			for range 5 {
				e := storetest.NewEvent("a", "x", time.Now())
				e.RecordTime = time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Microsecond)
				if _, _, err := st.EventAppend(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			gap := errs.New(errs.KindFailedPrecondition, "gap")
			r := &retainer{st: &failSecond{Store: st, err: gap}, cfg: Retention{Days: 1, Every: time.Hour, Batch: 2},
				cp: newCheckpointer(st, newTestKey(t), 0, quiet), now: time.Now, log: quiet}
			removed, err := r.RunOnce(ctx)
			if removed != 2 || !errors.Is(err, gap) {
				t.Fatalf("removed %d, error %v; want 2 and the batch's failure", removed, err)
			}
			es, _ := st.EventList(ctx, store.EventListParams{Action: "audit.retention", Limit: 10})
			cps := storedCheckpoints(t, st)
			if len(es) != 1 || len(cps) != 1 || cps[0].Kind != int32(auditv1.CheckpointKind_CHECKPOINT_KIND_RETENTION) || cps[0].AnchorSeq != 2 {
				t.Fatalf("%d audit.retention events, checkpoints %+v", len(es), cps)
			}
		})
	}
}
