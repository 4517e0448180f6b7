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
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// ServerCPUus is the server process's CPU time (user + system) per call during the measurement,
	// in microseconds: less sensitive than throughput to other work on a shared machine.
	ServerCPUus float64 `json:"server_cpu_us,omitempty"`
	// ClientCPUus is this process's own CPU time per call during the measurement, in microseconds.
	ClientCPUus float64 `json:"client_cpu_us,omitempty"`
	// DBCPUus is the CPU time per call of every process named by -db-cpu (PostgreSQL's server
	// processes: the whole server, so other clients of it count too).
	DBCPUus float64 `json:"db_cpu_us,omitempty"`
	// EventsPerCall is how many audit events each call carries (RecordEvents' batch; 1 otherwise).
	EventsPerCall int `json:"events_per_call,omitempty"`
}

func main() {
	addr := flag.String("addr", "", "bench server address (host:port)")
	call := flag.String("call", "noop", "noop, token (GetAccessToken of zoho/bench), an audit call (record, records, list-actor, list-session, list-all), or over HTTP to the gateway webhook or healthz; delivery: webhook while consumers ack (delivery.go)")
	callers := flag.Int("c", 1, "concurrent callers")
	d := flag.Duration("d", 5*time.Second, "measured duration")
	warm := flag.Duration("warmup", 500*time.Millisecond, "unmeasured warm-up before the measurement")
	flag.IntVar(&serverPID, "server-pid", 0, "the server's process id, to report its CPU time per call (Linux)")
	flag.IntVar(&batch, "batch", 100, "events per RecordEvents call (-call records)")
	flag.Int64Var(&storeSize, "store-size", 0, "events in the seeded store (-call list-*)")
	flag.StringVar(&dbProcess, "db-cpu", "", "also report the CPU time per call of every process with this name (postgres)")
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
	if call == "delivery" {
		return runDelivery(addr, callers, d, warm) // delivery.go
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+os.Getenv("BENCH_API_KEY"))
	var fn func(context.Context) error
	perCall := 1
	switch call {
	case "noop":
		fn = func(ctx context.Context) error { return noop.Call(ctx, conn) }
	case "token":
		tc := tokenv1.NewTokenServiceClient(conn)
		req := &tokenv1.GetAccessTokenRequest{Provider: "zoho", ConnectionId: "bench"}
		fn = func(ctx context.Context) error { _, err := tc.GetAccessToken(ctx, req); return err }
	case "webhook", "healthz":
		if fn, err = webhookCall(call, addr, callers); err != nil {
			return err
		}
	default:
		if fn, perCall, err = auditCall(call, conn, batch, storeSize); err != nil {
			return err
		}
	}
	if warm > 0 {
		if r := measure(ctx, fn, callers, warm); r.Errors > 0 {
			return fmt.Errorf("warm-up: %d calls failed, first: %s", r.Errors, r.FirstError)
		}
	}
	cpu0, own0, db0 := serverCPU(), ownCPU(), processCPU(dbProcess)
	r := measure(ctx, fn, callers, d)
	if db1 := processCPU(dbProcess); db1 > db0 && r.Calls > 0 {
		r.DBCPUus = float64((db1 - db0).Microseconds()) / float64(r.Calls)
	}
	r.EventsPerCall = perCall
	if cpu1 := serverCPU(); cpu0 > 0 && cpu1 > cpu0 && r.Calls > 0 {
		r.ServerCPUus = float64((cpu1 - cpu0).Microseconds()) / float64(r.Calls)
	}
	if r.Calls > 0 {
		r.ClientCPUus = float64((ownCPU() - own0).Microseconds()) / float64(r.Calls)
	}
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
			// One deadline per caller, not a timer per call (which cost this process, sharing the server's
			// two cores, a timer start and stop on every call): every call still carries a deadline to the
			// server, as a real client's does, and none outlives the run by more than 10 s.
			cctx, cancel := context.WithDeadline(ctx, stop.Add(10*time.Second))
			defer cancel()
			for {
				t := time.Now()
				if !t.Before(stop) {
					break
				}
				err := fn(cctx)
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

var (
	serverPID int
	batch     int
	storeSize int64
	dbProcess string
)

// serverCPU is the server's CPU time so far; 0 when unknown.
func serverCPU() time.Duration {
	if serverPID == 0 {
		return 0
	}
	return pidCPU(strconv.Itoa(serverPID), "")
}

// processCPU is the CPU time so far of every process named name (0 when name is empty): PostgreSQL's
// backends come and go, but the pool's connections live through a run, and the postmaster counts the
// CPU of exited children only once it reaps them, so the sum of the live ones is what a run used.
func processCPU(name string) time.Duration {
	if name == "" {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		total += pidCPU(e.Name(), name)
	}
	return total
}

// pidCPU is process pid's CPU time so far, from /proc/<pid>/stat (utime + stime, in the USER_HZ ticks
// of 10 ms that Linux always uses there), or 0 when it is unknown or, with name set, when the process
// has another name.
func pidCPU(pid, name string) time.Duration {
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	if name != "" && !strings.Contains(string(raw), "("+name+")") {
		return 0
	}
	// The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// ownCPU is this process's CPU time so far (user + system).
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
