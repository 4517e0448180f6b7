package grpcserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/testutil"
)

// probe is a one-method service whose behaviour the test sets per call.
type probe struct {
	do func(ctx context.Context) error
}

var probeDesc = grpc.ServiceDesc{
	ServiceName: "test.Probe",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, _ any) (any, error) { return &emptypb.Empty{}, srv.(*probe).do(ctx) }
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Probe/Call"}, h)
		},
	}},
}

func startProbe(t *testing.T, p *probe) (*Server, *grpc.ClientConn, context.CancelFunc, chan error) {
	t.Helper()
	s, err := New(Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, ShutdownTimeout: 5 * time.Second},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Register(&probeDesc, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); conn.Close() })
	return s, conn, cancel, done
}

func call(ctx context.Context, conn *grpc.ClientConn) error {
	return conn.Invoke(ctx, "/test.Probe/Call", &emptypb.Empty{}, &emptypb.Empty{})
}

func TestErrorsBecomeSafeStatusCodes(t *testing.T) {
	cases := []struct {
		err      error
		code     codes.Code
		msg      string
		mustHide string
	}{
		{errs.NotFound("connection zoho/x not found"), codes.NotFound, "connection zoho/x not found", ""},
		{errs.Invalid("page_size must be between 0 and 1000"), codes.InvalidArgument, "page_size", ""},
		{errs.Wrap(errs.KindUnavailable, errors.New("dial tcp 10.1.2.3:5432: password=hunter2"), "database unavailable"), codes.Unavailable, "database unavailable", "hunter2"},
		{errs.Wrap(errs.KindInternal, errors.New("/var/lib/data/token.db: disk I/O error"), "database error"), codes.Internal, "internal error", "/var/lib"},
		{errors.New("sql: driver said secret things"), codes.Internal, "internal error", "secret"},
		{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline", ""},
		{errs.New(errs.KindConflict, "retry"), codes.Aborted, "retry", ""},
		{errs.New(errs.KindResourceExhausted, "slow down"), codes.ResourceExhausted, "slow down", ""},
		{status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied, "no", ""},
	}
	p := &probe{}
	_, conn, _, _ := startProbe(t, p)
	for _, c := range cases {
		p.do = func(context.Context) error { return c.err }
		err := call(t.Context(), conn)
		st, _ := status.FromError(err)
		if st.Code() != c.code || !strings.Contains(st.Message(), c.msg) || (c.mustHide != "" && strings.Contains(st.Message(), c.mustHide)) {
			t.Errorf("%v became %v %q", c.err, st.Code(), st.Message())
		}
	}
}

func TestPanicBecomesInternalAndServerSurvives(t *testing.T) {
	p := &probe{do: func(context.Context) error { panic("boom at /secret/path") }}
	_, conn, _, _ := startProbe(t, p)
	err := call(t.Context(), conn)
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "secret") {
		t.Fatalf("panic gave %v", err)
	}
	p.do = func(context.Context) error { return nil }
	if err := call(t.Context(), conn); err != nil {
		t.Fatalf("server did not survive the panic: %v", err)
	}
}

func TestGracefulStopDrainsInFlightAndFlipsHealth(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := &probe{do: func(context.Context) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	}}
	s, conn, cancel, done := startProbe(t, p)
	health := healthpb.NewHealthClient(conn)
	if r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "test.Probe"}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before stop: %v %v", r, err)
	}
	inflight := make(chan error, 1)
	go func() { inflight <- call(context.Background(), conn) }()
	<-started
	cancel()
	// Serving stops being advertised while the in-flight call is still running.
	testutil.Eventually(t, 5*time.Second, "health NOT_SERVING once the stop began", func() bool {
		r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "test.Probe"})
		return err != nil || r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING
	})
	// Health is NOT_SERVING, so the stop has begun; the handler is still held, so Serve must still be
	// waiting for it. (That the call then succeeds is what proves it was drained, not cut.)
	select {
	case <-done:
		t.Fatal("Serve returned before the in-flight call finished")
	case err := <-inflight:
		t.Fatalf("the in-flight call ended before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-inflight; err != nil {
		t.Fatalf("in-flight call failed during graceful stop: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	_ = s
}

func TestWatchHealthFollowsDependency(t *testing.T) {
	s, conn, _, _ := startProbe(t, &probe{do: func(context.Context) error { return nil }})
	var mu sync.Mutex
	failing := true
	go s.WatchHealth(t.Context(), 20*time.Millisecond, func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("database gone")
		}
		return nil
	}, nil)
	health := healthpb.NewHealthClient(conn)
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		testutil.Eventually(t, 5*time.Second, "health "+want.String(), func() bool {
			r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "test.Probe"})
			return err == nil && r.GetStatus() == want
		})
	}
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING)
	mu.Lock()
	failing = false
	mu.Unlock()
	waitFor(healthpb.HealthCheckResponse_SERVING)
}
