package audit_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/dbtest"
	"github.com/sergas/core/internal/grpcserver"
	"github.com/sergas/core/services/audit"
)

// TestRecordEventThroughput measures RecordEvent through real gRPC (the platform's Serve, so background
// workers run) at AUDIT_BENCH_CALLERS concurrent callers (default 64) for AUDIT_BENCH_SECONDS (default
// 5) on each backend; with AUDIT_BENCH_BATCH=n each call is RecordEvents of n events, and rates count
// events, not calls. It runs only with AUDIT_BENCH=1: it is a measurement, not a check. CPU per event
// is the whole process (client and server) divided by the events appended, which stays comparable on a
// shared, noisy machine where wall-clock rates do not.
func TestRecordEventThroughput(t *testing.T) {
	if os.Getenv("AUDIT_BENCH") != "1" {
		t.Skip("set AUDIT_BENCH=1 to measure")
	}
	callers := envInt("AUDIT_BENCH_CALLERS", 64)
	seconds := envInt("AUDIT_BENCH_SECONDS", 5)
	batch := envInt("AUDIT_BENCH_BATCH", 0)
	for _, d := range dbtest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			client := serveAudit(t, d, nil)
			ctx := context.Background()
			req := &auditv1.RecordEventRequest{Actor: "agent-7", Action: "crm.deal.update", Resource: "Deals/42", Outcome: auditv1.Outcome_OUTCOME_SUCCESS}
			call, perCall := func() error { _, err := client.RecordEvent(ctx, req); return err }, int64(1)
			if batch > 0 {
				many := &auditv1.RecordEventsRequest{}
				for range batch {
					many.Events = append(many.Events, req)
				}
				call = func() error { _, err := client.RecordEvents(ctx, many); return err }
				perCall = int64(batch)
			}
			// Warm up: connections, pools, page cache.
			for range 50 {
				if _, err := client.RecordEvent(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			var n, failed atomic.Int64
			lat := make([][]time.Duration, callers)
			stop := time.Now().Add(time.Duration(seconds) * time.Second)
			cpu0 := cpuTime()
			start := time.Now()
			var wg sync.WaitGroup
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) {
						t0 := time.Now()
						if err := call(); err != nil {
							failed.Add(1)
							continue
						}
						lat[c] = append(lat[c], time.Since(t0))
						n.Add(perCall)
					}
				}()
			}
			wg.Wait()
			wall, cpu := time.Since(start), cpuTime()-cpu0
			all := slices.Concat(lat...)
			slices.Sort(all)
			p := func(q float64) time.Duration {
				if len(all) == 0 {
					return 0
				}
				return all[min(len(all)-1, int(q*float64(len(all))))]
			}
			t.Logf("%s, %d callers, batch %d: %.0f events/s, p50 %v, p99 %v, CPU %.1f µs/event, %d failed",
				d, callers, batch, float64(n.Load())/wall.Seconds(), p(0.5), p(0.99),
				float64(cpu.Microseconds())/float64(max(n.Load(), 1)), failed.Load())
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serveAudit serves the audit service on dialect through app.Serve (authentication off, limits out of
// the way) and returns a client; env adds configuration. It stops when the test ends.
func serveAudit(t testing.TB, d db.Dialect, env map[string]string) auditv1.AuditServiceClient {
	t.Helper()
	m := map[string]string{"AUDIT_GRPC_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		m[k] = v
	}
	cfg := audit.LoadConfig(config.FromMap(m))
	cfg.DB = dbtest.Config(t, d)
	return serveWith(t, cfg)
}

// serveWith serves an audit service with cfg and returns a client of it; it stops when the test ends.
func serveWith(t testing.TB, cfg audit.Config) auditv1.AuditServiceClient {
	t.Helper()
	client, stop := serveStoppable(t, cfg)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return client
}

// serveStoppable serves an audit service with cfg through the platform's Serve (authentication off,
// limits out of the way) and returns a client and the function that stops the service (as SIGTERM
// would) and returns Serve's error. The client's connection closes when the test ends.
func serveStoppable(t testing.TB, cfg audit.Config) (auditv1.AuditServiceClient, func() error) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := audit.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	unlimited := auth.Rate{PerSecond: 1e9, Burst: 1e9}
	rt := &app.Runtime{Security: &auth.Security{Authenticator: &auth.Authenticator{Disabled: true},
		Limits: auth.NewLimiters(auth.Limits{Read: unlimited, Write: unlimited, Admin: unlimited, Failures: unlimited})}}
	cfg.GRPC = grpcserver.Config{Addr: cfg.GRPC.Addr, MaxRecvBytes: 1 << 20, MaxSendBytes: 4 << 20, MaxConcurrentStreams: 1000, ShutdownTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- app.Serve(ctx, cfg.ServiceConfig, rt, log, svc, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	return auditv1.NewAuditServiceClient(conn), stop
}
