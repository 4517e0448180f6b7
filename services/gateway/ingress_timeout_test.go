package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// hangingWebhook never answers Ingest: it reports the call's context once the gateway cuts it.
type hangingWebhook struct {
	webhookv1.UnimplementedWebhookServiceServer
	cut chan error
}

func (h hangingWebhook) Ingest(ctx context.Context, _ *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	select {
	case <-ctx.Done():
		h.cut <- ctx.Err()
	case <-time.After(30 * time.Second): // bounded: the test fails long before
	}
	return nil, ctx.Err()
}

// serveIngestStack starts the gateway's real Serve with a 1 s request timeout in front of svc and
// returns the gateway's address.
func serveIngestStack(t *testing.T, svc webhookv1.WebhookServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	webhookv1.RegisterWebhookServiceServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	closed := closedAddr(t)
	g := newGateway(t, map[string]string{"GATEWAY_HTTP_ADDR": "127.0.0.1:0", "GATEWAY_REQUEST_TIMEOUT": "1s",
		"TOKEN_GRPC_ENDPOINT": closed, "AUDIT_GRPC_ENDPOINT": closed, "WEBHOOK_GRPC_ENDPOINT": lis.Addr().String()}, lis.Addr().String(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() { cancel(); <-served })
	return within(t, 10*time.Second, "gateway listening", addr)
}

// A delivery whose webhook service does not answer is cut at GATEWAY_REQUEST_TIMEOUT: the call's
// context ends at the service and the sender gets 503 (retry), as under http.TimeoutHandler.
func TestIngestCutAtTheRequestTimeoutWhenTheServiceHangs(t *testing.T) {
	t.Parallel()
	h := hangingWebhook{cut: make(chan error, 1)}
	addr := serveIngestStack(t, h)
	type answer struct {
		code int
		body string
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		start := time.Now()
		resp, err := http.Post("http://"+addr+"/webhooks/zoho", "application/json", strings.NewReader("{}"))
		if err != nil {
			done <- answer{code: -1, body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, string(b), time.Since(start)}
	}()
	a := within(t, 10*time.Second, "the answer", done)
	if a.code != http.StatusServiceUnavailable || !strings.Contains(a.body, "request timed out") {
		t.Fatalf("answer %d %s; want 503 request timed out", a.code, a.body)
	}
	if a.took > 5*time.Second {
		t.Errorf("answered after %s with a 1 s request timeout", a.took)
	}
	if err := within(t, 5*time.Second, "the service's call cut", h.cut); err == nil {
		t.Error("the service's call was not cut")
	}
}

// A sender that sends its body too slowly is cut at GATEWAY_REQUEST_TIMEOUT (the server's ReadTimeout)
// and answered 408; the old code answered 400 "could not read request body" (or TimeoutHandler's 503).
func TestIngestCutsASlowBodyWith408(t *testing.T) {
	t.Parallel()
	addr := serveIngestStack(t, scriptedWebhook{})
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Ten bytes announced, two sent, the rest never.
	if _, err := conn.Write([]byte("POST /webhooks/zoho HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{\"")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("answer %d %s; want 408", resp.StatusCode, b)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("answered after %s with a 1 s request timeout", took)
	}
}

// timedOut counts a call cut at the request's deadline as the timeout even when the service's reset
// arrives before the gateway's own timer fires, and nothing else.
func TestTimedOut(t *testing.T) {
	soon, cancelSoon := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelSoon()
	later, cancelLater := context.WithTimeout(context.Background(), time.Minute)
	defer cancelLater()
	expired, cancelExpired := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancelExpired()
	<-expired.Done()
	reset := status.Error(codes.Canceled, "stream terminated by RST_STREAM with error code: CANCEL")
	for _, c := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"context expired", expired, status.Error(codes.Unavailable, "x"), true},
		{"reset at the deadline", soon, reset, true},
		{"deadline exceeded at the deadline", soon, status.Error(codes.DeadlineExceeded, "x"), true},
		{"reset long before the deadline", later, reset, false},
		{"another failure at the deadline", soon, status.Error(codes.Unavailable, "x"), false},
		{"no deadline", context.Background(), reset, false},
	} {
		if got := timedOut(c.ctx, c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
