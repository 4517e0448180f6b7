// Package app holds what every service binary does the same way: signal handling, opening the service's
// database, serving gRPC and closing down in order.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/internal/logging"
	"github.com/sergas/core/internal/tracing"
)

// Main runs run with a context cancelled on SIGINT or SIGTERM and exits non-zero when it fails. Tracing
// is set up from the OTEL_* variables before run and flushed after it (see flushTraces).
func Main(run func(ctx context.Context, env *config.Env, log *slog.Logger) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := config.FromOS()
	log := logging.New(logging.LoadConfig(env), os.Stderr)
	var stopAt atomic.Pointer[time.Time]
	defer context.AfterFunc(ctx, func() { now := time.Now(); stopAt.Store(&now) })()
	// A bad OTEL_* variable is reported by run with the others (env.Err), and tracing stays off meanwhile.
	shutdownTracing, err := tracing.Setup(ctx, tracing.LoadConfig(env, filepath.Base(os.Args[0])), log)
	if err != nil {
		log.Error("exiting", "error", err.Error())
		os.Exit(1)
	}
	err = run(ctx, env, log)
	flushTraces(shutdownTracing, env.Duration("SHUTDOWN_TIMEOUT", 15*time.Second, 0, 10*time.Minute), stopAt.Load(), log)
	if err != nil {
		log.Error("exiting", "error", err.Error())
		stop()
		os.Exit(1)
	}
}

// flushTraces exports the spans still buffered, within what the stop left of SHUTDOWN_TIMEOUT (counted
// from the signal, as the drain and the workers are) but at least a tenth of it, so that the spans of
// the last requests reach the collector and a collector that is down cannot hold the exit.
func flushTraces(shutdown func(context.Context) error, timeout time.Duration, stopAt *time.Time, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), workerBudget(timeout, stopAt))
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("tracing: spans not exported at exit", "error", err.Error())
	}
}

// ServiceConfig is what every storage-backed gRPC service reads from the environment.
type ServiceConfig struct {
	Name           string
	GRPC           grpcserver.Config
	DB             db.Config
	MigrateOnStart bool
	// MetricsAddr, when set, serves Prometheus metrics at /metrics on its own HTTP listener (for a
	// service deployed alone; in the all-in-one process the gateway's /metrics covers everything).
	MetricsAddr string
}

// LoadServiceConfig reads the settings of service, listening on defaultAddr unless told otherwise.
func LoadServiceConfig(env *config.Env, service, defaultAddr string) ServiceConfig {
	return ServiceConfig{
		Name:           service,
		GRPC:           grpcserver.LoadConfig(env, service, defaultAddr),
		DB:             db.LoadConfig(env, service),
		MigrateOnStart: env.Bool("MIGRATE_ON_START", true),
		MetricsAddr:    env.String(strings.ToUpper(service)+"_METRICS_ADDR", ""),
	}
}

// Service is a gRPC service ready to be served.
type Service interface {
	// Register adds the service's handlers to the server.
	Register(s *grpcserver.Server)
	// Ping checks the service's dependencies (its database).
	Ping(ctx context.Context) error
	// Close releases the service's resources after serving has stopped.
	Close() error
	// Policy names the scope each of the service's RPCs needs.
	Policy() auth.Policy
}

// OpenDB opens and migrates the service's database, logging where it lives (never credentials).
func OpenDB(ctx context.Context, cfg ServiceConfig, log *slog.Logger) (*db.Handle, error) {
	cfg.DB.Log = log
	h, err := db.Open(ctx, cfg.DB, cfg.Name, cfg.MigrateOnStart)
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", cfg.Name, err)
	}
	log.Info("database ready", "service", cfg.Name, "database", cfg.DB.Redacted())
	return h, nil
}

// Serve serves svc on its own gRPC listener until ctx is done, then drains and closes svc.
// ready, when not nil, receives the bound address once the listener is open. The service's background
// workers (BackgroundService) start once the listener is open and stop after in-flight RPCs have
// drained (they may be waiting on a worker) and before svc is closed.
func Serve(ctx context.Context, cfg ServiceConfig, rt *Runtime, log *slog.Logger, svc Service, ready func(addr string)) error {
	defer svc.Close()
	bg := backgroundOf(svc)
	if err := bg.validate(); err != nil {
		return fmt.Errorf("%s: %w", cfg.Name, err)
	}
	policy := auth.Merge(svc.Policy(), auth.Policy{Public: auth.InfrastructurePublic})
	guard := auth.NewGuard(rt.Security.Authenticator, policy, rt.Security.Limits, rt.TrustedProxies, rt.sink())
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(guard.Unary), grpc.ChainStreamInterceptor(guard.Stream)}
	if rt.ServerTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(rt.ServerTLS)))
	}
	srv, err := grpcserver.New(cfg.GRPC, log, opts...)
	if err != nil {
		return err
	}
	svc.Register(srv)
	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	go srv.WatchHealth(ctx, 5*time.Second, svc.Ping, db.Down)
	log.Info("serving gRPC", "service", cfg.Name, "addr", srv.Addr())
	if ready != nil {
		ready(srv.Addr())
	}
	// The stop's clock starts when ctx ends: draining RPCs and then workers share one SHUTDOWN_TIMEOUT,
	// which the deployments' grace periods are sized for.
	var stopAt atomic.Pointer[time.Time]
	defer context.AfterFunc(ctx, func() { now := time.Now(); stopAt.Store(&now) })()
	workers, err := StartWorkers(ctx, log, bg)
	if err != nil {
		return err
	}
	err = srv.Serve(ctx)
	workers.Stop(workerBudget(cfg.GRPC.ShutdownTimeout, stopAt.Load()))
	log.Info("stopped", "service", cfg.Name)
	return err
}

// workerBudget is how long stopping workers may wait: what the RPC drain left of timeout since the stop
// began, but at least a tenth of it, so that workers that return promptly on cancel still get to finish
// after a drain that used the whole budget.
func workerBudget(timeout time.Duration, stopAt *time.Time) time.Duration {
	left := timeout
	if stopAt != nil {
		left -= time.Since(*stopAt)
	}
	return max(left, timeout/10)
}
