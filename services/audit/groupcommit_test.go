package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/audit/store"
	"github.com/sergas/core/services/audit/store/postgres"
	"github.com/sergas/core/services/audit/store/sqlite"
	"github.com/sergas/core/services/audit/storetest"
)

// TestConcurrentRecordEventsMakeOneChain: many callers at once through real gRPC (on PostgreSQL spread
// over three service instances sharing the database, each with its own group committer) leave one
// gap-free chain whose hashes recompute; every acknowledged event is stored with the sequence and hash
// it was answered with; a shared idempotency key stores one event; a bad request fails alone.
func TestConcurrentRecordEventsMakeOneChain(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0"}))
			cfg.DB = dbtest.Config(t, d)
			clients := []auditv1.AuditServiceClient{serveWith(t, cfg)}
			if d == db.Postgres {
				clients = append(clients, serveWith(t, cfg), serveWith(t, cfg))
			}
			const callers, each, keys = 64, 12, 5
			var mu sync.Mutex
			acked := map[string]*auditv1.Event{}
			byKey := map[string]map[string]bool{} // key -> ids answered
			errc := make(chan error, callers*(each+1))
			var wg sync.WaitGroup
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					client := clients[c%len(clients)]
					for i := range each {
						req := &auditv1.RecordEventRequest{Actor: fmt.Sprintf("agent-%d", c), Action: "act", Resource: fmt.Sprintf("r/%d", i),
							Outcome: auditv1.Outcome_OUTCOME_SUCCESS}
						if i%4 == 0 { // callers race on keys with one content
							req.Actor, req.Resource, req.IdempotencyKey = "shared", "r/shared", fmt.Sprintf("k-%d", (c+i)%keys)
						}
						resp, err := client.RecordEvent(ctx, req)
						if err != nil {
							errc <- err
							continue
						}
						mu.Lock()
						acked[resp.GetEvent().GetId()] = resp.GetEvent()
						if k := req.IdempotencyKey; k != "" {
							if byKey[k] == nil {
								byKey[k] = map[string]bool{}
							}
							byKey[k][resp.GetEvent().GetId()] = true
						}
						mu.Unlock()
					}
					bad := &auditv1.RecordEventRequest{Actor: "agent\x00", Action: "act", Outcome: auditv1.Outcome_OUTCOME_SUCCESS}
					if _, err := client.RecordEvent(ctx, bad); status.Code(err) != codes.InvalidArgument {
						errc <- fmt.Errorf("bad request: %v, want InvalidArgument", err)
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			for k, ids := range byKey {
				if len(ids) != 1 {
					t.Errorf("key %s answered with %d different events", k, len(ids))
				}
			}
			stored := readAll(t, cfg)
			storetest.VerifyChain(t, stored)
			want := callers*(each-3) + keys // 3 of each caller's calls use shared keys, stored once per key
			if len(stored) != want || len(acked) != want {
				t.Fatalf("%d events stored, %d acknowledged, want %d", len(stored), len(acked), want)
			}
			for _, e := range stored {
				a := acked[e.ID]
				if a == nil || a.GetSequence() != e.Sequence || !bytes.Equal(a.GetHash(), e.Hash) {
					t.Fatalf("stored event %d (%s) was answered as %v", e.Sequence, e.ID, a)
				}
			}
		})
	}
}

// readAll reads every event of the audit database of cfg.
func readAll(t *testing.T, cfg audit.Config) []*store.Event {
	t.Helper()
	h, err := db.Open(context.Background(), cfg.DB, "audit", false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var st store.Store
	if h.SQLite != nil {
		st = sqlite.New(h.SQLite)
	} else {
		st = postgres.New(h.Postgres)
	}
	es, err := st.EventList(context.Background(), store.EventListParams{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestStopLosesNoAcknowledgedEvent: the service stops (as on SIGTERM) while 64 callers append; every
// event acknowledged before or during the stop is stored with the sequence it was answered with, and
// the chain verifies.
func TestStopLosesNoAcknowledgedEvent(t *testing.T) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0"}))
			cfg.DB = dbtest.Config(t, d)
			client, stop := serveStoppable(t, cfg)
			const callers = 64
			var mu sync.Mutex
			acked := map[string]int64{}
			ackedTotal := 0
			enough := make(chan struct{})
			var once sync.Once
			var wg sync.WaitGroup
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 100000 { // bounded; ends at the first refusal once the service stops
						resp, err := client.RecordEvent(context.Background(), &auditv1.RecordEventRequest{
							Actor: fmt.Sprintf("agent-%d", c), Action: "act", Resource: fmt.Sprintf("r/%d", i), Outcome: auditv1.Outcome_OUTCOME_SUCCESS})
						if err != nil {
							return
						}
						mu.Lock()
						acked[resp.GetEvent().GetId()] = resp.GetEvent().GetSequence()
						if ackedTotal++; ackedTotal == 500 {
							once.Do(func() { close(enough) })
						}
						mu.Unlock()
					}
				}()
			}
			select {
			case <-enough: // the callers are appending concurrently: stop now
			case <-time.After(60 * time.Second):
				t.Fatal("500 events were not acknowledged within a minute")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			stored := readAll(t, cfg)
			storetest.VerifyChain(t, stored)
			bySeq := map[string]int64{}
			for _, e := range stored {
				bySeq[e.ID] = e.Sequence
			}
			for id, seq := range acked {
				if bySeq[id] != seq {
					t.Fatalf("acknowledged event %s (sequence %d) is stored at %d", id, seq, bySeq[id])
				}
			}
			t.Logf("%d acknowledged, %d stored", len(acked), len(stored))
		})
	}
}
