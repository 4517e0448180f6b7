package webhook

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sergas/core/internal/db"
)

// histCount is how many observations histogram name holds for the series with labels.
func histCount(t *testing.T, name string, labels map[string]string) uint64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// The delivery metrics follow what consumers do, per subscription id: an ack counts delivered and
// observes receipt-to-ack and the attempt; a delivery handed out again after a nack or an expired lease
// counts a retry; a nack of the last attempt counts a dead letter. Deleting the subscription's series
// forgets them.
func TestDeliveryMetrics(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 1, lease: 5 * time.Second})
		sub := r.sub.GetId()
		r.ingest(t)
		r.ingest(t)
		first := r.pollOne(t, "c")
		r.clock.advance(2 * time.Second)
		r.ack(t, first.GetAckId())
		// The second: its lease expires, it is retried, then nacked on its last attempt.
		r.pollOne(t, "c")
		r.clock.advance(6 * time.Second)
		last := r.pollOne(t, "c")
		r.nack(t, "no", durationpb.New(0), last.GetAckId())

		for name, c := range map[string]struct{ got, want float64 }{
			"delivered":     {promtest.ToFloat64(deliveredTotal.WithLabelValues(sub)), 1},
			"retried":       {promtest.ToFloat64(retriedTotal.WithLabelValues(sub)), 1},
			"dead lettered": {promtest.ToFloat64(deadLetteredTotal.WithLabelValues(sub)), 1},
		} {
			if c.got != c.want {
				t.Errorf("%s: %v, want %v", name, c.got, c.want)
			}
		}
		if n := histCount(t, "webhook_processing_duration_seconds", map[string]string{"subscription": sub}); n != 1 {
			t.Errorf("processing observations %d, want 1", n)
		}
		if n := histCount(t, "webhook_delivery_attempt_duration_seconds", map[string]string{"subscription": sub, "outcome": "acked"}); n != 1 {
			t.Errorf("acked attempt observations %d, want 1", n)
		}
		if n := histCount(t, "webhook_delivery_attempt_duration_seconds", map[string]string{"subscription": sub, "outcome": "nacked"}); n != 1 {
			t.Errorf("nacked attempt observations %d, want 1", n)
		}
		forgetSubscriptionMetrics(sub)
		if histCount(t, "webhook_processing_duration_seconds", map[string]string{"subscription": sub}) != 0 {
			t.Error("the subscription's series were not forgotten")
		}
	})
}
