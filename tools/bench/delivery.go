package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/keyring"
)

// deliveryOptions are the delivery suite's flags.
type deliveryOptions struct {
	rates     []float64 // offered ingests/s; 0 is saturation (senders as fast as answered)
	senders   int
	sinks     []string // pull, push: each on its own service, gateway and store
	consumers int
	inFlight  int
	// profileRate is the offered rate of the profiled run (-profile): 0, saturation, by default.
	profileRate float64
}

// maxDuplicateShare is the share of duplicate deliveries (push, at least once) over the events sent above
// which a run fails: a few are what at least once allows; many would mean settles are lost.
const maxDuplicateShare = 0.05

// deliveryLease is the bench subscription's lease: long enough that no lease ends under load (a refused
// Ack fails the run).
const deliveryLease = 5 * time.Minute

// runDelivery measures webhook delivery end to end on each backend and with each sink: signed ingests
// through the gateway (as the webhook suite sends them) into a subscription whose deliveries the sink
// takes and acknowledges (pull: consumers Receive and Ack; push: the service POSTs each to an HTTP
// endpoint, which answers 204), senders and sink in the load generator's process (tools/bench/loadgen,
// -call delivery), the webhook service and the gateway each in their own (tools/bench/internal/
// webhookserver).
func runDelivery(o options) error {
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
	rep := &deliveryReport{o: o}
	for _, b := range o.backends {
		for _, sink := range o.delivery.sinks {
			if err := benchDelivery(o, bin, b, sink, rep); err != nil {
				return fmt.Errorf("%s delivery (%s): %w", b, sink, err)
			}
		}
	}
	rep.print(os.Stdout, time.Since(started))
	return nil
}

// benchDelivery starts the service and the gateway on a new store, creates the subscription (in the
// sink's mode) and measures each offered rate -n times, the rates in a different order each round.
func benchDelivery(o options, bin, backend, sink string, rep *deliveryReport) error {
	setup, err := newWebhookSetup()
	if err != nil {
		return err
	}
	consumeKey, err := auth.NewAPIKey("agent")
	if err != nil {
		return err
	}
	adminKey, err := auth.NewAPIKey("admin")
	if err != nil {
		return err
	}
	setup.keys = fmt.Sprintf(`{"keys":[{"id":"gateway","sha256":%q,"scopes":[%q]},{"id":"agent","sha256":%q,"scopes":[%q]},{"id":"admin","sha256":%q,"scopes":[%q]}]}`,
		auth.HashAPIKey(setup.key), auth.ScopeWebhookIngest, auth.HashAPIKey(consumeKey), auth.ScopeWebhookConsume,
		auth.HashAPIKey(adminKey), auth.ScopeWebhookAdmin)
	dir, err := os.MkdirTemp("", "sergas-bench-delivery-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	schema := fmt.Sprintf("bench_delivery_%d", time.Now().UnixNano())
	env, err := webhookServiceEnv(backend, setup, dir, schema)
	if err != nil {
		return err
	}
	var push *pushSetup
	if sink == "push" {
		if push, err = newPushSetup(); err != nil {
			return err
		}
		// Push subscriptions' signing secrets are sealed under it: a key made for this run, gone with
		// its store.
		env["WEBHOOK_ENCRYPTION_KEYS"] = push.keys
	}
	pprofAddr := ""
	if o.profileDir != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
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
	gw, err := startServer(bin+"/webhookserver", gatewayEnv(setup, dir, svc.addr), "", "-role", "gateway")
	if err != nil {
		return err
	}
	defer func() {
		if err := gw.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}()
	sub, err := createBenchSubscription(svc.addr, adminKey, push)
	if err != nil {
		return err
	}
	if push != nil {
		os.Setenv("BENCH_PUSH_SECRET", push.secret) // for the load generator's endpoint, which verifies with it
	}
	os.Setenv("BENCH_WEBHOOK_SECRET", setup.sourceSecret) // for the load generator, which inherits it
	// The load generator sends to the gateway and consumes from the service; the CPU it reports as the
	// server's is the webhook service's.
	target := &serverProc{cmd: svc.cmd, addr: gw.addr, pprof: svc.pprof}
	extra := func(rate float64) []string {
		args := []string{"-service-addr", svc.addr, "-subscription", sub, "-rate", strconv.FormatFloat(rate, 'f', -1, 64),
			"-sink", sink, "-consumers", strconv.Itoa(o.delivery.consumers), "-in-flight", strconv.Itoa(o.delivery.inFlight),
			"-max-duplicate-share", strconv.FormatFloat(maxDuplicateShare, 'f', -1, 64)}
		if push != nil {
			args = append(args, "-push-addr", push.addr)
		}
		return append(args, dbFlags(backend)...)
	}
	if o.profileDir != "" {
		// By default at saturation: where the service's time goes when it cannot keep up.
		po := o
		po.profileC = o.delivery.senders
		name := "delivery-" + sink + "-" + strings.TrimSuffix(rateName(o.delivery.profileRate), "/s")
		if err := profileRun(po, bin, backend, target, consumeKey, "delivery", name, extra(o.delivery.profileRate)...); err != nil {
			return err
		}
	}
	for i := range o.reps {
		for j := range o.delivery.rates {
			rate := o.delivery.rates[(i+j)%len(o.delivery.rates)]
			gw0 := procCPU(gw.cmd.Process.Pid)
			r, err := loadDelivery(bin+"/loadgen", target, consumeKey, o.delivery.senders, o.d, o.warmup, extra(rate))
			if err != nil {
				return err
			}
			if calls := r.PerSecond * (o.d + o.warmup).Seconds(); calls > 0 {
				r.GatewayCPU = float64((procCPU(gw.cmd.Process.Pid) - gw0).Microseconds()) / calls
			}
			rep.add(backend, sink, rate, r)
			fmt.Fprintf(os.Stderr, "%s | delivery, %s | offered %s | run %d: ingested %.0f/s, delivered %.0f/s, receipt-to-delivery p50 %.1f ms, p99 %.1f ms, backlog at end %d, drained in %.1f s, %.1f deliveries per Ack, %d duplicates, CPU µs/event: gateway ≈%.0f, webhook service %.0f, load generator %.0f, database %.0f\n",
				backend, sink, rateName(rate), i+1, r.PerSecond, r.DeliveredPerSecond, r.AckP50ms, r.AckP99ms, r.BacklogEnd, r.DrainSeconds, r.PerAck, r.Duplicates, r.GatewayCPU, r.ServerCPU, r.ClientCPU, r.DBCPU)
		}
	}
	return nil
}

// pushSetup is a push run's: the endpoint's address (the load generator listens there during each run),
// the subscription's signing secret and the service's keyring that seals it.
type pushSetup struct {
	addr, secret, keys string
}

func newPushSetup() (*pushSetup, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	keys, err := keyring.NewKeySpec("bench")
	if err != nil {
		return nil, err
	}
	return &pushSetup{addr: addr, secret: "whsec_" + base64.StdEncoding.EncodeToString(raw), keys: keys}, nil
}

// pushEndpoint is the subscription's endpoint: plain http on loopback, which allow_private_network
// permits.
func (p *pushSetup) endpoint() string { return "http://" + p.addr + "/bench/push" }

// createBenchSubscription subscribes to every event of the bench source, with deliveryLease; in push mode
// (push set) to the load generator's endpoint, with the push timeout left at its default (10 s).
func createBenchSubscription(addr, adminKey string, push *pushSetup) (string, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminKey)
	req := &webhookv1.CreateSubscriptionRequest{Name: "bench",
		Filter: &webhookv1.EventFilter{Sources: []string{"bench"}}, LeaseDuration: durationpb.New(deliveryLease)}
	if push != nil {
		req.Mode = webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH
		req.Push = &webhookv1.PushConfig{Endpoint: push.endpoint(), AllowPrivateNetwork: true, SigningSecret: push.secret}
	}
	resp, err := webhookv1.NewWebhookServiceClient(conn).CreateSubscription(ctx, req)
	if err != nil {
		return "", fmt.Errorf("CreateSubscription: %w", err)
	}
	return resp.GetSubscription().GetId(), nil
}

// deliveryResult is one delivery run of the load generator (its JSON line).
type deliveryResult struct {
	result
	OfferedPerSecond   float64 `json:"offered_per_second"`
	DeliveredPerSecond float64 `json:"delivered_per_second"`
	Delivered          int     `json:"delivered"`
	AckP50ms           float64 `json:"ack_p50_ms"`
	AckP99ms           float64 `json:"ack_p99_ms"`
	BacklogEnd         int     `json:"backlog_end"`
	DrainSeconds       float64 `json:"drain_seconds"`
	PerAck             float64 `json:"per_ack"`
	Duplicates         int64   `json:"duplicates"`
	// GatewayCPU is the gateway's CPU per ingest (µs), read around the whole run: approximate.
	GatewayCPU float64 `json:"-"`
}

// loadDelivery runs the load generator's delivery call; a failed call or a lost delivery fails the run.
func loadDelivery(bin string, s *serverProc, key string, senders int, d, warmup time.Duration, extra []string) (deliveryResult, error) {
	args := append([]string{"-addr", s.addr, "-call", "delivery", "-c", strconv.Itoa(senders), "-d", d.String(), "-warmup", warmup.String(),
		"-server-pid", strconv.Itoa(s.cmd.Process.Pid)}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "BENCH_API_KEY="+key)
	cmd.Stderr = os.Stderr
	// The run, its drain (a minute at most) and slack.
	ctx, cancel := context.WithTimeout(context.Background(), d+warmup+3*time.Minute)
	defer cancel()
	out, err := runBounded(ctx, cmd)
	if err != nil {
		return deliveryResult{}, fmt.Errorf("loadgen delivery %v: %w", extra, err)
	}
	var r deliveryResult
	if err := json.Unmarshal(out, &r); err != nil {
		return deliveryResult{}, fmt.Errorf("loadgen output %q: %w", out, err)
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("delivery: %d of %d ingests failed, first: %s", r.Errors, r.Calls, r.FirstError)
	}
	return r, nil
}

func rateName(r float64) string {
	if r == 0 {
		return "saturation"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// splitSinks reads -delivery-sink: pull, push or both, each once.
func splitSinks(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if (f != "pull" && f != "push") || slices.Contains(out, f) {
			return nil, fmt.Errorf("bad sink %q in %q (pull, push)", f, s)
		}
		out = append(out, f)
	}
	return out, nil
}

// splitRates reads -delivery-rates: offered rates per second, 0 for saturation.
func splitRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r < 0 {
			return nil, fmt.Errorf("bad rate %q in %q", f, s)
		}
		out = append(out, r)
	}
	return out, nil
}
