package webhook

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sergas/core/services/webhook/store"
)

// Delivery metrics are labelled by subscription id, not name: ids exist only for subscriptions a
// webhook:admin created (no consumer or sender can add a value), they never change, and they cost no
// lookup on the ack path. Deleting a subscription should forget its series (forgetSubscriptionMetrics),
// so that the set stays that of the subscriptions that exist.
var (
	deliveredTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_deliveries_delivered_total",
		Help: "Deliveries acknowledged by a consumer, by subscription id.",
	}, []string{"subscription"})
	retriedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_deliveries_retried_total",
		Help: "Deliveries handed out again after an attempt that failed (nacked, or its lease expired), by subscription id.",
	}, []string{"subscription"})
	deadLetteredTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_deliveries_dead_lettered_total",
		Help: "Deliveries that became dead letters, their last attempt nacked or its lease expired, by subscription id.",
	}, []string{"subscription"})
	// Receipt to ack spans queueing, retries and backoff: buckets from 5 ms to about 1.4 h.
	processingSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "webhook_processing_duration_seconds",
		Help:    "From an event's receipt to the ack of its delivery, by subscription id.",
		Buckets: prometheus.ExponentialBuckets(0.005, 3, 13),
	}, []string{"subscription"})
	// Lease to settle is the consumer's own work: from 1 ms to about 1.5 h (the longest lease is 12 h).
	attemptSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "webhook_delivery_attempt_duration_seconds",
		Help:    "From hand-out to ack or nack of one attempt, by subscription id and outcome (acked, nacked).",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 16),
	}, []string{"subscription", "outcome"})
)

// forgetSubscriptionMetrics removes a deleted subscription's series.
func forgetSubscriptionMetrics(id string) {
	deliveredTotal.DeleteLabelValues(id)
	retriedTotal.DeleteLabelValues(id)
	deadLetteredTotal.DeleteLabelValues(id)
	processingSeconds.DeleteLabelValues(id)
	attemptSeconds.DeletePartialMatch(prometheus.Labels{"subscription": id})
}

// observeSettled counts a settled delivery d (as the store returned it) at now.
func observeSettled(d *store.Delivery, now time.Time) {
	sub := d.SubscriptionID
	outcome := store.AttemptNacked
	switch d.Status {
	case store.DeliveryDelivered:
		outcome = store.AttemptAcked
		deliveredTotal.WithLabelValues(sub).Inc()
		if !d.EventReceiveTime.IsZero() {
			processingSeconds.WithLabelValues(sub).Observe(nonNegative(now.Sub(d.EventReceiveTime)).Seconds())
		}
	case store.DeliveryDeadLetter:
		deadLetteredTotal.WithLabelValues(sub).Inc()
	}
	if !d.LeaseStartTime.IsZero() {
		attemptSeconds.WithLabelValues(sub, outcome).Observe(nonNegative(now.Sub(d.LeaseStartTime)).Seconds())
	}
}

// observeDeadLettered counts the deliveries a claim made dead letters (ClaimResult.DeadLettered: their
// last lease expired with no attempt left). Every caller of DeliveryClaim passes its result here.
func observeDeadLettered(ds []*store.Delivery) {
	for _, d := range ds {
		deadLetteredTotal.WithLabelValues(d.SubscriptionID).Inc()
	}
}

// observeClaimed counts the retries among deliveries just handed out: a delivery on its second or later
// attempt follows one that failed.
func observeClaimed(cs []store.Claimed) {
	for _, c := range cs {
		if c.Delivery.AttemptCount > 1 {
			retriedTotal.WithLabelValues(c.Delivery.SubscriptionID).Inc()
		}
	}
}

func nonNegative(d time.Duration) time.Duration { return max(d, 0) }

// The backlog gauges are read from the store when scraped (SubscriptionBacklogs), not kept up to date
// by every claim and settle, so that they cost the delivery path nothing. A reading is reused for
// backlogReuse, so that any number of scrapers cost the database one query per replica that often, and
// one that hangs is given up after backlogTimeout. Series are labelled by subscription id (ids exist only
// for subscriptions a webhook:admin created) and are those of the subscriptions that exist at the last
// reading: a deleted subscription's disappear.
const (
	backlogReuse   = 5 * time.Second
	backlogTimeout = 3 * time.Second
)

var (
	backlogDesc = prometheus.NewDesc("webhook_subscription_backlog",
		"Deliveries of a subscription not delivered, by subscription id and status (pending, leased, failed, dead_letter), read at most every 5 s.",
		[]string{"subscription", "status"}, nil)
	oldestPendingDesc = prometheus.NewDesc("webhook_subscription_oldest_pending_seconds",
		"Age of the oldest delivery of a subscription that is pending, leased or failed (0 when none), by subscription id, read at most every 5 s.",
		[]string{"subscription"}, nil)
	// backlogs is registered once for the process; each server adds its store (registerBacklogs).
	backlogs = &backlogCollector{sources: map[*backlogSource]struct{}{}}
)

func init() { prometheus.MustRegister(backlogs) }

// backlogCollector is the backlog gauges of every server of the process: one in production; tests
// create many, each over its own store, and a server's source goes when the server is collected.
type backlogCollector struct {
	mu      sync.Mutex
	sources map[*backlogSource]struct{}
}

// backlogSource is one server's store and its last reading.
type backlogSource struct {
	ds  store.DeliveryStore
	log *slog.Logger
	now func() time.Time // for the reading's age and its reuse

	mu   sync.Mutex // held while reading: concurrent scrapes wait for one query
	read time.Time  // when the last reading was attempted (zero: never)
	got  []store.Backlog
}

// registerBacklogs adds srv's store to the backlog gauges until srv is garbage collected. The source
// keeps no reference to srv (its cleanup could not run otherwise), only the store and the logger.
func registerBacklogs(srv *Server) {
	if srv.deliveries == nil {
		return
	}
	src := &backlogSource{ds: srv.deliveries, log: srv.log, now: time.Now}
	backlogs.add(src)
	runtime.AddCleanup(srv, func(src *backlogSource) { backlogs.remove(src) }, src)
}

func (c *backlogCollector) add(src *backlogSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources[src] = struct{}{}
}

func (c *backlogCollector) remove(src *backlogSource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sources, src)
}

// Describe implements prometheus.Collector.
func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- oldestPendingDesc
}

// Collect implements prometheus.Collector. A subscription two sources report (two servers over one
// database: tests) is reported once, so that the scrape holds no duplicate series.
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	srcs := make([]*backlogSource, 0, len(c.sources))
	for src := range c.sources {
		srcs = append(srcs, src)
	}
	c.mu.Unlock()
	seen := map[string]bool{}
	for _, src := range srcs {
		now := src.now()
		for _, b := range src.backlogs(now) {
			if seen[b.SubscriptionID] {
				continue
			}
			seen[b.SubscriptionID] = true
			for _, v := range []struct {
				status string
				n      int64
			}{{"pending", b.Pending}, {"leased", b.Leased}, {"failed", b.Failed}, {"dead_letter", b.DeadLetter}} {
				ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(v.n), b.SubscriptionID, v.status)
			}
			age := 0.0
			if !b.OldestUndelivered.IsZero() {
				age = nonNegative(now.Sub(b.OldestUndelivered)).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(oldestPendingDesc, prometheus.GaugeValue, age, b.SubscriptionID)
		}
	}
}

// backlogs returns the reading of at most backlogReuse ago, reading again when it is older. A reading
// that fails is not retried before backlogReuse either (a database that is down is not queried by every
// scrape) and reports nothing meanwhile: absent series, not stale numbers.
func (src *backlogSource) backlogs(now time.Time) []store.Backlog {
	src.mu.Lock()
	defer src.mu.Unlock()
	if !src.read.IsZero() && now.Sub(src.read) < backlogReuse && !now.Before(src.read) {
		return src.got
	}
	src.read = now
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	got, err := src.ds.SubscriptionBacklogs(ctx)
	if err != nil {
		src.got = nil
		src.log.Warn("subscription backlog gauges not read", "service", "webhook", "error", err.Error())
		return nil
	}
	src.got = got
	return got
}
