package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// The delivery call (-call delivery) measures webhook delivery end to end: -c senders POST signed
// webhooks to the gateway at -addr (the webhook call, paced to -rate per second in all, or as fast as
// they are answered with -rate 0) while a sink takes the subscription's deliveries and acknowledges
// every one: pull consumers (Receive and Ack on the subscription -subscription) or, with -sink push, an
// HTTP endpoint on -push-addr the service POSTs them to (delivery_push.go). It reports the ingests/s, the acknowledgements/s and the receipt-to-ack latency over
// the measured window; then it stops sending and waits (up to -drain) until every event it sent is
// acknowledged, so that the next run starts on an empty backlog and a lost delivery fails the run.
var (
	serviceAddr  = flag.String("service-addr", "", "delivery: the webhook service's gRPC address (consumers connect there)")
	subscription = flag.String("subscription", "", "delivery: the subscription to consume")
	rate         = flag.Float64("rate", 0, "delivery: offered ingests per second in all (0: as fast as answered)")
	sinkKind     = flag.String("sink", "pull", "delivery: pull (streaming gRPC Receive, Ack per message) or push (an HTTP endpoint on -push-addr, 204 per request)")
	pushAddr     = flag.String("push-addr", "", "delivery: where the push sink listens (the push subscription's endpoint names it); the signing secret comes from BENCH_PUSH_SECRET")
	consumers    = flag.Int("consumers", 4, "delivery: pull consumers (one Receive stream each)")
	inFlight     = flag.Int("in-flight", 100, "delivery: max_in_flight of each pull consumer")
	// maxDupShare: a few duplicates are what at least once allows; many would mean settles are lost.
	maxDupShare = flag.Float64("max-duplicate-share", 0.05, "delivery: duplicates over events sent above which the run fails")
	drain       = flag.Duration("drain", time.Minute, "delivery: how long to wait after the run for every sent event to be acknowledged")
)

// DeliveryResult is what the delivery call prints: the senders' Result (calls, per_second: ingests)
// and the sink's.
type DeliveryResult struct {
	Result
	OfferedPerSecond   float64 `json:"offered_per_second"`
	DeliveredPerSecond float64 `json:"delivered_per_second"`
	Delivered          int     `json:"delivered"`
	// AckP50ms and AckP99ms are receipt to delivery: from the event's receive_time (when the webhook
	// service received it, as stored) to the answer of the Ack that settled it (pull) or to the push
	// endpoint's receipt of it (push), over the deliveries recorded in the window.
	AckP50ms float64 `json:"ack_p50_ms"`
	AckP99ms float64 `json:"ack_p99_ms"`
	// BacklogEnd is how many sent events were not yet acknowledged when the window ended.
	BacklogEnd int `json:"backlog_end"`
	// DrainSeconds is how long the backlog took to reach zero after the window.
	DrainSeconds float64 `json:"drain_seconds"`
	// PerAck is the mean number of deliveries each settling call carried (pull: per Ack, which is per
	// Receive message), over the whole run: how well claims and acks are batched. Push: 0 (one each).
	PerAck float64 `json:"per_ack"`
	// Duplicates is how many deliveries arrived again after their first receipt (push is at least once;
	// a pull delivery acknowledged twice fails the run instead).
	Duplicates int64 `json:"duplicates"`
}

// ackRecord is one acknowledged delivery: when the Ack was answered, and the receipt-to-ack latency.
type ackRecord struct {
	at      time.Time
	latency time.Duration
}

// sink consumes the subscription's deliveries and records each one once: pull when its Ack is
// answered, push when the endpoint has received it (it answers 204 at once).
type sink interface {
	// run consumes until ctx ends; record is called for the first acknowledgement of each delivery.
	run(ctx context.Context, record func(ackRecord)) error
	// settles is how many settling calls (Acks, or answers to pushes) were made.
	settles() int64
	// duplicates is how many deliveries were received again after being recorded.
	duplicates() int64
}

func newSink(kind string) (sink, error) {
	switch kind {
	case "pull":
		if *serviceAddr == "" || *subscription == "" {
			return nil, fmt.Errorf("the pull sink needs -service-addr and -subscription")
		}
		return &pullSink{addr: *serviceAddr, sub: *subscription, consumers: *consumers, inFlight: int32(*inFlight)}, nil
	case "push":
		if *pushAddr == "" {
			return nil, fmt.Errorf("the push sink needs -push-addr")
		}
		return newPushSink(*pushAddr, os.Getenv("BENCH_PUSH_SECRET"))
	}
	return nil, fmt.Errorf("unknown -sink %q", kind)
}

func runDelivery(addr string, callers int, d, warm time.Duration) error {
	s, err := newSink(*sinkKind)
	if err != nil {
		return err
	}
	send, err := webhookCall("webhook", addr, callers)
	if err != nil {
		return err
	}
	if *rate > 0 {
		send = paced(send, *rate)
	}
	var (
		mu      sync.Mutex
		records []ackRecord
		acked   atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sinkErr := make(chan error, 1)
	go func() {
		sinkErr <- s.run(ctx, func(r ackRecord) {
			acked.Add(1)
			mu.Lock()
			records = append(records, r)
			mu.Unlock()
		})
	}()
	sent := 0
	if warm > 0 {
		r := measure(ctx, send, callers, warm)
		if r.Errors > 0 {
			return fmt.Errorf("warm-up: %d calls failed, first: %s", r.Errors, r.FirstError)
		}
		sent += r.Calls
	}
	cpu0, own0, db0 := serverCPU(), ownCPU(), processCPU(dbProcess)
	start := time.Now()
	r := measure(ctx, send, callers, d)
	end := time.Now()
	out := DeliveryResult{Result: r, OfferedPerSecond: *rate}
	if cpu1 := serverCPU(); cpu0 > 0 && cpu1 > cpu0 && r.Calls > 0 {
		out.ServerCPUus = float64((cpu1 - cpu0).Microseconds()) / float64(r.Calls)
	}
	if r.Calls > 0 {
		out.ClientCPUus = float64((ownCPU() - own0).Microseconds()) / float64(r.Calls)
		if db1 := processCPU(dbProcess); db1 > db0 {
			out.DBCPUus = float64((db1 - db0).Microseconds()) / float64(r.Calls)
		}
	}
	sent += r.Calls
	out.BacklogEnd = sent - int(acked.Load())
	// Drain: every event sent must be acknowledged, or the run fails.
	drained := time.Now()
	for deadline := drained.Add(*drain); acked.Load() < int64(sent); {
		select {
		case err := <-sinkErr:
			return fmt.Errorf("sink stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d events sent not acknowledged %s after the run", int64(sent)-acked.Load(), sent, *drain)
		}
	}
	out.DrainSeconds = time.Since(drained).Seconds()
	cancel()
	if err := <-sinkErr; err != nil {
		return fmt.Errorf("sink: %v", err)
	}
	if n := acked.Load(); n != int64(sent) {
		return fmt.Errorf("%d deliveries acknowledged for %d events sent: one each expected", n, sent)
	}
	out.Duplicates = s.duplicates()
	if float64(out.Duplicates) > *maxDupShare*float64(sent) {
		return fmt.Errorf("%d duplicate deliveries for %d events sent: more than %g%%", out.Duplicates, sent, 100**maxDupShare)
	}
	if _, push := s.(*pushSink); !push {
		if n := s.settles(); n > 0 {
			out.PerAck = float64(sent) / float64(n)
		}
	}
	var lat []time.Duration
	for _, a := range records {
		if !a.at.Before(start) && a.at.Before(end) {
			lat = append(lat, a.latency)
		}
	}
	slices.Sort(lat)
	out.Delivered = len(lat)
	out.DeliveredPerSecond = float64(len(lat)) / end.Sub(start).Seconds()
	if len(lat) > 0 {
		out.AckP50ms = msOf(lat[len(lat)*50/100])
		out.AckP99ms = msOf(lat[min(len(lat)-1, len(lat)*99/100)])
	}
	out.Call, out.Callers = "delivery", callers
	return json.NewEncoder(os.Stdout).Encode(out)
}

func msOf(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// paced spreads calls of fn to perSecond in all, whichever caller makes them: each call waits for its
// slot on one shared schedule. A caller that falls behind catches up at once, so the offered rate holds
// on average while the server keeps up.
func paced(fn func(context.Context) error, perSecond float64) func(context.Context) error {
	interval := time.Duration(float64(time.Second) / perSecond)
	start := time.Now()
	var n atomic.Int64
	return func(ctx context.Context) error {
		slot := start.Add(time.Duration(n.Add(1)) * interval)
		if wait := time.Until(slot); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		return fn(ctx)
	}
}

// pullSink consumes with streaming gRPC Receive: consumers streams, each acknowledging the deliveries of
// a message with one Ack call before it reads the next.
type pullSink struct {
	addr      string
	sub       string
	consumers int
	inFlight  int32
	acks      atomic.Int64
}

func (p *pullSink) settles() int64 { return p.acks.Load() }

// duplicates is 0: a delivery handed out again after its Ack would be refused, and a refused Ack fails
// the run.
func (p *pullSink) duplicates() int64 { return 0 }

func (p *pullSink) run(ctx context.Context, record func(ackRecord)) error {
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := webhookv1.NewWebhookServiceClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+os.Getenv("BENCH_API_KEY"))
	errc := make(chan error, p.consumers)
	for i := range p.consumers {
		go func() { errc <- p.consume(ctx, c, fmt.Sprintf("bench-%d-%d", os.Getpid(), i), record) }()
	}
	var first error
	for range p.consumers {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// maxStreamMessages bounds one consumer's loop: far more messages than a run receives.
const maxStreamMessages = 100_000_000

func (p *pullSink) consume(ctx context.Context, c webhookv1.WebhookServiceClient, name string, record func(ackRecord)) error {
	stream, err := c.Receive(ctx, &webhookv1.ReceiveRequest{SubscriptionId: p.sub, Consumer: name, MaxInFlight: p.inFlight})
	if err != nil {
		return err
	}
	ids := make([]string, 0, p.inFlight)
	received := make([]time.Time, 0, p.inFlight)
	for range maxStreamMessages {
		msg, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil && status.Code(err) == codes.Canceled {
				return nil
			}
			return fmt.Errorf("%s: Recv: %w", name, err)
		}
		ids, received = ids[:0], received[:0]
		for _, ld := range msg.GetDeliveries() {
			ids = append(ids, ld.GetAckId())
			received = append(received, ld.GetEvent().GetReceiveTime().AsTime())
		}
		if len(ids) == 0 {
			continue // a heartbeat
		}
		resp, err := c.Ack(ctx, &webhookv1.AckRequest{AckIds: ids})
		p.acks.Add(1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: Ack: %w", name, err)
		}
		if n := len(resp.GetRefusedAckIds()); n > 0 {
			return fmt.Errorf("%s: %d of %d acks refused (a lease ended before its Ack: raise the subscription's lease)", name, n, len(ids))
		}
		now := time.Now()
		for _, t := range received {
			record(ackRecord{at: now, latency: now.Sub(t)})
		}
	}
	return fmt.Errorf("%s: more than %d messages", name, maxStreamMessages)
}
