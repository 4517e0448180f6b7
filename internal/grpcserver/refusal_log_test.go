package grpcserver

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/testutil"
)

// A flood of refused calls writes a sampled handful of lines, and the lines say how many were left out;
// other failures are still logged one by one.
func TestRefusalLogLinesAreSampled(t *testing.T) {
	var buf testutil.LogBuffer
	var mu sync.Mutex
	reply := status.Error(codes.Unauthenticated, "missing credentials")
	conn := startLogged(t, &buf, func(context.Context) error { mu.Lock(); defer mu.Unlock(); return reply })
	const flood = 500
	refused := 0
	for range flood {
		if status.Code(call(t.Context(), conn)) == codes.Unauthenticated {
			refused++
		}
	}
	if refused != flood {
		t.Fatalf("precondition: %d of %d calls refused", refused, flood)
	}
	mu.Lock()
	reply = status.Error(codes.NotFound, "no such thing")
	mu.Unlock()
	for range 20 {
		_ = call(t.Context(), conn)
	}
	logs := buf.String()
	lines := strings.Count(logs, "code=Unauthenticated")
	if lines == 0 || lines > RefusalLogBurst+5 {
		t.Fatalf("%d log lines for %d refused calls, want between 1 and about %d", lines, flood, RefusalLogBurst)
	}
	if n := strings.Count(logs, "code=NotFound"); n != 20 {
		t.Fatalf("%d log lines for 20 NotFound calls; only refusals are sampled", n)
	}
	// The first line after the flood that is let through reports how many were left out.
	mu.Lock()
	reply = status.Error(codes.PermissionDenied, "no")
	mu.Unlock()
	// Each check makes one more refused call; the sampler refills once a second.
	testutil.Eventually(t, 5*time.Second, "a line reporting the refusals left out", func() bool {
		_ = call(t.Context(), conn)
		return strings.Contains(buf.String(), "refusals_not_logged=")
	})
}

// The reviewer's P3: behind the gateway the connection's peer is the gateway's socket; the refusal's
// log line names the client's address as the guard found it, even though the refused call never
// reached a handler.
func TestRefusalLogLineNamesTheClient(t *testing.T) {
	var buf testutil.LogBuffer
	guard := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		auth.WithClientAddr(ctx, "203.0.113.9") // what the guard does with the gateway's report
		return nil, status.Error(codes.PermissionDenied, "no")
	}
	conn := startLogged(t, &buf, func(context.Context) error { return nil }, grpc.ChainUnaryInterceptor(guard))
	if c := status.Code(call(t.Context(), conn)); c != codes.PermissionDenied {
		t.Fatalf("precondition: the guard did not refuse: %v", c)
	}
	line := buf.String()
	if !strings.Contains(line, "client=203.0.113.9") || !strings.Contains(line, "peer=127.0.0.1:") {
		t.Fatalf("refusal line does not name both the client and the peer: %q", line)
	}
}

// startLogged serves the probe, answering with do, logging to buf, and returns a connection to it.
func startLogged(t *testing.T, buf *testutil.LogBuffer, do func(context.Context) error, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	return serveProbe(t, slog.New(slog.NewTextHandler(buf, nil)), do, opts...)
}

// serveProbe serves the probe, answering with do, logging to log, and returns a connection to it.
func serveProbe(t *testing.T, log *slog.Logger, do func(context.Context) error, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, ShutdownTimeout: 5 * time.Second},
		log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.Register(&probeDesc, &probe{do: do})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = s.Serve(ctx) }()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
