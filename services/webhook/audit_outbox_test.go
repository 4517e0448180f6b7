package webhook

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/auditclient"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/audit"
	"github.com/sergas/core/services/webhook/store"
)

// loopbackAddr is a free loopback address (for a server that starts later).
func loopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startAuditService serves the real audit service (SQLite) at addr until the test ends, and returns a
// client for reading what it recorded.
func startAuditService(t *testing.T, addr string) auditv1.AuditServiceClient {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := audit.LoadConfig(config.FromMap(map[string]string{"AUDIT_GRPC_ADDR": addr}))
	cfg.DB = dbtest.Config(t, db.SQLite)
	svc, err := audit.Open(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := grpcserver.New(grpcserver.Config{Addr: addr, MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, MaxConcurrentStreams: 100,
		ShutdownTimeout: 5 * time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// Its group committer does not run: each event is committed on its own, which is all a test needs.
	svc.Register(gs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = gs.Serve(ctx); close(done) }()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done; svc.Close() })
	return auditv1.NewAuditServiceClient(conn)
}

// auditClient is the webhook service's client of the audit service at addr (which may not serve yet).
func auditClient(t *testing.T, addr string) *auditclient.Client {
	t.Helper()
	c := auditclient.NewClient("")
	if err := c.Connect(addr, insecure.NewCredentials()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// runOutbox runs the server's audit outbox sender, pacing it for tests, until the test ends.
func runOutbox(t *testing.T, s *Server) {
	t.Helper()
	runOutboxPaced(t, s, 10*time.Millisecond, 100*time.Millisecond)
}

// runIdleOutbox runs the sender with a minute between idle rounds and waits for its first round (which
// finds nothing): an audit event that reaches the audit service within seconds after that was sent
// because something woke the sender.
func runIdleOutbox(t *testing.T, s *Server) {
	t.Helper()
	runOutboxPaced(t, s, time.Minute, time.Minute)
	testutil.Eventually(t, 10*time.Second, "the sender's first round", func() bool { return s.outbox.rounds.Load() > 0 })
}

// runOutboxPaced runs the sender, idle between empty rounds and backing off at most as given, until the
// test ends.
func runOutboxPaced(t *testing.T, s *Server, idle, maxBackoff time.Duration) {
	t.Helper()
	s.outbox.idle, s.outbox.maxBackoff = idle, maxBackoff
	ws := s.outboxWorkers()
	if len(ws) != 1 || ws[0].Name != outboxWorker {
		t.Fatalf("outbox workers %+v, want the sender", ws)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = ws[0].Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// deadLetter makes one event's delivery a dead letter through the RPCs (the rig's subscription allows
// no retry) and returns the delivery's id.
func deadLetter(t *testing.T, r *consumeRig) (deliveryID, eventID string) {
	t.Helper()
	eventID = r.ingest(t)
	ld := r.pollOne(t, "agent-1")
	if refused := r.nack(t, "HTTP 500 from the agent", nil, ld.GetAckId()); len(refused) != 0 {
		t.Fatalf("nack refused: %v", refused)
	}
	d := r.get(t, ld.GetDelivery().GetId())
	if d.GetStatus().String() != "DELIVERY_STATUS_DEAD_LETTER" {
		t.Fatalf("delivery after the last nack: %v", d)
	}
	return ld.GetDelivery().GetId(), eventID
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A dead letter ends up in the audit log, sent by the outbox sender: who (the service's replica), what,
// on which subscription, and the delivery's details; the outbox is empty afterwards.
func TestDeadLetterReachesAuditLog(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		addr := loopbackAddr(t)
		reader := startAuditService(t, addr)
		r := newConsumeRig(t, d, subOpts{maxRetries: 0}, WithAudit(auditClient(t, addr)))
		// The audit service refuses events far from its clock: the server's runs from now.
		r.clock.t.Store(time.Now().UnixNano())
		runOutbox(t, r.srv)
		deliveryID, eventID := deadLetter(t, r)

		var got *auditv1.Event
		testutil.Eventually(t, 30*time.Second, "the dead letter in the audit log", func() bool {
			resp, err := reader.ListEvents(context.Background(), &auditv1.ListEventsRequest{Action: store.AuditDeadLettered, PageSize: 10})
			if err != nil || len(resp.GetEvents()) == 0 {
				return false
			}
			got = resp.GetEvents()[0]
			return true
		})
		m := got.GetMetadata().AsMap()
		if got.GetResource() != "subscriptions/"+r.sub.GetId() || got.GetActor() != "sergas-webhook/"+store.Replica() ||
			got.GetActorType() != auditv1.ActorType_ACTOR_TYPE_SERVICE || got.GetOutcome() != auditv1.Outcome_OUTCOME_SUCCESS ||
			got.GetSourceService() != "sergas-webhook" {
			t.Fatalf("audit event %v", got)
		}
		if m["delivery_id"] != float64(mustAtoi(t, deliveryID)) || m["event_id"] != eventID || m["source"] != "zoho" ||
			m["attempts"] != float64(1) || m["last_error"] != "HTTP 500 from the agent" {
			t.Fatalf("audit metadata %v", m)
		}
		ob := r.srv.deliveries.(store.OutboxStore)
		testutil.Eventually(t, 10*time.Second, "the outbox empty once the event is recorded", func() bool {
			es, err := ob.OutboxList(context.Background(), 10)
			return err == nil && len(es) == 0
		})
		resp, err := reader.ListEvents(context.Background(), &auditv1.ListEventsRequest{SourceService: "sergas-webhook", PageSize: 10})
		if err != nil || len(resp.GetEvents()) != 1 {
			t.Fatalf("%d webhook events in the audit log (%v), want 1", len(resp.GetEvents()), err)
		}
	})
}

// While the audit service is down the sender keeps the entry (rounds go by, the entry stays, unparked);
// once it is up, the entry is sent and deleted.
func TestAuditOutboxWaitsForAuditService(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		addr := loopbackAddr(t) // nothing serves here yet
		r := newConsumeRig(t, d, subOpts{maxRetries: 0}, WithAudit(auditClient(t, addr)))
		r.clock.t.Store(time.Now().UnixNano())
		runOutbox(t, r.srv)
		ob := r.srv.deliveries.(store.OutboxStore)
		deadLetter(t, r)
		rounds := r.srv.outbox.rounds.Load()
		testutil.Eventually(t, 30*time.Second, "three sender rounds with the audit service down", func() bool {
			return r.srv.outbox.rounds.Load() >= rounds+3
		})
		es, err := ob.OutboxList(context.Background(), 10)
		if err != nil || len(es) != 1 || !es[0].ParkTime.IsZero() {
			t.Fatalf("outbox while the audit service is down: %+v, %v", es, err)
		}
		reader := startAuditService(t, addr)
		testutil.Eventually(t, 60*time.Second, "the dead letter in the audit log once it is up", func() bool {
			resp, err := reader.ListEvents(context.Background(), &auditv1.ListEventsRequest{Action: store.AuditDeadLettered, PageSize: 10})
			return err == nil && len(resp.GetEvents()) == 1
		})
		testutil.Eventually(t, 10*time.Second, "the outbox empty", func() bool {
			es, err := ob.OutboxList(context.Background(), 10)
			return err == nil && len(es) == 0
		})
	})
}

// Without an audit client the server runs no sender (the events wait in the outbox).
func TestNoAuditClientNoSender(t *testing.T) {
	r := newConsumeRig(t, db.SQLite, subOpts{maxRetries: 0})
	if ws := r.srv.outboxWorkers(); len(ws) != 0 {
		t.Fatalf("workers without an audit client: %+v", ws)
	}
	deadLetter(t, r)
	es, err := r.srv.deliveries.(store.OutboxStore).OutboxList(context.Background(), 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("outbox: %d entries, %v", len(es), err)
	}
	r.srv.wakeOutbox() // no sender: must not block
}
