package webhook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/groupcommit"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// gatedStore is a real store whose batch inserts record their sizes and, while the gate is closed, wait
// before their transaction begins: deliveries queued meanwhile form the next batch, deterministically.
type gatedStore struct {
	store.Store
	mu    sync.Mutex
	sizes []int
	gate  chan struct{}
}

func (g *gatedStore) EventInsertBatch(ctx context.Context, es []*store.Event) ([]store.Inserted, error) {
	g.mu.Lock()
	g.sizes = append(g.sizes, len(es))
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return g.Store.EventInsertBatch(ctx, es)
}

func (g *gatedStore) batches() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

// hold closes the gate; the returned function opens it.
func (g *gatedStore) hold() (release func()) {
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	}
}

// committer is the harness's group committer.
func (h *harness) committer(t *testing.T) *groupcommit.Committer[*store.Event, store.Inserted] {
	g, ok := h.srv.store.(*groupStore)
	if !ok {
		t.Fatal("group commit is off")
	}
	return g.c
}

// runWorkers runs the server's workers as the platform does, until the test ends.
func runWorkers(t *testing.T, s *Server) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range s.workers() {
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

type ingestAnswer struct {
	resp *webhookv1.IngestResponse
	err  error
}

// ingestBehindPlug holds the committer in the commit of one delivery (the plug), sends reqs behind it and
// releases the plug once all of them are queued: they then share one batch. It checks that no delivery
// is answered while its batch is not committed, and returns the answers in reqs' order.
func ingestBehindPlug(t *testing.T, h *harness, g *gatedStore, reqs []*webhookv1.IngestRequest) []ingestAnswer {
	t.Helper()
	ctx := from(t, "198.51.100.7")
	release := sync.OnceFunc(g.hold())
	// Should the test fail while the gate is closed, open it, so that the workers it holds can stop.
	t.Cleanup(release)
	plug := make(chan error, 1)
	go func() { _, err := h.client.Ingest(ctx, delivery(`{"plug":true}`)); plug <- err }()
	testutil.Eventually(t, 10*time.Second, "the plug is being committed", func() bool { return len(g.batches()) == 1 })
	answers := make([]ingestAnswer, len(reqs))
	answered := make(chan int, len(reqs))
	for i, req := range reqs {
		go func() {
			resp, err := h.client.Ingest(ctx, req)
			answers[i] = ingestAnswer{resp, err}
			answered <- i
		}()
	}
	c := h.committer(t)
	testutil.Eventually(t, 10*time.Second, "every delivery is queued", func() bool { return c.Queued() == len(reqs) })
	select {
	case i := <-answered:
		t.Fatalf("delivery %d answered before its batch was committed", i)
	default:
	}
	release()
	if err := <-plug; err != nil {
		t.Fatalf("plug: %v", err)
	}
	for range reqs {
		<-answered
	}
	return answers
}

func startGroupCommitted(t *testing.T, d db.Dialect) (*harness, *gatedStore, func(q string)) {
	st, exec := storeWithSQL(t, d)
	g := &gatedStore{Store: st}
	h := startServiceOn(t, g, map[string]string{"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0"},
		withGroupCommit(groupcommit.Config{MaxBatch: 64, Window: time.Millisecond}))
	runWorkers(t, h.srv)
	// Until the worker runs, deliveries commit alone on their callers' goroutines: a plug sent then would
	// not hold the committer, and the deliveries behind it would form a batch of their own.
	c := h.committer(t)
	testutil.Eventually(t, 10*time.Second, "the committer runs", c.Running)
	return h, g, exec
}

// Concurrent deliveries of one webhook in one batch store one event: one answer says stored, the others
// duplicate, every one names that event.
func TestGroupCommitConcurrentDuplicatesStoreOne(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h, g, _ := startGroupCommitted(t, d)
		reqs := make([]*webhookv1.IngestRequest, 12)
		for i := range reqs {
			reqs[i] = delivery(`{"same":"delivery"}`)
		}
		answers := ingestBehindPlug(t, h, g, reqs)
		if b := g.batches(); len(b) != 2 || b[1] != len(reqs) {
			t.Fatalf("batches %v: want the plug, then all %d deliveries in one", b, len(reqs))
		}
		stored := 0
		for i, a := range answers {
			if a.err != nil {
				t.Fatalf("delivery %d: %v", i, a.err)
			}
			if a.resp.GetEventId() != answers[0].resp.GetEventId() {
				t.Fatalf("deliveries of one webhook answered with two events: %s and %s", a.resp.GetEventId(), answers[0].resp.GetEventId())
			}
			if !a.resp.GetDuplicate() {
				stored++
			}
		}
		if stored != 1 {
			t.Fatalf("%d deliveries answered as stored, want 1", stored)
		}
		list, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{PageSize: 100})
		if err != nil || len(list.GetEvents()) != 2 {
			t.Fatalf("listed %d events (%v), want the plug and one", len(list.GetEvents()), err)
		}
	})
}

// A delivery the database refuses fails alone; every other delivery of its batch is stored and answered
// with its own event, readable (committed) as soon as it is answered.
func TestGroupCommitOneRefusedDeliveryFailsAlone(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		h, g, exec := startGroupCommitted(t, d)
		// A trigger makes the database itself refuse one body, as it would refuse a row it cannot store.
		if d == db.SQLite {
			exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.payload = CAST('poison' AS BLOB)
				BEGIN SELECT RAISE(ABORT, 'poison'); END`)
		} else {
			exec(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.payload = 'poison'::bytea THEN RAISE EXCEPTION 'poison'; END IF; RETURN NEW; END $$`)
			exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison()`)
		}
		reqs := make([]*webhookv1.IngestRequest, 9)
		for i := range reqs {
			reqs[i] = delivery(fmt.Sprintf(`{"n":%d}`, i))
		}
		const bad = 5
		reqs[bad] = delivery("poison")
		answers := ingestBehindPlug(t, h, g, reqs)
		if b := g.batches(); len(b) < 3 || b[1] != len(reqs) {
			t.Fatalf("batches %v: want all %d deliveries tried in one, then in parts", b, len(reqs))
		}
		ids := map[string]bool{}
		for i, a := range answers {
			if i == bad {
				if status.Code(a.err) != codes.Internal {
					t.Fatalf("the refused delivery: %v, want INTERNAL (the sender retries)", a.err)
				}
				continue
			}
			if a.err != nil || a.resp.GetDuplicate() {
				t.Fatalf("delivery %d failed with the refused one: %v", i, a.err)
			}
			if ids[a.resp.GetEventId()] {
				t.Fatalf("two deliveries answered with event %s", a.resp.GetEventId())
			}
			ids[a.resp.GetEventId()] = true
			got, err := h.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: a.resp.GetEventId()})
			if err != nil || string(got.GetEvent().GetPayload()) != string(reqs[i].GetBody()) {
				t.Fatalf("delivery %d answered with event %s, which holds %q (%v)", i, a.resp.GetEventId(), got.GetEvent().GetPayload(), err)
			}
		}
		list, err := h.client.ListEvents(t.Context(), &webhookv1.ListEventsRequest{PageSize: 100})
		if err != nil || len(list.GetEvents()) != len(reqs) { // the plug and every delivery but the refused one
			t.Fatalf("listed %d events (%v), want %d", len(list.GetEvents()), err, len(reqs))
		}
	})
}

// Open turns group commit on and declares its worker, so that the platform runs it.
func TestOpenRunsTheGroupCommitter(t *testing.T) {
	env := config.FromMap(map[string]string{"SERGAS_ENV": "development", "DATA_DIR": t.TempDir(), "WEBHOOK_SOURCES": "zoho:none"})
	cfg := LoadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	svc, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if _, on := svc.server.store.(*groupStore); !on {
		t.Fatal("Open serves without group commit")
	}
	var names []string
	for _, w := range svc.Background().Workers {
		names = append(names, w.Name)
	}
	if len(names) < 2 || names[0] != groupCommitWorker || !slices.Contains(names, "webhook.channel_renewer") ||
		!slices.Contains(names, "webhook.push.1") || !slices.Contains(names, "webhook.retention_purger") {
		t.Fatalf("workers %v, want %s first, the push workers and the channel renewer", names, groupCommitWorker)
	}
}
