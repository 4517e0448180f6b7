package webhook

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

var (
	renewalsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_zoho_channel_renewals_total",
		Help: "Renewals of Zoho CRM notification channels at Zoho, by result (renewed, failed).",
	}, []string{"result"})
	channelsGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "webhook_zoho_channels",
		Help: "Zoho CRM notification channels by state (active, failing, expired, disabled), as the replica renewing them last counted.",
	}, []string{"state"})
	// A vector without labels, so that a replica not renewing exports no value rather than a 0 that
	// reads as "expires now".
	nextExpiryGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "webhook_zoho_channel_next_expiry_seconds",
		Help: "Seconds until the soonest expiry of a channel that is not disabled (negative once it has passed); 0 without channels. Only the replica renewing channels exports it.",
	}, nil)
)

func renewalResult(err error) string {
	if err != nil {
		return "failed"
	}
	return "renewed"
}

func channelStateName(s store.ChannelState) string {
	switch s {
	case store.ChannelActive:
		return "active"
	case store.ChannelFailing:
		return "failing"
	case store.ChannelExpired:
		return "expired"
	case store.ChannelDisabled:
		return "disabled"
	}
	return "unknown"
}

// renewPage is how many due channels are read at once; renewPass bounds how many one pass looks at (the
// next pass, a CheckInterval later, takes the rest).
const (
	renewPage = 100
	renewPass = 10_000
)

// runRenewer is the single-replica worker that keeps channels alive: every CheckInterval it renews the
// channels that expire within RenewBefore. A channel whose renewal failed is retried with a backoff
// (a minute, doubling to half an hour) so that a Zoho outage is not hammered; one whose expiry passes
// meanwhile is marked expired, so that health and metrics show it.
func (m *channels) runRenewer(ctx context.Context) error {
	t := time.NewTicker(m.cfg.CheckInterval)
	defer t.Stop()
	// Once this replica stops renewing (leadership lost, shutdown) its counts go stale: withdraw them,
	// so that an alert on them follows the replica that renews now.
	defer channelsGauge.Reset()
	defer nextExpiryGauge.Reset()
	for {
		if err := m.renewDue(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("zoho channel renewal pass failed", "service", "webhook", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// renewDue renews the channels due now and refreshes the gauges. It pages through them soonest expiry
// first, so that failing channels waiting for their next try never hide the channels behind them.
func (m *channels) renewDue(ctx context.Context) error {
	now := m.now()
	var after store.DueCursor
	for seen := 0; seen < renewPass; {
		due, err := m.store.ChannelsDue(ctx, now.Add(m.cfg.RenewBefore), after, renewPage)
		if err != nil {
			return err
		}
		for _, c := range due {
			if ctx.Err() != nil {
				return nil
			}
			if c.FailedRenewals > 0 && now.Before(c.UpdateTime.Add(retryDelay(c.FailedRenewals))) {
				m.markExpired(ctx, c, now)
				continue
			}
			if renewedRecently(c, now) {
				continue
			}
			// Failures are recorded on the channel and logged by renew; the pass goes on with the others.
			_, _ = m.renew(ctx, c)
		}
		if len(due) < renewPage {
			break
		}
		seen += len(due)
		after = due[len(due)-1].Due()
	}
	return m.count(ctx, now)
}

// renewedRecently reports whether c, healthy, has not yet lived half the lifetime Zoho confirmed at
// its last renewal. Zoho silently gives one hour to an expiry beyond its maximum, so a channel can be
// due (within RenewBefore) straight after a renewal; without this it would be renewed at every check.
func renewedRecently(c *store.Channel, now time.Time) bool {
	if c.FailedRenewals > 0 || c.RenewTime.IsZero() || !c.ExpireTime.After(c.RenewTime) {
		return false
	}
	return now.Before(c.RenewTime.Add(c.ExpireTime.Sub(c.RenewTime) / 2))
}

// retryDelay is how long after its n-th failure in a row a channel's renewal is tried again.
func retryDelay(n int32) time.Duration {
	d := time.Minute << min(n-1, 5)
	return min(d, 30*time.Minute)
}

// markExpired records that a failing channel, waiting for its next try, has passed its expiry.
func (m *channels) markExpired(ctx context.Context, c *store.Channel, now time.Time) {
	if c.State != store.ChannelFailing || c.ExpireTime.After(now) {
		return
	}
	next := *c
	next.State = store.ChannelExpired
	if err := m.store.ChannelUpdate(ctx, &next); err != nil && errs.KindOf(err) != errs.KindConflict {
		m.log.Warn("cannot mark a zoho channel expired", "service", "webhook", "channel_id", c.ID, "error", err.Error())
	}
}

// count sets the channel gauges.
func (m *channels) count(ctx context.Context, now time.Time) error {
	counts, err := m.store.ChannelCounts(ctx)
	if err != nil {
		return err
	}
	for _, s := range []store.ChannelState{store.ChannelActive, store.ChannelFailing, store.ChannelExpired, store.ChannelDisabled} {
		channelsGauge.WithLabelValues(channelStateName(s)).Set(float64(counts[s]))
	}
	soonest, err := m.store.ChannelsDue(ctx, now.Add(100*365*24*time.Hour), store.DueCursor{}, 1)
	if err != nil {
		return err
	}
	if len(soonest) == 0 {
		nextExpiryGauge.WithLabelValues().Set(0)
	} else {
		nextExpiryGauge.WithLabelValues().Set(soonest[0].ExpireTime.Sub(now).Seconds())
	}
	return nil
}
