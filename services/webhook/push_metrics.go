package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// pushAttempts counts push attempts by subscription id (as the delivery metrics do: consume_metrics.go)
// and result, a fixed set (pushResult*). Delivered, retried and dead-lettered deliveries and attempt
// durations are counted by the metrics pull consumers share (observeClaimed, observeSettled).
var pushAttempts = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "webhook_push_attempts_total",
	Help: "Push requests by subscription id and result (success, http_3xx, http_4xx, http_5xx, http_other, timeout, ssrf_refused, connection_error, tls_error, dns_error, internal_error).",
}, []string{"subscription", "result"})

// forgetPushMetrics removes a deleted subscription's push series.
func forgetPushMetrics(id string) {
	pushAttempts.DeletePartialMatch(prometheus.Labels{"subscription": id})
}
