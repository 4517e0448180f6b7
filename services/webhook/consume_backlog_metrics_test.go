package webhook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// gaugeValues are the values of gauge name in g, by label values joined with "/" (label order as the
// metric gives them), for the series whose subscription label is sub.
func gaugeValues(t *testing.T, g prometheus.Gatherer, name, sub string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key, mine := "", false
			for _, l := range m.GetLabel() {
				if l.GetName() == "subscription" {
					mine = l.GetValue() == sub
					continue
				}
				key += l.GetValue()
			}
			if mine {
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// The backlog gauges follow the store, per subscription: the counts by status and the age of the oldest
// outstanding delivery; a claim that finds an expired lease with no attempt left counts a dead letter.
// Both are read from the default registry, as a scrape of the service's /metrics would.
func TestBacklogGaugesAndClaimDeadLetters(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 0, lease: 5 * time.Second})
		sub := r.sub.GetId()
		received := r.clock.now() // events are received on the rig's clock
		for range 3 {
			r.ingest(t)
		}
		r.pollOne(t, "c") // the first, leased until +5 s
		r.clock.advance(6 * time.Second)
		// Due: the two pending ones (received earlier), then the expired lease, out of attempts: it
		// becomes a dead letter instead of being handed out.
		if got := r.poll(t, "c", 3); len(got) != 2 {
			t.Fatalf("claimed %d, want the two pending", len(got))
		}
		if n := promtest.ToFloat64(deadLetteredTotal.WithLabelValues(sub)); n != 1 {
			t.Fatalf("dead letters counted %v, want 1 (the expired lease the claim made one)", n)
		}
		r.ingest(t) // pending
		want := map[string]float64{"pending": 1, "leased": 2, "failed": 0, "dead_letter": 1}
		var got map[string]float64
		// Another test's scrape may have read this store moments ago: the reading is reused for 5 s.
		testutil.Eventually(t, 3*backlogReuse, "the backlog gauges of the subscription", func() bool {
			got = gaugeValues(t, prometheus.DefaultGatherer, "webhook_subscription_backlog", sub)
			return len(got) == len(want) && got["pending"] == 1 && got["leased"] == 2 && got["failed"] == 0 && got["dead_letter"] == 1
		})
		before := time.Since(received).Seconds()
		age := gaugeValues(t, prometheus.DefaultGatherer, "webhook_subscription_oldest_pending_seconds", sub)[""]
		// The oldest outstanding ones were received at the rig's start (its clock is far behind the
		// real one, which the gauge reads): their age is the real time since.
		if after := time.Since(received).Seconds(); age < before-backlogReuse.Seconds()-1 || age > after {
			t.Fatalf("oldest pending age %v, want about %v", age, before)
		}

		if _, err := r.client.DeleteSubscription(t.Context(), &webhookv1.DeleteSubscriptionRequest{Id: sub}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 3*backlogReuse, "the deleted subscription's gauges gone", func() bool {
			return len(gaugeValues(t, prometheus.DefaultGatherer, "webhook_subscription_backlog", sub)) == 0 &&
				len(gaugeValues(t, prometheus.DefaultGatherer, "webhook_subscription_oldest_pending_seconds", sub)) == 0
		})
	})
}

// countingBacklogs is a delivery store whose backlogs are set by the test, counting the readings.
type countingBacklogs struct {
	store.DeliveryStore
	calls atomic.Int32
	got   atomic.Pointer[[]store.Backlog]
	err   atomic.Pointer[error]
}

func (c *countingBacklogs) SubscriptionBacklogs(context.Context) ([]store.Backlog, error) {
	c.calls.Add(1)
	if err := c.err.Load(); err != nil {
		return nil, *err
	}
	return *c.got.Load(), nil
}

// A fast scraper costs the database one reading per 5 s; a deleted subscription's series go at the next
// reading; a failed reading reports nothing and is not retried by every scrape; two servers over one
// database report each subscription once.
func TestBacklogGaugesReuseAReading(t *testing.T) {
	clock := newTestClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ds := &countingBacklogs{}
	oldest := clock.now().Add(-90 * time.Second)
	two := []store.Backlog{{SubscriptionID: "a", Pending: 3, Leased: 1, Failed: 2, DeadLetter: 4, OldestUndelivered: oldest}, {SubscriptionID: "b"}}
	ds.got.Store(&two)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &backlogCollector{sources: map[*backlogSource]struct{}{}}
	c.add(&backlogSource{ds: ds, log: log, now: clock.now})
	c.add(&backlogSource{ds: ds, log: log, now: clock.now}) // a second server over the same database
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	for range 50 {
		if got := gaugeValues(t, reg, "webhook_subscription_backlog", "a"); got["pending"] != 3 || got["dead_letter"] != 4 || got["leased"] != 1 || got["failed"] != 2 {
			t.Fatalf("backlog of a: %v", got)
		}
	}
	if n := ds.calls.Load(); n != 2 {
		t.Fatalf("50 scrapes read the backlogs %d times, want once per server", n)
	}
	if age := gaugeValues(t, reg, "webhook_subscription_oldest_pending_seconds", "a")[""]; age != 90 {
		t.Fatalf("age %v, want 90", age)
	}
	if got := gaugeValues(t, reg, "webhook_subscription_oldest_pending_seconds", "b"); got[""] != 0 || len(got) != 1 {
		t.Fatalf("age of an empty backlog: %v", got)
	}

	one := two[1:]
	ds.got.Store(&one)
	clock.advance(backlogReuse - time.Millisecond)
	if got := gaugeValues(t, reg, "webhook_subscription_backlog", "a"); len(got) != 4 {
		t.Fatalf("a reading was not reused for %v: %v", backlogReuse, got)
	}
	clock.advance(time.Millisecond)
	if got := gaugeValues(t, reg, "webhook_subscription_backlog", "a"); len(got) != 0 {
		t.Fatalf("a deleted subscription's series stayed: %v", got)
	}
	if got := gaugeValues(t, reg, "webhook_subscription_backlog", "b"); len(got) != 4 {
		t.Fatalf("b: %v", got)
	}

	down := errors.New("database down")
	ds.err.Store(&down)
	clock.advance(backlogReuse)
	calls := ds.calls.Load()
	for range 20 {
		if got := gaugeValues(t, reg, "webhook_subscription_backlog", "b"); len(got) != 0 {
			t.Fatalf("series reported from a failed reading: %v", got)
		}
	}
	if n := ds.calls.Load() - calls; n != 2 {
		t.Fatalf("20 scrapes of a failing database read it %d times, want once per server", n)
	}
}
