package webhook

import (
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
		Help: "Deliveries that became dead letters when a consumer nacked their last attempt, by subscription id.",
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
