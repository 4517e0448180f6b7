package webhook

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/clientaddr"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/services/webhook/store"
	"github.com/sergas/core/services/webhook/store/postgres"
	"github.com/sergas/core/services/webhook/store/sqlite"
)

// harness is a webhook service on a real database, served over gRPC on loopback, with a clock that
// stands still so that rate limits refill only when a test says so.
type harness struct {
	srv    *Server
	client webhookv1.WebhookServiceClient
	clock  *testClock
}

// testClock is the server's clock: it stands still until a test moves it.
type testClock struct{ t atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.t.Load()).UTC() }
func (c *testClock) advance(d time.Duration) { c.t.Add(int64(d)) }
func newTestClock(start time.Time) *testClock {
	c := &testClock{}
	c.t.Store(start.UnixNano())
	return c
}

// eachBackend runs fn as a parallel subtest on SQLite and on PostgreSQL.
func eachBackend(t *testing.T, fn func(t *testing.T, d db.Dialect)) {
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) { t.Parallel(); fn(t, d) })
	}
}

func startService(t *testing.T, d db.Dialect, env map[string]string) *harness {
	t.Helper()
	return startServiceOn(t, newStore(t, d), env)
}

func newStore(t testing.TB, d db.Dialect) store.Store {
	t.Helper()
	h := dbtest.Open(t, d, "webhook")
	if d == db.SQLite {
		return sqlite.New(h.SQLite)
	}
	return postgres.New(h.Postgres)
}

// startServiceOn serves st with the configuration env describes.
func startServiceOn(t *testing.T, st store.Store, env map[string]string, opts ...Option) *harness {
	t.Helper()
	if _, ok := env["CLIENT_ADDR_SECRET"]; !ok {
		env["CLIENT_ADDR_SECRET"] = testAddrSecret
	}
	_, list := env["WEBHOOK_SOURCES"]
	if _, file := env["WEBHOOK_SOURCES_FILE"]; !list && !file {
		env["WEBHOOK_SOURCES"] = "zoho:none"
	}
	e := config.FromMap(env)
	cfg := LoadConfig(e)
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(st, cfg, opts...)
	clock := newTestClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	srv.now = clock.now
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gs, err := grpcserver.New(grpcserver.Config{Addr: "127.0.0.1:0", MaxRecvBytes: 4 << 20, MaxSendBytes: 4 << 20,
		ShutdownTimeout: 5 * time.Second, MaxConcurrentStreams: 100}, log)
	if err != nil {
		t.Fatal(err)
	}
	gs.Register(&webhookv1.WebhookService_ServiceDesc, srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop in 10s")
		}
	})
	conn, err := grpc.NewClient(gs.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &harness{srv: srv, client: webhookv1.NewWebhookServiceClient(conn), clock: clock}
}

// testAddrSecret is the harness's CLIENT_ADDR_SECRET unless a test sets its own.
var testAddrSecret = strings.Repeat("5e", 32)

// from is a context whose RPCs report addr as the sender, the way the gateway does: with a proof.
func from(t *testing.T, addr string) context.Context {
	key, _ := hex.DecodeString(testAddrSecret)
	return clientaddr.Outgoing(t.Context(), addr, key)
}

// fromUnproven reports addr without a proof, as any other peer on a trusted network could.
func fromUnproven(t *testing.T, addr string) context.Context {
	return metadata.AppendToOutgoingContext(t.Context(), clientaddr.MetadataKey, addr)
}

func delivery(body string, headers ...string) *webhookv1.IngestRequest {
	req := &webhookv1.IngestRequest{Source: "zoho", Body: []byte(body)}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Headers = append(req.Headers, &webhookv1.Header{Name: headers[i], Values: []string{headers[i+1]}})
	}
	return req
}
