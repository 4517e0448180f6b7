package grpcserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/clientaddr"
)

// The per-call cost of the shared stack: the same no-op RPC over loopback, served by a bare grpc.Server,
// by this package's server (the observing interceptor) and by this package's server behind the guard as
// internal/app builds it (API key, scope, limiter, client address), all with a real client in the same
// process. The differences are what every service's calls pay on top of gRPC itself:
//
//	go test -run '^$' -bench CallCost -benchmem -cpu 2 ./internal/grpcserver

const benchMethod = "/test.Bench/Noop"

var benchDesc = grpc.ServiceDesc{
	ServiceName: "test.Bench",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Noop",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, nil }
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: benchMethod}, h)
		},
	}},
}

func BenchmarkCallCost(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	b.Run("bare", func(b *testing.B) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := grpc.NewServer()
		srv.RegisterService(&benchDesc, struct{}{})
		go func() { _ = srv.Serve(lis) }()
		defer srv.Stop()
		runCalls(b, lis.Addr().String(), "")
	})
	b.Run("observe", func(b *testing.B) {
		runCalls(b, startBench(b, log), "")
	})
	b.Run("guarded", func(b *testing.B) {
		key, err := auth.NewAPIKey("bench")
		if err != nil {
			b.Fatal(err)
		}
		sec, err := auth.Config{
			APIKeys: fmt.Sprintf(`{"keys":[{"id":"bench","sha256":%q,"scopes":["token:read"]}]}`, auth.HashAPIKey(key)),
			Limits:  auth.Limits{Read: auth.Rate{PerSecond: 1e6, Burst: 1e6}, Failures: auth.DefaultLimits.Failures},
		}.Build(log)
		if err != nil {
			b.Fatal(err)
		}
		trusted, _ := clientaddr.Parse(clientaddr.Loopback)
		policy := auth.Merge(auth.Policy{Scopes: map[string]string{benchMethod: auth.ScopeTokenRead}}, auth.Policy{Public: auth.InfrastructurePublic})
		guard := auth.NewGuard(sec.Authenticator, policy, sec.Limits, trusted, nil)
		runCalls(b, startBench(b, log, grpc.ChainUnaryInterceptor(guard.Unary), grpc.ChainStreamInterceptor(guard.Stream)), key)
	})
}

func startBench(b *testing.B, log *slog.Logger, opts ...grpc.ServerOption) string {
	s, err := New(Config{Addr: "127.0.0.1:0", MaxRecvBytes: 4 << 20, MaxSendBytes: 4 << 20, ShutdownTimeout: time.Second, MaxConcurrentStreams: 1000}, log, opts...)
	if err != nil {
		b.Fatal(err)
	}
	s.Register(&benchDesc, struct{}{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return s.Addr()
}

// runCalls makes b.N no-op calls over one connection from parallel callers (16 per GOMAXPROCS).
func runCalls(b *testing.B, addr, key string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	if key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	if err := conn.Invoke(ctx, benchMethod, &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := conn.Invoke(ctx, benchMethod, &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkInterceptors runs the observing interceptor and the guard around a no-op handler without a
// network: the CPU our stack adds to each call, with little of the noise of a loopback benchmark.
func BenchmarkInterceptors(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	key, err := auth.NewAPIKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	sec, err := auth.Config{
		APIKeys: fmt.Sprintf(`{"keys":[{"id":"bench","sha256":%q,"scopes":["token:read"]}]}`, auth.HashAPIKey(key)),
		Limits:  auth.Limits{Read: auth.Rate{PerSecond: 1e6, Burst: 1e6}, Failures: auth.DefaultLimits.Failures},
	}.Build(log)
	if err != nil {
		b.Fatal(err)
	}
	trusted, _ := clientaddr.Parse(clientaddr.Loopback)
	policy := auth.Merge(auth.Policy{Scopes: map[string]string{benchMethod: auth.ScopeTokenRead}}, auth.Policy{Public: auth.InfrastructurePublic})
	guard := auth.NewGuard(sec.Authenticator, policy, sec.Limits, trusted, nil)
	s, err := New(Config{Addr: "127.0.0.1:0"}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer s.lis.Close()
	o := newObserve(log, s.report)
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+key, "content-type", "application/grpc", "user-agent", "grpc-go"))
	info := &grpc.UnaryServerInfo{FullMethod: benchMethod}
	handler := func(ctx context.Context, req any) (any, error) {
		return guard.Unary(ctx, req, info, func(ctx context.Context, req any) (any, error) { return req, nil })
	}
	req := &emptypb.Empty{}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := o.unary(ctx, req, info, handler); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// reportCPU reports the process's CPU time (user + system) per operation, from now until the returned
// function runs: on a shared machine wall time per operation mostly measures the other processes.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
