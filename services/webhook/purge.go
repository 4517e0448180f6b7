package webhook

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/app"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// DefaultRetention is how long delivered events are kept unless WEBHOOK_RETENTION says otherwise: the
// original system kept its dead letters seven days.
const DefaultRetention = 7 * 24 * time.Hour

// defaultPurgeInterval is how often the retention purger runs (and once at start).
const defaultPurgeInterval = time.Hour

// purgeBatch is how many events one purge transaction deletes: small enough that no transaction holds
// SQLite's writer (or PostgreSQL's row locks) for long, large enough that the commits are few.
const purgeBatch = 500

// purgedEvents counts the events purged, by the retention purger and by PurgeEvents.
var purgedEvents = promauto.NewCounter(prometheus.CounterOpts{
	Name: "webhook_purged_events_total",
	Help: "Delivered events deleted with their deliveries and attempt history: by the retention purger (WEBHOOK_RETENTION) and by PurgeEvents.",
})

// RetentionConfig is how old events are purged.
type RetentionConfig struct {
	// Retention (WEBHOOK_RETENTION) is how long after it was received a delivered event is kept; 0 keeps
	// every event (no purger runs).
	Retention time.Duration
	// Interval is how often the purger runs; defaultPurgeInterval unless a test sets it.
	Interval time.Duration
}

// LoadRetentionConfig reads the retention settings from env.
func LoadRetentionConfig(env *config.Env) RetentionConfig {
	return RetentionConfig{
		Retention: env.Duration("WEBHOOK_RETENTION", DefaultRetention, 0, 100*365*24*time.Hour),
		Interval:  defaultPurgeInterval,
	}
}

// PurgeEvents implements webhookv1.WebhookServiceServer.
func (s *Server) PurgeEvents(ctx context.Context, req *webhookv1.PurgeEventsRequest) (*webhookv1.PurgeEventsResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	now := s.now()
	before, err := timeField("before", req.GetBefore())
	if err != nil {
		return nil, err
	}
	if before.After(now) {
		return nil, errs.Invalid("before must not be in the future")
	}
	r, err := s.purge(ctx, ds, store.PurgeParams{Before: before, Now: now, BatchSize: purgeBatch, Actor: actor(ctx)})
	if err != nil {
		return nil, err
	}
	return &webhookv1.PurgeEventsResponse{PurgedEvents: r.Events, PurgedDeliveries: r.Deliveries}, nil
}

// purge runs p, counts and logs what it deleted (also when it stopped part way: the batches done stay
// done).
func (s *Server) purge(ctx context.Context, ds store.DeliveryStore, p store.PurgeParams) (store.PurgeResult, error) {
	r, err := ds.EventsPurge(ctx, p)
	purgedEvents.Add(float64(r.Events))
	if r.Events > 0 {
		s.wakeOutbox() // each batch that purged something queued an audit event
	}
	attrs := []any{"service", "webhook", "before", p.Before, "actor", p.Actor, "events", r.Events, "deliveries", r.Deliveries}
	switch {
	case err != nil && ctx.Err() != nil: // shutdown or the caller's deadline: not a fault
		s.log.InfoContext(ctx, "event purge stopped", append(attrs, "error", err.Error())...)
		return r, err
	case err != nil:
		s.log.WarnContext(ctx, "event purge failed", append(attrs, "error", err.Error())...)
		return r, err
	}
	s.log.InfoContext(ctx, "events purged", attrs...)
	return r, nil
}

// purgeWorkers is the retention purger, on one replica only (two would only contend for the same
// rows), when the store keeps deliveries and WEBHOOK_RETENTION is not 0.
func (s *Server) purgeWorkers() []app.Worker {
	if s.deliveries == nil || s.cfg.Retention.Retention <= 0 {
		return nil
	}
	return []app.Worker{{Name: "webhook.retention_purger", Run: s.runPurger, SingleReplica: true}}
}

// runPurger purges the delivered events older than the retention at start and then every interval,
// until ctx ends. A failed pass is logged (by purge) and tried again at the next.
func (s *Server) runPurger(ctx context.Context) error {
	every := s.cfg.Retention.Interval
	if every <= 0 {
		every = defaultPurgeInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := s.now()
		_, _ = s.purge(ctx, s.deliveries, store.PurgeParams{Before: now.Add(-s.cfg.Retention.Retention), Now: now, BatchSize: purgeBatch})
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
