// Command loadgen is the benchmark's load generator, run as its own process so that its work is not
// counted inside the server's: it opens one gRPC connection to the bench server on loopback, warms it
// up, then calls one RPC from -c goroutines for -d and prints one JSON line: calls, errors, throughput and
// latency percentiles. The API key comes from BENCH_API_KEY (kept off the command line).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/tools/bench/internal/noop"
)

// Result is what one run prints.
type Result struct {
	Call       string  `json:"call"`
	Callers    int     `json:"callers"`
	Calls      int     `json:"calls"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
}

func main() {
	addr := flag.String("addr", "", "bench server address (host:port)")
	call := flag.String("call", "noop", "noop or token (GetAccessToken of zoho/bench)")
	callers := flag.Int("c", 1, "concurrent callers")
	d := flag.Duration("d", 5*time.Second, "measured duration")
	warm := flag.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up before the measurement")
	flag.Parse()
	if err := run(*addr, *call, *callers, *d, *warm); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(addr, call string, callers int, d, warm time.Duration) error {
	if addr == "" || callers < 1 || d <= 0 {
		return fmt.Errorf("need -addr, -c >= 1 and -d > 0")
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+os.Getenv("BENCH_API_KEY"))
	var fn func(context.Context) error
	switch call {
	case "noop":
		fn = func(ctx context.Context) error { return noop.Call(ctx, conn) }
	case "token":
		tc := tokenv1.NewTokenServiceClient(conn)
		req := &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "bench"}
		fn = func(ctx context.Context) error { _, err := tc.GetAccessToken(ctx, req); return err }
	default:
		return fmt.Errorf("unknown -call %q", call)
	}
	if warm > 0 {
		if r := measure(ctx, fn, callers, warm); r.Errors > 0 {
			return fmt.Errorf("warm-up: %d calls failed, first: %s", r.Errors, r.FirstError)
		}
	}
	r := measure(ctx, fn, callers, d)
	r.Call, r.Callers = call, callers
	return json.NewEncoder(os.Stdout).Encode(r)
}

// measure calls fn from callers goroutines until d has passed and collects every latency.
func measure(ctx context.Context, fn func(context.Context) error, callers int, d time.Duration) Result {
	var (
		mu       sync.Mutex
		all      []time.Duration
		errors   int
		firstErr string
		wg       sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(d)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 4096)
			bad, first := 0, ""
			for {
				t := time.Now()
				if !t.Before(stop) {
					break
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := fn(cctx)
				cancel()
				mine = append(mine, time.Since(t))
				if err != nil {
					if bad == 0 {
						first = err.Error()
					}
					bad++
				}
			}
			mu.Lock()
			all = append(all, mine...)
			errors += bad
			if firstErr == "" {
				firstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	pct := func(q int) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, len(all)*q/100)].Nanoseconds()) / 1e6
	}
	return Result{Calls: len(all), Errors: errors, FirstError: firstErr, Seconds: elapsed.Seconds(),
		PerSecond: float64(len(all)) / elapsed.Seconds(), P50ms: pct(50), P90ms: pct(90), P99ms: pct(99)}
}
