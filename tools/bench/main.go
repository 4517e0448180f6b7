// Command bench measures GetAccessToken over gRPC against a no-op gRPC call (the health check) on the
// same server, on SQLite and (with TEST_DATABASE_URL) PostgreSQL, and prints a Markdown table.
// `make bench` runs it; every request goes to loopback and every run is bounded in time.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/stack"
)

func main() {
	duration := flag.Duration("d", 5*time.Second, "duration of each measurement")
	levels := flag.String("c", "1,4,16", "concurrency levels")
	flag.Parse()
	var conc []int
	for _, f := range splitInts(*levels) {
		conc = append(conc, f)
	}
	backends := []string{"sqlite"}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		backends = append(backends, "postgres")
	}
	fmt.Println("| backend | call | concurrency | calls/s | p50 ms | p90 ms | p99 ms | vs no-op |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, b := range backends {
		for _, cache := range []string{"1s", "0"} {
			if err := bench(b, cache, conc, *duration); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
		}
	}
}

// bench measures one backend with TOKEN_CACHE_TTL=cache ("0": every call reads the store and opens the
// sealed token).
func bench(backend, cache string, conc []int, d time.Duration) error {
	key, err := auth.NewAPIKey("bench")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sergas-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env := map[string]string{
		"DATA_DIR": dir, "TLS_DISABLED": "true", "GATEWAY_HTTP_ADDR": "127.0.0.1:0", "TOKEN_GRPC_ADDR": "127.0.0.1:0",
		"AUDIT_GRPC_ADDR": "127.0.0.1:0", "WEBHOOK_GRPC_ADDR": "127.0.0.1:0", "RATE_LIMIT_PER_SECOND": "0",
		"AUTH_API_KEYS":         fmt.Sprintf(`{"keys":[{"id":"bench","sha256":%q,"scopes":["token:read","token:admin"]}]}`, auth.HashAPIKey(key)),
		"TOKEN_ENCRYPTION_KEYS": "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "TOKEN_REFRESHER_INTERVAL": "0",
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": "http://127.0.0.1:1", "LOG_LEVEL": "error", "TOKEN_CACHE_TTL": cache,
	}
	if backend == "postgres" {
		schema := fmt.Sprintf("bench_%d", time.Now().UnixNano())
		env["DATABASE_URL"] = os.Getenv("TEST_DATABASE_URL")
		env["TOKEN_DATABASE_SCHEMA"], env["AUDIT_DATABASE_SCHEMA"], env["WEBHOOK_DATABASE_SCHEMA"] = schema+"_t", schema+"_a", schema+"_w"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan stack.Addrs, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- stack.Run(ctx, config.FromMap(env), log, func(a stack.Addrs) { ready <- a }) }()
	var addrs stack.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		return err
	}
	conn, err := grpc.NewClient(addrs.Token, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	tc := tokenv1.NewTokenServiceClient(conn)
	if _, err := tc.CreateConnection(authed, &tokenv1.CreateConnectionRequest{Provider: "zoho", ConnectionId: "bench",
		AccessToken: "1000.bench.access", RefreshToken: "1000.bench.refresh", ExpiresIn: durationpb.New(24 * time.Hour)}); err != nil {
		return err
	}
	hc := healthpb.NewHealthClient(conn)
	noop := func() error { _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); return err }
	access := func() error {
		_, err := tc.GetAccessToken(authed, &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "bench"})
		return err
	}
	label := "GetAccessToken"
	if cache == "0" {
		label += " (cache off)"
	}
	for _, c := range conc {
		run(noop, c, time.Second) // warm up
		base := run(noop, c, d)
		got := run(access, c, d)
		if cache != "0" {
			fmt.Printf("| %s | no-op (health check) | %d | %.0f | %.3f | %.3f | %.3f | 100%% |\n", backend, c, base.rate, base.p(50), base.p(90), base.p(99))
		}
		fmt.Printf("| %s | %s | %d | %.0f | %.3f | %.3f | %.3f | %.0f%% |\n", backend, label, c, got.rate, got.p(50), got.p(90), got.p(99), 100*got.rate/base.rate)
		if base.errors+got.errors > 0 {
			return fmt.Errorf("%d calls failed", base.errors+got.errors)
		}
	}
	cancel()
	return <-done
}

type result struct {
	rate      float64
	latencies []time.Duration
	errors    int
}

func (r result) p(q int) float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	i := min(len(r.latencies)-1, len(r.latencies)*q/100)
	return float64(r.latencies[i].Microseconds()) / 1000
}

// run calls fn from c goroutines for d and collects every latency.
func run(fn func() error, c int, d time.Duration) result {
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for time.Now().Before(stop) {
				t := time.Now()
				if fn() != nil {
					bad++
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			all = append(all, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	return result{rate: float64(len(all)) / elapsed.Seconds(), latencies: all, errors: errs}
}

func splitInts(s string) []int {
	var out []int
	n := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, n)
			n = 0
			continue
		}
		n = n*10 + int(s[i]-'0')
	}
	return out
}
