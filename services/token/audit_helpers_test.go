package token_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/token/store"
)

// startAudit serves a real audit service (SQLite) at addr and returns a client of it; it stops when
// the test ends.
func startAudit(t *testing.T, addr string) auditv1.AuditServiceClient {
	t.Helper()
	acfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": addr}))
	acfg.DB = dbtest.Config(t, db.SQLite)
	asvc, err := audit.Open(context.Background(), acfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := grpcserver.New(grpcserver.Config{Addr: addr, MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, MaxConcurrentStreams: 100, ShutdownTimeout: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	asvc.Register(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx); close(done) }()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done; asvc.Close() })
	return auditv1.NewAuditServiceClient(conn)
}

// waitFor is testutil.Eventually, kept under the name the token tests use.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

// fakeAudit stands in for the audit client: it counts deliveries per idempotency key, can be held back
// until the test says go, and refuses what refuse says.
type fakeAudit struct {
	ready  chan struct{}
	delay  time.Duration
	refuse func(*auditv1.RecordEventRequest) error

	mu     sync.Mutex
	got    map[string]int
	calls  int
	errors int
}

func newFakeAudit() *fakeAudit { return &fakeAudit{ready: make(chan struct{}), got: map[string]int{}} }

func (f *fakeAudit) Ready() <-chan struct{} { return f.ready }

func (f *fakeAudit) Record(ctx context.Context, req *auditv1.RecordEventRequest) error {
	if f.delay > 0 {
		time.Sleep(f.delay) // the audit service's latency, which widens any window for double sends
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.refuse != nil {
		if err := f.refuse(req); err != nil {
			f.errors++
			return err
		}
	}
	f.got[req.GetIdempotencyKey()]++
	return nil
}

func (f *fakeAudit) counts() (distinct, calls, errors int, dup []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range f.got {
		if n > 1 {
			dup = append(dup, k)
		}
	}
	return len(f.got), f.calls, f.errors, dup
}

// queueEvents puts n audit events for connection id straight into the outbox, as earlier writes would
// have; actor overrides the actor of the events for which it returns non-empty.
func queueEvents(t *testing.T, st store.Store, id string, n int, actor func(i int) string) {
	t.Helper()
	var out []store.OutboxEntry
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range n {
		a := "sergas-token/test"
		if actor != nil && actor(i) != "" {
			a = actor(i)
		}
		payload, err := proto.Marshal(&auditv1.RecordEventRequest{Actor: a, Action: "token.test", Resource: "zoho/" + id,
			Outcome: auditv1.Outcome_OUTCOME_SUCCESS, OccurTime: timestamppb.New(now)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, store.OutboxEntry{IdempotencyKey: id + "-" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Payload: payload, CreateTime: now})
	}
	queueEntries(t, st, id, out)
}

// queueEntries puts outbox entries straight into the outbox.
func queueEntries(t *testing.T, st store.Store, id string, out []store.OutboxEntry) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	// A connection put and deleted again: the delete queues the events in its transaction, and leaves
	// no row sealed with a made-up key behind for the service's start-up key check.
	c := &store.Connection{Provider: "zoho", ConnectionID: id, KeyID: "k1", AccessToken: []byte("x"), TokenType: "Bearer",
		ExpireTime: now.Add(time.Hour), Status: store.StatusActive, CreateTime: now, UpdateTime: now}
	if _, err := st.ConnectionPut(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.ConnectionDelete(context.Background(), store.Key{Provider: "zoho", ConnectionID: id}, nil, out); err != nil {
		t.Fatal(err)
	}
}
