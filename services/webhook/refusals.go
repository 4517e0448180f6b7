package webhook

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/logging"
)

// Every delivery Ingest answers is counted by source and outcome. The source label is a configured
// source's name or unknownSourceLabel, and the reason one of the reason* constants, so that no sender
// can grow the series.
var (
	refusedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_ingest_refused_total",
		Help: "Webhook deliveries refused, by source (configured sources; any other name is \"(unknown)\") and reason.",
	}, []string{"source", "reason"})
	acceptedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_ingest_accepted_total",
		Help: "Webhook deliveries acknowledged after commit, by source and result (stored, duplicate).",
	}, []string{"source", "result"})
	backlogGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "webhook_backlog_events",
		Help: "Undelivered (pending or failed) events at the last count, counted up to WEBHOOK_MAX_QUEUE_SIZE.",
	})
)

// unknownSourceLabel is the source label of every delivery to a name that is not configured.
const unknownSourceLabel = "(unknown)"

// deniedAction names the audit denial of a delivery that failed verification: the reason says how.
const ingestMethod = webhookv1.WebhookService_Ingest_FullMethodName

// refusals counts, logs (sampled) and, for failed verification, sends to the audit log the deliveries
// Ingest refuses. Nothing it records holds a secret, a signature or the body.
type refusals struct {
	log     *slog.Logger
	sampler *logging.Sampler
	denials auth.DenialSink // nil without an audit connection
}

func newRefusals(log *slog.Logger, denials auth.DenialSink) *refusals {
	// As the guard's refusal log: a flood of forged deliveries writes a few lines a second, then a count.
	return &refusals{log: log, sampler: logging.NewSampler(1, 10), denials: denials}
}

// refused records one refusal. label is the source label (a configured name or unknownSourceLabel).
func (r *refusals) refused(ctx context.Context, label, reason, sender string, now time.Time) {
	refusedTotal.WithLabelValues(label, reason).Inc()
	if ok, suppressed := r.sampler.Allow(now); ok {
		args := []any{"service", "webhook", "source", label, "reason", reason, "sender", sender}
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		r.log.WarnContext(ctx, "webhook delivery refused", args...)
	}
	if r.denials != nil && auditedReason(reason) {
		// Summed up per source, sender and reason by the denial log (Known is false), so that a flood of
		// forgeries costs the audit log one event per interval, as anonymous auth refusals do.
		r.denials.Denied(auth.Denial{Actor: "webhook-source:" + label, Method: ingestMethod, Reason: auth.Reason("webhook_" + reason),
			Peer: sender, Time: now})
	}
}

// auditedReason: the refusals that matter to an auditor, deliveries that claim a source and fail its
// verification. Limits and malformed requests are only counted and logged.
func auditedReason(reason string) bool {
	switch reason {
	case reasonMissingSignature, reasonBadSignature, reasonStaleTimestamp, reasonUnknownChannel:
		return true
	}
	return false
}
