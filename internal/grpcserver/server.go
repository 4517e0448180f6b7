package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/sergas/core/internal/logging"
	"github.com/sergas/core/internal/telemetry"
)

// RefusalLogsPerSecond and RefusalLogBurst bound the log lines of refused calls per server; the lines
// left out are counted in the next one (refusals_not_logged).
const (
	RefusalLogsPerSecond = 1
	RefusalLogBurst      = 10
)

// Server is a gRPC server bound to its listener.
type Server struct {
	cfg    Config
	log    *slog.Logger
	lis    net.Listener
	grpc   *grpc.Server
	health *health.Server
	names  []string
}

// New opens the listener (so that a port clash fails at start, not at first request) and builds the
// server with health, reflection and the observing interceptor.
func New(cfg Config, log *slog.Logger, opts ...grpc.ServerOption) (*Server, error) {
	lis, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	o := observe{log: log, metrics: telemetry.GRPC(), refusals: logging.NewSampler(RefusalLogsPerSecond, RefusalLogBurst)}
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.MaxSendMsgSize(cfg.MaxSendBytes),
		grpc.MaxConcurrentStreams(uint32(max(cfg.MaxConcurrentStreams, 1))),
		grpc.MaxHeaderListSize(uint32(headerLimit(cfg.MaxHeaderListBytes))),
		// A client must finish the connection handshake (TLS included) within 10 s.
		grpc.ConnectionTimeout(10 * time.Second),
		// Refuse clients that ping more often than every 10 s (a cheap way to keep a server busy), and
		// close connections idle for 15 minutes.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 15 * time.Minute}),
		grpc.ChainUnaryInterceptor(o.unary),
		grpc.ChainStreamInterceptor(o.stream),
	}, opts...)
	s := &Server{cfg: cfg, log: log, lis: lis, grpc: grpc.NewServer(opts...), health: health.NewServer()}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s, nil
}

// headerLimit is the configured metadata limit, or the default when the config leaves it zero (tests
// and callers that build Config by hand).
func headerLimit(n int) int {
	if n <= 0 {
		return DefaultMaxHeaderListBytes
	}
	return n
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Register adds a service implementation and reports it in health checks once serving starts.
func (s *Server) Register(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
	s.names = append(s.names, desc.ServiceName)
	s.health.SetServingStatus(desc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
}

// SetServing flips the health status of every registered service and of the server as a whole.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for _, n := range s.names {
		s.health.SetServingStatus(n, st)
	}
}

// Serve serves until ctx is done, then stops gracefully: health turns NOT_SERVING, new RPCs are refused,
// in-flight RPCs get ShutdownTimeout to finish, and Serve returns only when the server has stopped.
func (s *Server) Serve(ctx context.Context) error {
	s.SetServing(true)
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(s.lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.log.Warn("in-flight RPCs did not finish in time; cancelling them", "timeout", s.cfg.ShutdownTimeout)
		s.grpc.Stop()
		<-done
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// WatchHealth pings the service's dependency every interval and reports NOT_SERVING while it fails, so
// that load balancers and the gateway's /readyz stop routing to a replica that cannot reach its database.
func (s *Server) WatchHealth(ctx context.Context, interval time.Duration, ping func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		err := ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if ok := err == nil; ok != healthy {
			healthy = ok
			s.SetServing(ok)
			if ok {
				s.log.Info("dependency healthy again; serving")
			} else {
				s.log.Error("dependency check failed; reporting NOT_SERVING", "error", err.Error())
			}
		}
	}
}
