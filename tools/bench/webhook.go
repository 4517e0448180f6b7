package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sergas/core/internal/auth"
)

// webhookOptions are the webhook suite's flags.
type webhookOptions struct {
	callers []int // concurrent senders
}

// The webhook suite's calls, as the table names them, and the load generator's names for them.
const (
	callIngest  = "signed ingest, 1 KiB"
	callHealthz = "GET /healthz"
)

var webhookLoadgenCall = map[string]string{callIngest: "webhook", callHealthz: "healthz"}

// runWebhook measures signed webhook deliveries through the gateway against the gateway's /healthz, on
// each backend: the webhook service and the gateway each in their own process (tools/bench/internal/
// webhookserver), the load generator in a third.
func runWebhook(o options) error {
	bin, err := os.MkdirTemp("", "sergas-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	if err := buildTools(bin); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(bin, "webhookserver"), "./tools/bench/internal/webhookserver")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build webhookserver: %w", err)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	started := time.Now()
	rep := &webhookReport{o: o}
	for _, b := range o.backends {
		if err := benchWebhook(o, bin, b, rep); err != nil {
			return fmt.Errorf("%s webhook: %w", b, err)
		}
	}
	rep.print(os.Stdout, time.Since(started))
	return nil
}

// webhookSetup is one backend's configuration: the gateway's key (webhook:ingest), the bench source's
// hmac secret and the secret that proves the sender's address from the gateway to the service.
type webhookSetup struct {
	key, keys, sourceSecret, addrSecret string
}

func newWebhookSetup() (webhookSetup, error) {
	key, err := auth.NewAPIKey("gateway")
	if err != nil {
		return webhookSetup{}, err
	}
	s := webhookSetup{key: key,
		keys: fmt.Sprintf(`{"keys":[{"id":"gateway","sha256":%q,"scopes":[%q]}]}`, auth.HashAPIKey(key), auth.ScopeWebhookIngest)}
	for _, out := range []*string{&s.sourceSecret, &s.addrSecret} {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return webhookSetup{}, err
		}
		*out = hex.EncodeToString(raw)
	}
	return s, nil
}

// webhookServiceEnv is the bench webhook service's configuration: production mode, the gateway's key,
// one hmac source "bench" (the environment form: X-Zoho-Signature, hex HMAC-SHA256), plaintext loopback.
// Every budget a delivery passes through is on but set at benchRate, never reached: the gateway key's
// write class (RATE_LIMIT_*), the sender address's (WEBHOOK_ADDRESS_RATE_LIMIT_*: every sender here is
// 127.0.0.1) and the source's (WEBHOOK_RATE_LIMIT_*). Backpressure is off (WEBHOOK_MAX_QUEUE_SIZE=0): no
// consumer drains the backlog here, so any limit would be reached within seconds.
func webhookServiceEnv(backend string, s webhookSetup, dataDir, schema string) (map[string]string, error) {
	rate := strconv.Itoa(benchRate)
	env := map[string]string{
		"SERGAS_ENV": "production", "DATA_DIR": dataDir, "TLS_DISABLED": "true", "WEBHOOK_GRPC_ADDR": "127.0.0.1:0",
		"AUTH_API_KEYS": s.keys, "LOG_LEVEL": "error", "CLIENT_ADDR_SECRET": s.addrSecret,
		"RATE_LIMIT_PER_SECOND": rate, "RATE_LIMIT_BURST": rate,
		"WEBHOOK_SOURCES": "bench:hmac", "WEBHOOK_SOURCE_BENCH_SECRETS": s.sourceSecret,
		"WEBHOOK_RATE_LIMIT_PER_SECOND": rate, "WEBHOOK_RATE_LIMIT_BURST": rate,
		"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": rate, "WEBHOOK_ADDRESS_RATE_LIMIT_BURST": rate,
		"WEBHOOK_MAX_QUEUE_SIZE": "0",
	}
	if backend == "postgres" {
		url := os.Getenv("TEST_DATABASE_URL")
		if url == "" {
			return nil, fmt.Errorf("TEST_DATABASE_URL is not set")
		}
		env["DATABASE_URL"] = url
		env["WEBHOOK_DATABASE_SCHEMA"] = schema
	}
	return env, nil
}

// gatewayEnv is the bench gateway's configuration: production mode, plaintext, the webhook service at
// webhookAddr under the gateway's key (the token and audit services are not dialled by these routes).
func gatewayEnv(s webhookSetup, dataDir, webhookAddr string) map[string]string {
	return map[string]string{
		"SERGAS_ENV": "production", "DATA_DIR": dataDir, "TLS_DISABLED": "true", "GATEWAY_HTTP_ADDR": "127.0.0.1:0",
		"WEBHOOK_GRPC_ENDPOINT": webhookAddr, "TOKEN_GRPC_ENDPOINT": "127.0.0.1:1", "AUDIT_GRPC_ENDPOINT": "127.0.0.1:1",
		"GATEWAY_WEBHOOK_API_KEY": s.key, "CLIENT_ADDR_SECRET": s.addrSecret, "LOG_LEVEL": "error",
	}
}

// benchWebhook starts the service and the gateway on a new store and measures each sender count,
// alternating signed ingests with /healthz.
func benchWebhook(o options, bin, backend string, rep *webhookReport) error {
	setup, err := newWebhookSetup()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sergas-bench-webhook-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	schema := fmt.Sprintf("bench_webhook_%d", time.Now().UnixNano())
	env, err := webhookServiceEnv(backend, setup, dir, schema)
	if err != nil {
		return err
	}
	pprofAddr := ""
	if o.profileDir != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	// The service's metrics tell how many deliveries each commit carried.
	if env["WEBHOOK_METRICS_ADDR"], err = freeAddr(); err != nil {
		return err
	}
	svc, err := startServer(bin+"/webhookserver", env, pprofAddr, "-role", "webhook")
	if err != nil {
		return err
	}
	defer func() {
		if err := svc.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		if backend == "postgres" {
			dropSchema(env["DATABASE_URL"], schema)
		}
	}()
	gwPprof := ""
	if o.profileDir != "" {
		if gwPprof, err = freeAddr(); err != nil {
			return err
		}
	}
	gw, err := startServer(bin+"/webhookserver", gatewayEnv(setup, dir, svc.addr), gwPprof, "-role", "gateway")
	if err != nil {
		return err
	}
	defer func() {
		if err := gw.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}()
	// The load generator sends to the gateway; the CPU it reports as the server's is the webhook
	// service's.
	target := &serverProc{cmd: svc.cmd, addr: gw.addr}
	os.Setenv("BENCH_WEBHOOK_SECRET", setup.sourceSecret) // for the load generator, which inherits it (the servers ignore it)
	extra := dbFlags(backend)
	if o.profileDir != "" {
		// The gateway is profiled over the same window as the service, into a file of its own.
		gwPath := fmt.Sprintf("%s/%s-webhook-ingest-gateway-c%d.pprof", o.profileDir, backend, o.profileC)
		gwErr := make(chan error, 1)
		go func() {
			time.Sleep(o.warmup + 200*time.Millisecond)
			gwErr <- gw.profile(context.Background(), o.d-time.Second, gwPath)
		}()
		if err := profileRun(o, bin, backend, &serverProc{cmd: svc.cmd, addr: gw.addr, pprof: svc.pprof}, "", webhookLoadgenCall[callIngest], "webhook-ingest", extra...); err != nil {
			return err
		}
		if err := <-gwErr; err != nil {
			return fmt.Errorf("profile %s: %w", gwPath, err)
		}
		fmt.Fprintln(os.Stderr, "profile:", gwPath)
	}
	calls := []string{callIngest, callHealthz}
	for _, c := range o.webhook.callers {
		for i := range o.reps {
			for j := range calls {
				// Alternate which goes first, so that drift in the machine's load favours neither.
				call := calls[(i+j)%len(calls)]
				gw0, b0 := procCPU(gw.cmd.Process.Pid), commitBatches(env["WEBHOOK_METRICS_ADDR"])
				r, err := load(bin+"/loadgen", target, "", webhookLoadgenCall[call], c, o.d, o.warmup, extra...)
				if err != nil {
					return err
				}
				// The gateway's CPU is read around the whole load generator run, warm-up included: per call
				// it is spread over the calls of both, estimated at the measured rate.
				gwCPU := 0.0
				if calls := r.PerSecond * (o.d + o.warmup).Seconds(); calls > 0 {
					gwCPU = float64((procCPU(gw.cmd.Process.Pid) - gw0).Microseconds()) / calls
				}
				if b1 := commitBatches(env["WEBHOOK_METRICS_ADDR"]); b1.count > b0.count {
					rep.batch(backend, c, (b1.sum-b0.sum)/(b1.count-b0.count))
				}
				rep.add(backend, call, c, r, gwCPU)
				fmt.Fprintf(os.Stderr, "%s | %s | %d senders | run %d: %.0f/s, p50 %.3f ms, p99 %.3f ms, CPU µs/call: gateway ≈%.0f, webhook service %.0f, client %.0f, database %.0f\n",
					backend, call, c, i+1, r.PerSecond, r.P50ms, r.P99ms, gwCPU, r.ServerCPU, r.ClientCPU, r.DBCPU)
			}
		}
	}
	return nil
}

// procCPU is process pid's CPU time so far (user + system, from /proc/<pid>/stat in the 10 ms ticks
// Linux uses there); 0 when unknown.
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
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

// batches are the webhook service's group-commit histogram totals: deliveries and transactions.
type batches struct{ sum, count float64 }

// commitBatches reads webhook_group_commit_batch_events from the service's /metrics at addr; zero when
// it cannot.
func commitBatches(addr string) batches {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return batches{}
	}
	defer resp.Body.Close()
	var b batches
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case "webhook_group_commit_batch_events_sum":
			b.sum = v
		case "webhook_group_commit_batch_events_count":
			b.count = v
		}
	}
	return b
}
