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
	rate    float64
}

func (r *deliveryReport) add(backend string, rate float64, res deliveryResult) {
	if r.runs == nil {
		r.runs = map[deliveryKey][]deliveryResult{}
	}
	k := deliveryKey{backend, rate}
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

// backendsWorstFirst orders backends by their delivered rate at saturation against the target.
func (r *deliveryReport) backendsWorstFirst() []string {
	sat := map[string]float64{}
	for _, b := range r.o.backends {
		sat[b] = pickDelivery(r.runs[deliveryKey{b, 0}], delivered).med
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

// ratesOf lists the rates measured: fixed ones in increasing order, then saturation.
func (r *deliveryReport) ratesOf(backend string) []float64 {
	var rs []float64
	for k := range r.runs {
		if k.backend == backend {
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
	fmt.Fprintf(w, "\n### Webhook delivery (pull)\n\nMeasured %s on %s; Go %s; SQLite (WAL, synchronous=NORMAL) and PostgreSQL on loopback (fsync on).\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), strings.TrimPrefix(runtime.Version(), "go"))
	fmt.Fprintf(w, "End to end: %d senders POST 1 KiB signed webhooks to the gateway (as in the webhook ingress benchmark: hmac source, one kept-alive connection each, only 202 counts), "+
		"at a fixed offered rate in all or, at saturation, each as fast as it is answered; at the same time %d consumers each keep a streaming gRPC Receive open on the webhook service "+
		"(max_in_flight %d) on one subscription to every event (lease %s) and acknowledge each message's deliveries with one Ack call before reading the next. "+
		"Senders and consumers run in the load generator's process; the gateway and the webhook service each in their own, in production mode (every budget on but never reached, backpressure off). "+
		"Delivered/s counts the deliveries whose Ack was answered during the measured window; receipt-to-ack is from the event's receive_time (the webhook service's receipt, as stored) to the Ack's answer, over those deliveries. "+
		"Deliveries per Ack is the mean batch a consumer read in one Receive message and settled in one Ack, over the whole run. "+
		"After each window the senders stop and the run waits until every event sent is acknowledged (once: a lost or doubled delivery fails the run), so each run starts on an empty backlog. "+
		"Each point: %d runs of %s after a %s warm-up, rates in a different order each round; median (min–max). "+
		"CPU is user+system time per ingested event of the gateway (approximate), the webhook service, the load generator (senders and consumers) and (PostgreSQL) every postgres process. Whole run: %s.\n\n",
		o.delivery.senders, o.delivery.consumers, o.delivery.inFlight, deliveryLease, o.reps, o.d, o.warmup, took.Round(time.Second))
	fmt.Fprintln(w, "| backend | offered/s | ingested/s | delivered/s | target 3,000/s | receipt-to-ack p50 ms | p99 ms | p99 < 100 ms | backlog at end of window | deliveries per Ack | CPU µs/event: gateway + webhook service + load generator (+ PostgreSQL) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, b := range r.backendsWorstFirst() {
		for _, rate := range r.ratesOf(b) {
			rs := r.runs[deliveryKey{b, rate}]
			dv := pickDelivery(rs, delivered)
			target, p99ok := "—", "—"
			p99 := pickDelivery(rs, func(r deliveryResult) float64 { return r.AckP99ms })
			if rate == 0 {
				target = map[bool]string{true: "met", false: "not met"}[dv.med >= deliveryTarget]
			} else {
				p99ok = map[bool]string{true: "yes", false: "no"}[p99.med < deliveryP99Target]
			}
			cpu := fmt.Sprintf("%.0f + %.0f + %.0f", pickDelivery(rs, func(r deliveryResult) float64 { return r.GatewayCPU }).med,
				pickDelivery(rs, func(r deliveryResult) float64 { return r.ServerCPU }).med, pickDelivery(rs, func(r deliveryResult) float64 { return r.ClientCPU }).med)
			if b == "postgres" {
				cpu += fmt.Sprintf(" (+ %.0f)", pickDelivery(rs, func(r deliveryResult) float64 { return r.DBCPU }).med)
			}
			fmt.Fprintf(w, "| %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s |\n", b, rateName(rate),
				span(pickDelivery(rs, func(r deliveryResult) float64 { return r.PerSecond }), "%.0f"), span(dv, "%.0f"), target,
				span(pickDelivery(rs, func(r deliveryResult) float64 { return r.AckP50ms }), "%.1f"), span(p99, "%.1f"), p99ok,
				span(pickDelivery(rs, func(r deliveryResult) float64 { return float64(r.BacklogEnd) }), "%.0f"),
				span(pickDelivery(rs, func(r deliveryResult) float64 { return r.PerAck }), "%.1f"), cpu)
		}
	}
}
