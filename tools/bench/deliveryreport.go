package main

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Issue #10's targets on this machine: events delivered end to end per second (with ingest running at
// the same time), and the receipt-to-ack p99 below saturation.
const (
	deliveryTarget    = 3000.0
	deliveryP99Target = 100.0 // ms
)

// deliveryReport collects the delivery suite's runs and prints its Markdown.
type deliveryReport struct {
	o    options
	runs map[deliveryKey][]deliveryResult
}

type deliveryKey struct {
	backend string
	sink    string
	rate    float64
}

func (r *deliveryReport) add(backend, sink string, rate float64, res deliveryResult) {
	if r.runs == nil {
		r.runs = map[deliveryKey][]deliveryResult{}
	}
	k := deliveryKey{backend, sink, rate}
	r.runs[k] = append(r.runs[k], res)
}

func pickDelivery(rs []deliveryResult, f func(deliveryResult) float64) spread {
	xs := make([]float64, 0, len(rs))
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return spreadOf(xs)
}

func delivered(r deliveryResult) float64 { return r.DeliveredPerSecond }

// backendsWorstFirst orders backends by their delivered rate at saturation against the target (the
// lowest of their sinks').
func (r *deliveryReport) backendsWorstFirst() []string {
	sat := map[string]float64{}
	for _, b := range r.o.backends {
		for _, sink := range r.o.delivery.sinks {
			if v := pickDelivery(r.runs[deliveryKey{b, sink, 0}], delivered).med; sat[b] == 0 || v < sat[b] {
				sat[b] = v
			}
		}
	}
	bs := slices.Clone(r.o.backends)
	slices.SortStableFunc(bs, func(a, b string) int {
		switch {
		case sat[a] < sat[b]:
			return -1
		case sat[a] > sat[b]:
			return 1
		}
		return 0
	})
	return bs
}

// ratesOf lists the rates measured with a sink: fixed ones in increasing order, then saturation.
func (r *deliveryReport) ratesOf(backend, sink string) []float64 {
	var rs []float64
	for k := range r.runs {
		if k.backend == backend && k.sink == sink {
			rs = append(rs, k.rate)
		}
	}
	slices.SortFunc(rs, func(a, b float64) int {
		switch {
		case a == b:
			return 0
		case a == 0:
			return 1
		case b == 0:
			return -1
		case a < b:
			return -1
		}
		return 1
	})
	return rs
}

func span(s spread, format string) string {
	return fmt.Sprintf(format+" ("+format+"–"+format+")", s.med, s.min, s.max)
}

func (r *deliveryReport) print(w io.Writer, took time.Duration) {
	o := r.o
	fmt.Fprintf(w, "\n### Webhook delivery (%s)\n\nMeasured %s on %s; Go %s; SQLite (WAL, synchronous=NORMAL) and PostgreSQL on loopback (fsync on).\n",
		strings.Join(o.delivery.sinks, " and "), time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), strings.TrimPrefix(runtime.Version(), "go"))
	fmt.Fprintf(w, "End to end: %d senders POST 1 KiB signed webhooks to the gateway (as in the webhook ingress benchmark: hmac source, one kept-alive connection each, only 202 counts), "+
		"at a fixed offered rate in all or, at saturation, each as fast as it is answered, into one subscription to every event (lease %s), while its deliveries are taken at the same time. ",
		o.delivery.senders, deliveryLease)
	if slices.Contains(o.delivery.sinks, "pull") {
		fmt.Fprintf(w, "Pull: %d consumers each keep a streaming gRPC Receive open on the webhook service (max_in_flight %d) and acknowledge each message's deliveries with one Ack call before reading the next. ",
			o.delivery.consumers, o.delivery.inFlight)
	}
	if slices.Contains(o.delivery.sinks, "push") {
		fmt.Fprint(w, "Push: the subscription is in push mode (http on loopback, allow_private_network, push timeout 10 s) and the service's push workers (defaults: 3 workers, batches of 10) POST each delivery to an HTTP endpoint in the load generator, "+
			"which verifies its Standard Webhooks signature and timestamp, reads the event's id and receiveTime from the body and answers 204. ")
	}
	fmt.Fprintf(w, "Senders and sink run in the load generator's process; the gateway and the webhook service each in their own, in production mode (every budget on but never reached, backpressure off), a new service and store for each sink. "+
		"Delivered/s counts the deliveries recorded during the measured window: pull when the Ack is answered, push when the endpoint has received the request; receipt-to-delivery is from the event's receive_time (the webhook service's receipt, as stored) to that moment, over those deliveries. "+
		"Deliveries per Ack (pull) is the mean batch a consumer read in one Receive message and settled in one Ack, over the whole run. "+
		"After each window the senders stop and the run waits until every event sent is delivered: a lost delivery fails the run; "+
		"a delivery acknowledged twice fails a pull run, while push is at least once, so a second receipt of an event is counted as a duplicate (more than %.0f%% of the events sent fails the run). "+
		"Each point: %d runs of %s after a %s warm-up, rates in a different order each round; median (min–max). "+
		"CPU is user+system time per ingested event of the gateway (approximate), the webhook service, the load generator (senders and sink) and (PostgreSQL) every postgres process. Whole run: %s.\n\n",
		100*maxDuplicateShare, o.reps, o.d, o.warmup, took.Round(time.Second))
	fmt.Fprintln(w, "| backend | sink | offered/s | ingested/s | delivered/s | target 3,000/s | receipt-to-delivery p50 ms | p99 ms | p99 < 100 ms | backlog at end of window | deliveries per Ack | duplicates | CPU µs/event: gateway + webhook service + load generator (+ PostgreSQL) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, b := range r.backendsWorstFirst() {
		for _, sink := range o.delivery.sinks {
			for _, rate := range r.ratesOf(b, sink) {
				fmt.Fprintln(w, r.row(b, sink, rate))
			}
		}
	}
}

// row is one point's table row.
func (r *deliveryReport) row(b, sink string, rate float64) string {
	rs := r.runs[deliveryKey{b, sink, rate}]
	med := func(f func(deliveryResult) float64) float64 { return pickDelivery(rs, f).med }
	dv := pickDelivery(rs, delivered)
	target, p99ok := "—", "—"
	p99 := pickDelivery(rs, func(r deliveryResult) float64 { return r.AckP99ms })
	if rate == 0 {
		target = map[bool]string{true: "met", false: "not met"}[dv.med >= deliveryTarget]
	} else {
		p99ok = map[bool]string{true: "yes", false: "no"}[p99.med < deliveryP99Target]
	}
	perAck := "—" // push: one delivery per request
	if sink == "pull" {
		perAck = span(pickDelivery(rs, func(r deliveryResult) float64 { return r.PerAck }), "%.1f")
	}
	cpu := fmt.Sprintf("%.0f + %.0f + %.0f", med(func(r deliveryResult) float64 { return r.GatewayCPU }),
		med(func(r deliveryResult) float64 { return r.ServerCPU }), med(func(r deliveryResult) float64 { return r.ClientCPU }))
	if b == "postgres" {
		cpu += fmt.Sprintf(" (+ %.0f)", med(func(r deliveryResult) float64 { return r.DBCPU }))
	}
	return fmt.Sprintf("| %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s | %s |", b, sink, rateName(rate),
		span(pickDelivery(rs, func(r deliveryResult) float64 { return r.PerSecond }), "%.0f"), span(dv, "%.0f"), target,
		span(pickDelivery(rs, func(r deliveryResult) float64 { return r.AckP50ms }), "%.1f"), span(p99, "%.1f"), p99ok,
		span(pickDelivery(rs, func(r deliveryResult) float64 { return float64(r.BacklogEnd) }), "%.0f"), perAck,
		span(pickDelivery(rs, func(r deliveryResult) float64 { return float64(r.Duplicates) }), "%.0f"), cpu)
}
