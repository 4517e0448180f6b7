package app

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/testutil"
)

// fakeService answers its one RPC with whatever the store would say.
type fakeService struct {
	mu    sync.Mutex
	err   error
	pings int
}

func (f *fakeService) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }
func (f *fakeService) get() error    { f.mu.Lock(); defer f.mu.Unlock(); return f.err }

func (f *fakeService) Register(s *grpcserver.Server) {
	s.Register(&grpc.ServiceDesc{ServiceName: "test.Store", HandlerType: (*any)(nil), Methods: []grpc.MethodDesc{{
		MethodName: "Get",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, f.get() }
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Store/Get"}, h)
		},
	}}}, f)
}
func (f *fakeService) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pings++
	return f.err
}
func (f *fakeService) Close() error        { return nil }
func (f *fakeService) Policy() auth.Policy { return auth.Policy{Public: []string{"/test.Store/Get"}} }

// A service served by Serve reports NOT_SERVING as soon as a request finds the database gone (as the
// store reports it: a connection lost mid-query) and SERVING as soon as requests succeed again, long
// before the periodic ping (5 s) would notice either.
func TestServeHealthFollowsStoreOutages(t *testing.T) {
	f := &fakeService{}
	rt := &Runtime{Security: &auth.Security{Authenticator: &auth.Authenticator{Disabled: true}, Limits: auth.NewLimiters(auth.DefaultLimits)}}
	cfg := ServiceConfig{Name: "probe", GRPC: grpcserver.Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 20, MaxSendBytes: 1 << 20, ShutdownTimeout: 5 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, cfg, rt, slog.New(slog.NewTextHandler(io.Discard, nil)), f, func(a string) { addr <- a })
	}()
	defer func() { cancel(); <-done }()
	var target string
	select {
	case target = <-addr:
	case err := <-done:
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	get := func() error { return conn.Invoke(t.Context(), "/test.Store/Get", &emptypb.Empty{}, &emptypb.Empty{}) }
	health := healthpb.NewHealthClient(conn)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		r, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "test.Store"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	// Serve flips SERVING right after it returns the address.
	testutil.Eventually(t, 5*time.Second, "SERVING", func() bool { return check() == healthpb.HealthCheckResponse_SERVING })
	f.set(db.PostgresError(io.ErrUnexpectedEOF))
	if err := get(); status.Code(err) != codes.Unavailable {
		t.Fatalf("precondition: the request answered %v", err)
	}
	if got := check(); got != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health %v right after a request found the database gone", got)
	}
	f.set(nil)
	start := time.Now()
	if err := get(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second-time.Since(start), "SERVING within 2 s of the database answering again",
		func() bool { return check() == healthpb.HealthCheckResponse_SERVING })
	t.Logf("SERVING again %v after the first successful request", time.Since(start).Round(time.Millisecond))
}
