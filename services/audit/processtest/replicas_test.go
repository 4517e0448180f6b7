package processtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/proctest"
)

// TestThreeProcessesAppendOneChain: three sergas-audit processes on one PostgreSQL schema (replicas),
// each with concurrent callers sending RecordEvent and RecordEvents, leave one chain: sequences 1..n
// without gaps or forks, every hash recomputed, every acknowledged event stored exactly once with the
// sequence and hash it was acknowledged with, and nothing stored that was not acknowledged. A key sent
// again to another replica is answered as a duplicate of the first event.
func TestThreeProcessesAppendOneChain(t *testing.T) {
	c := dbtest.Config(t, db.Postgres)
	key, keys := writerKey(t)
	// The three start together, so that they also migrate the new schema at the same time.
	procs := make([]*proctest.Proc, 3)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); procs[i] = startAudit(t, keys, c) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx, cancel := context.WithTimeout(withKey(context.Background(), key), 2*time.Minute)
	defer cancel()

	const calls = 30 // per writer; every fifth is a RecordEvents of 5
	var (
		mu   sync.Mutex
		acks []acked
		errs []error
	)
	for p, pr := range procs {
		client := auditClient(t, pr)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("p%dw%d", p, w)
				var mine []acked
				for n := range calls {
					if n%5 == 4 {
						req := &auditv1.RecordEventsRequest{}
						for j := range 5 {
							req.Events = append(req.Events, request(name, 1000*n+j))
						}
						resp, err := client.RecordEvents(ctx, req)
						if err != nil {
							mu.Lock()
							errs = append(errs, fmt.Errorf("%s RecordEvents: %w", name, err))
							mu.Unlock()
							return
						}
						for _, r := range resp.GetResults() {
							mine = append(mine, ackOf(r.GetEvent()))
						}
						continue
					}
					resp, err := client.RecordEvent(ctx, request(name, n))
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s RecordEvent: %w", name, err))
						mu.Unlock()
						return
					}
					mine = append(mine, ackOf(resp.GetEvent()))
				}
				mu.Lock()
				acks = append(acks, mine...)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d writers failed: %s", len(errs), joinErrs(errs))
	}
	want := len(procs) * writers * (calls/5*4 + calls/5*5)
	if len(acks) != want {
		t.Fatalf("%d events acknowledged, want %d", len(acks), want)
	}

	stored := storedChain(t, c)
	checkAcked(t, stored, acks)
	if len(stored) != len(acks) {
		t.Fatalf("%d events stored, %d acknowledged: every call succeeded, so nothing else may be stored", len(stored), len(acks))
	}

	// Idempotency holds across replicas: the first writer's first event, sent again to the third process.
	first := request("p0w0", 0)
	again, err := auditClient(t, procs[2]).RecordEvent(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	var orig acked
	for _, a := range acks {
		if a.key == first.GetIdempotencyKey() {
			orig = a
		}
	}
	if !again.GetDuplicate() || again.GetEvent().GetSequence() != orig.sequence {
		t.Fatalf("resent to another replica: duplicate=%v sequence %d, want the first event's %d", again.GetDuplicate(), again.GetEvent().GetSequence(), orig.sequence)
	}
	for _, p := range procs {
		p.Stop(t)
	}
}
