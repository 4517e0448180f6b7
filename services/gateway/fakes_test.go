package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
)

// call is one RPC that reached a stand-in service.
type call struct {
	method string
	md     metadata.MD
	req    proto.Message
}

// recorder collects the calls that reach the stand-ins.
type recorder struct {
	mu    sync.Mutex
	calls []call
	// answer, when set, decides the answer of every call (nil error: an empty success).
	answer func(ctx context.Context, method string) error
}

func (r *recorder) record(ctx context.Context, method string, req proto.Message) error {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	r.calls = append(r.calls, call{method, md, req})
	answer := r.answer
	r.mu.Unlock()
	if answer != nil {
		return answer(ctx, method)
	}
	return nil
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// fakeToken and fakeWebhook stand in for the services: they record what the gateway sends.
type fakeToken struct {
	tokenv1.UnimplementedTokenServiceServer
	*recorder
}

func (f fakeToken) ListConnections(ctx context.Context, req *tokenv1.ListConnectionsRequest) (*tokenv1.ListConnectionsResponse, error) {
	return &tokenv1.ListConnectionsResponse{}, f.record(ctx, "ListConnections", req)
}

func (f fakeToken) GetConnection(ctx context.Context, req *tokenv1.GetConnectionRequest) (*tokenv1.GetConnectionResponse, error) {
	return &tokenv1.GetConnectionResponse{}, f.record(ctx, "GetConnection", req)
}

func (f fakeToken) CreateConnection(ctx context.Context, req *tokenv1.CreateConnectionRequest) (*tokenv1.CreateConnectionResponse, error) {
	return &tokenv1.CreateConnectionResponse{}, f.record(ctx, "CreateConnection", req)
}

func (f fakeToken) DeleteConnection(ctx context.Context, req *tokenv1.DeleteConnectionRequest) (*tokenv1.DeleteConnectionResponse, error) {
	return &tokenv1.DeleteConnectionResponse{}, f.record(ctx, "DeleteConnection", req)
}

func (f fakeToken) ListRefreshEvents(ctx context.Context, req *tokenv1.ListRefreshEventsRequest) (*tokenv1.ListRefreshEventsResponse, error) {
	return &tokenv1.ListRefreshEventsResponse{}, f.record(ctx, "ListRefreshEvents", req)
}

type fakeWebhook struct {
	webhookv1.UnimplementedWebhookServiceServer
	*recorder
}

func (f fakeWebhook) Ingest(ctx context.Context, req *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	return &webhookv1.IngestResponse{EventId: "e1"}, f.record(ctx, "Ingest", req)
}

// serveFakes serves the stand-ins on a loopback gRPC listener and returns its address.
func serveFakes(t *testing.T, rec *recorder) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tokenv1.RegisterTokenServiceServer(srv, fakeToken{recorder: rec})
	webhookv1.RegisterWebhookServiceServer(srv, fakeWebhook{recorder: rec})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newGateway builds a gateway for env (every service at addr unless env says otherwise) whose log goes
// to logs (nil: discarded).
func newGateway(t *testing.T, env map[string]string, addr string, logs io.Writer) *Gateway {
	t.Helper()
	m := map[string]string{"TOKEN_GRPC_ENDPOINT": addr, "AUDIT_GRPC_ENDPOINT": addr, "WEBHOOK_GRPC_ENDPOINT": addr}
	for k, v := range env {
		m[k] = v
	}
	e := config.FromMap(m)
	cfg := LoadConfig(e)
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	if logs == nil {
		logs = io.Discard
	}
	g, err := New(t.Context(), cfg, slog.New(slog.NewJSONHandler(logs, nil)), insecure.NewCredentials(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// serveHTTP serves g's handler on loopback and returns its base URL.
func serveHTTP(t *testing.T, g *Gateway) string {
	t.Helper()
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// send makes one request and returns the status, headers and body.
func send(t *testing.T, method, url, body string, headers ...string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
