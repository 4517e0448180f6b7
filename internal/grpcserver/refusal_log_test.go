package grpcserver

import (
	"bytes"
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
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A flood of refused calls writes a sampled handful of lines, and the lines say how many were left out;
// other failures are still logged one by one.
func TestRefusalLogLinesAreSampled(t *testing.T) {
	var buf lockedBuffer
	s, err := New(Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, ShutdownTimeout: 5 * time.Second},
		slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	reply := status.Error(codes.Unauthenticated, "missing credentials")
	s.Register(&probeDesc, &probe{do: func(context.Context) error { mu.Lock(); defer mu.Unlock(); return reply }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx) }()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
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
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "refusals_not_logged=") {
		if time.Now().After(deadline) {
			t.Fatal("no line reports the refusals left out")
		}
		_ = call(t.Context(), conn)
		time.Sleep(50 * time.Millisecond) // bounded by the deadline; waits for the sampler to refill
	}
}
