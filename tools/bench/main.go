// Command bench measures GetAccessToken end to end against an authenticated no-op RPC, and prints a
// Markdown table ready for the README.
//
// It builds two programs and runs each as its own process: tools/bench/server (the token service as
// internal/app serves it, with a no-op RPC that needs token:read registered beside it, so both calls
// pass the same authentication, scope check, rate limiter and interceptors) and tools/bench/loadgen
// (one gRPC connection over loopback, N concurrent callers). Per backend two servers run side by side,
// one with the token cache off (TOKEN_CACHE_TTL=0: every call reads the store and opens the sealed token)
// and one with it on; each point (call × callers) is measured -n times, interleaved, and reported as
// median with min–max. The bare store read (no RPC, no cache: what the original system's 0.15/0.23 ms
// token lookup measured) is timed separately, in this process, on the same database.
//
// With -suite audit it measures the audit service instead (audit.go): the same server program serves the
// audit service as sergas-audit does, with a no-op that needs audit:write beside it; the load generator
// drives RecordEvent and RecordEvents (events/s) on a new store, alternating with the no-op, and then
// ListEvents (p99) on a store of -events seeded events, bulk-loaded once and kept between runs
// (auditseed.go: ./data/bench for SQLite, the schema bench_audit_seeded for PostgreSQL).
//
// `make bench` runs both on SQLite and PostgreSQL (TEST_DATABASE_URL). Every run is bounded in time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	"github.com/sergas/core/internal/auth"
)

// The bench key's rate limit for reads (RATE_LIMIT_READ_*: both measured calls need token:read, the read
// class): far above what two cores can serve, so the limiter runs on every call (it is not disabled) but
// never refuses one; a refused call fails the run. The default, 10,000/s per credential, would cap a
// quiet machine's runs.
const benchRate = 1_000_000

type options struct {
	d, warmup  time.Duration
	callers    []int
	reps       int
	backends   []string
	profileDir string
	profileC   int
	bareD      time.Duration
	audit      auditOptions
	webhook    webhookOptions
	delivery   deliveryOptions
}

func main() {
	var o options
	flag.DurationVar(&o.d, "d", 4*time.Second, "measured duration of each run")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up at the start of each load generator run")
	levels := flag.String("c", "1,4,16,64", "concurrent callers, comma-separated")
	flag.IntVar(&o.reps, "n", 3, "runs per point (at least 3 for min/median/max)")
	backends := flag.String("backends", "", "sqlite,postgres (default: sqlite, plus postgres when TEST_DATABASE_URL is set)")
	flag.StringVar(&o.profileDir, "profile", "", "write CPU profiles of the server processes, one per call, into this directory")
	flag.IntVar(&o.profileC, "profile-c", 16, "callers for the profiled runs")
	flag.DurationVar(&o.bareD, "bare", 2*time.Second, "duration of the bare store read measurement")
	suite := flag.String("suite", "token", "token (GetAccessToken), audit (RecordEvent, RecordEvents, ListEvents), webhook (signed ingests through the gateway) or delivery (ingest to Ack, delivery.go)")
	deliveryRates := flag.String("delivery-rates", "250,500,1000,0", "delivery suite: offered ingests/s in all, comma-separated; 0 is saturation")
	flag.IntVar(&o.delivery.senders, "delivery-c", 64, "delivery suite: concurrent senders")
	deliverySinks := flag.String("delivery-sink", "pull", "delivery suite: how deliveries are consumed, comma-separated: pull (streaming gRPC Receive and Ack), push (the service POSTs each to an HTTP endpoint in the load generator)")
	flag.IntVar(&o.delivery.consumers, "delivery-consumers", 4, "delivery suite: pull consumers (one Receive stream each)")
	flag.IntVar(&o.delivery.inFlight, "delivery-in-flight", 100, "delivery suite: max_in_flight of each pull consumer")
	flag.Float64Var(&o.delivery.profileRate, "delivery-profile-rate", 0, "delivery suite: offered rate of the profiled run (-profile); 0 is saturation")
	auditC := flag.String("audit-c", "1,16,64", "audit suite: concurrent RecordEvent callers")
	batchC := flag.String("batch-c", "4,16", "audit suite: concurrent RecordEvents callers")
	listC := flag.String("list-c", "1,16", "audit suite: concurrent ListEvents callers")
	webhookC := flag.String("webhook-c", "1,16,64", "webhook suite: concurrent senders")
	flag.IntVar(&o.audit.batch, "batch", 100, "audit suite: events per RecordEvents call")
	flag.Int64Var(&o.audit.events, "events", 10_000_000, "audit suite: events in the ListEvents store")
	flag.StringVar(&o.audit.seedDir, "seed-dir", "./data/bench", "audit suite: where the seeded SQLite store is kept between runs")
	flag.BoolVar(&o.audit.seedOnly, "seed-only", false, "audit suite: only make sure the seeded ListEvents stores exist, then stop")
	flag.BoolVar(&o.audit.listOnly, "audit-list-only", false, "audit suite: measure ListEvents only, not RecordEvent and RecordEvents")
	flag.Parse()
	var err error
	if o.callers, err = splitInts(*levels); err != nil {
		fail(err)
	}
	for _, l := range []struct {
		s   string
		out *[]int
	}{{*auditC, &o.audit.callers}, {*batchC, &o.audit.batchCallers}, {*listC, &o.audit.listCallers}, {*webhookC, &o.webhook.callers}} {
		if *l.out, err = splitInts(l.s); err != nil {
			fail(err)
		}
	}
	if o.delivery.rates, err = splitRates(*deliveryRates); err != nil {
		fail(err)
	}
	if o.delivery.sinks, err = splitSinks(*deliverySinks); err != nil {
		fail(err)
	}
	switch {
	case *backends != "":
		o.backends = strings.Split(*backends, ",")
	case os.Getenv("TEST_DATABASE_URL") != "":
		o.backends = []string{"sqlite", "postgres"}
	default:
		o.backends = []string{"sqlite"}
	}
	switch *suite {
	case "token":
		err = run(o)
	case "audit":
		err = runAudit(o)
	case "webhook":
		err = runWebhook(o)
	case "delivery":
		err = runDelivery(o)
	default:
		err = fmt.Errorf("unknown -suite %q", *suite)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func run(o options) error {
	bin, err := os.MkdirTemp("", "sergas-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := buildTools(bin); err != nil {
		return err
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	started := time.Now()
	rep := &report{callers: o.callers}
	for _, b := range o.backends {
		if err := benchBackend(o, bin, b, rep); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
	}
	rep.print(os.Stdout, o, time.Since(started))
	return nil
}

// The three measured calls.
const (
	callUncached = "GetAccessToken, cache off"
	callCached   = "GetAccessToken, cached"
	callNoop     = "no-op (same auth and limiter)"
)

func benchBackend(o options, bin, backend string, rep *report) error {
	readKey, err := auth.NewAPIKey("bench")
	if err != nil {
		return err
	}
	adminKey, err := auth.NewAPIKey("bench-admin")
	if err != nil {
		return err
	}
	keys := fmt.Sprintf(`{"keys":[{"id":"bench","sha256":%q,"scopes":["token:read"]},{"id":"bench-admin","sha256":%q,"scopes":["token:admin"]}]}`,
		auth.HashAPIKey(readKey), auth.HashAPIKey(adminKey))
	servers := map[string]*serverProc{}
	defer func() {
		for _, s := range servers {
			_ = s.stop()
			if d := s.env["DATA_DIR"]; d != "" {
				os.RemoveAll(d)
			}
			if schema := s.env["TOKEN_DATABASE_SCHEMA"]; schema != "" {
				dropSchema(s.env["DATABASE_URL"], schema)
			}
		}
	}()
	for _, cache := range []string{"0", "1s"} {
		env, err := serverEnv(backend, cache, keys)
		if err != nil {
			return err
		}
		pprofAddr := ""
		if o.profileDir != "" {
			if pprofAddr, err = freeAddr(); err != nil {
				return err
			}
		}
		s, err := startServer(bin+"/server", env, pprofAddr)
		if err != nil {
			return err
		}
		servers[cache] = s
		if err := createConnection(s.addr, adminKey); err != nil {
			return err
		}
	}
	bare, err := bareRead(backend, servers["0"].env, o.bareD)
	if err != nil {
		return fmt.Errorf("bare store read: %w", err)
	}
	rep.bare = append(rep.bare, bareResult{backend: backend, r: bare})
	type target struct {
		call   string
		server *serverProc
		rpc    string
	}
	targets := []target{{callNoop, servers["0"], "noop"}, {callUncached, servers["0"], "token"}, {callCached, servers["1s"], "token"}}
	if o.profileDir != "" {
		for _, t := range targets {
			if err := profileRun(o, bin, backend, t.server, readKey, t.rpc, t.call); err != nil {
				return err
			}
		}
	}
	for _, c := range o.callers {
		for i := range o.reps {
			// Rotate the order in each round, so that drift in the machine's load does not always favour
			// the same call.
			for j := range targets {
				t := targets[(i+j)%len(targets)]
				r, err := load(bin+"/loadgen", t.server, readKey, t.rpc, c, o.d, o.warmup)
				if err != nil {
					return err
				}
				rep.add(backend, t.call, c, r)
				fmt.Fprintf(os.Stderr, "%s | %s | %d callers | run %d: %.0f calls/s, p50 %.3f ms, p99 %.3f ms, CPU µs/call: server %.0f, client %.0f\n",
					backend, t.call, c, i+1, r.PerSecond, r.P50ms, r.P99ms, r.ServerCPU, r.ClientCPU)
			}
		}
	}
	return nil
}

// serverEnv is the bench server's configuration: production mode with one read-only bench key and one
// admin key for setup, plaintext loopback, the limiter on at benchRate, no refresher and no provider.
func serverEnv(backend, cache, keys string) (map[string]string, error) {
	dir, err := os.MkdirTemp("", "sergas-bench-")
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"SERGAS_ENV": "production", "DATA_DIR": dir, "TLS_DISABLED": "true", "TOKEN_GRPC_ADDR": "127.0.0.1:0",
		"AUTH_API_KEYS": keys, "RATE_LIMIT_READ_PER_SECOND": strconv.Itoa(benchRate), "RATE_LIMIT_READ_BURST": strconv.Itoa(benchRate),
		"TOKEN_ENCRYPTION_KEYS": "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "TOKEN_REFRESHER_INTERVAL": "0",
		"TOKEN_PROVIDER_ZOHO_ACCOUNTS_URL": "http://127.0.0.1:1", "LOG_LEVEL": "error", "TOKEN_CACHE_TTL": cache,
	}
	if backend == "postgres" {
		url := os.Getenv("TEST_DATABASE_URL")
		if url == "" {
			return nil, fmt.Errorf("TEST_DATABASE_URL is not set")
		}
		env["DATABASE_URL"] = url
		env["TOKEN_DATABASE_SCHEMA"] = fmt.Sprintf("bench_%d", time.Now().UnixNano())
	}
	return env, nil
}

// createConnection stores the connection every GetAccessToken reads (zoho/bench), valid for a day.
func createConnection(addr, adminKey string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminKey)
	_, err = tokenv1.NewTokenServiceClient(conn).CreateConnection(ctx, &tokenv1.CreateConnectionRequest{Provider: "zoho",
		ConnectionId: "bench", AccessToken: "1000.bench.access", RefreshToken: "1000.bench.refresh", ExpiresIn: durationpb.New(24 * time.Hour)})
	return err
}

// profileRun records a CPU profile of the server while the load generator drives one call.
func profileRun(o options, bin, backend string, s *serverProc, key, rpc, call string, extra ...string) error {
	name := strings.NewReplacer(" ", "", ",", "-", "(", "", ")", "").Replace(call)
	path := fmt.Sprintf("%s/%s-%s-c%d.pprof", o.profileDir, backend, name, o.profileC)
	errc := make(chan error, 1)
	go func() {
		// Start profiling once the load generator's warm-up is over; stop before its run ends.
		time.Sleep(o.warmup + 200*time.Millisecond)
		errc <- s.profile(context.Background(), o.d-time.Second, path)
	}()
	if _, err := load(bin+"/loadgen", s, key, rpc, o.profileC, o.d, o.warmup, extra...); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("profile %s: %w", path, err)
	}
	fmt.Fprintln(os.Stderr, "profile:", path)
	return nil
}

func splitInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

// dropSchema removes a bench server's PostgreSQL schema (a name this program made up), best effort.
func dropSchema(url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: drop schema:", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: drop schema:", err)
	}
}
