package webhook

import (
	"context"
	"math/rand/v2"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/groupcommit"
	"github.com/sergas/core/services/webhook/store"
)

// pushBatchOutcome is what one batch (or its late requests) of subscription t came to.
type pushBatchOutcome struct {
	t    *pushTarget
	outs []pushOutcome
}

// settleAsync records outs in the background, so that the worker claims its next batch while the
// outcomes of the last are committed: a claim and a settle each wait on a commit, and doing them one
// after the other made the commits, not the endpoint, the bound of a worker's rate (push to a local
// endpoint on PostgreSQL: ~1,100 deliveries/s with the defaults). One settle per worker at a time: when
// the database is slow the worker waits for it rather than piling up settles.
func (w *pushWorker) settleAsync(ctx context.Context, t *pushTarget, outs []pushOutcome) {
	if len(outs) == 0 {
		return
	}
	w.settling <- struct{}{}
	w.late.Add(1)
	go func() {
		defer w.late.Done()
		defer func() { <-w.settling }()
		w.p.record(ctx, pushBatchOutcome{t: t, outs: outs})
	}()
}

// newPushSettles group-commits the outcomes of a replica's batches (worker webhook.push.settle): one
// transaction at a time, each taking every batch that finished while the one before committed. A settle
// costs a transaction whatever its size, and each worker settling its own batch of up to 10 made settles
// the most frequent transaction of push delivery on PostgreSQL (8 deliveries each at ~3,000/s; 12 with
// this).
func (p *pusher) newPushSettles() *groupcommit.Committer[pushBatchOutcome, struct{}] {
	cfg := groupcommit.Config{MaxBatch: max(2, 2*p.cfg.Workers), Timeout: pushSettleTimeout}
	return groupcommit.New("webhook push settle", cfg, func(ctx context.Context, bs []pushBatchOutcome) ([]struct{}, error) {
		p.settle(ctx, bs) // its failures are logged there: the leases expire and the deliveries go again
		return make([]struct{}, len(bs)), nil
	}, nil, p.s.log)
}

// record settles b, with the batches that finish meanwhile, and returns once it is recorded (or could
// not be). Not on ctx: a stopping service still records what it sent.
func (p *pusher) record(ctx context.Context, b pushBatchOutcome) {
	_, _ = p.settles.Do(context.WithoutCancel(ctx), b)
}

// settle records outcomes in one transaction: a 2xx acknowledges its delivery, anything else nacks it
// with what went wrong, the status and the excerpt; after a 429 or 503 with Retry-After the retry comes
// no sooner than it asks (within the policy's backoff cap). A lease that passed on meanwhile is refused
// and the outcome dropped: the delivery is another holder's now.
func (p *pusher) settle(ctx context.Context, bs []pushBatchOutcome) {
	now := p.s.now()
	var ps []store.SettleParams
	var subs []string // ps[i]'s subscription
	for _, b := range bs {
		t := b.t
		for _, o := range b.outs {
			d := o.claimed.Delivery
			sp := store.SettleParams{ID: d.ID, Lease: d.Lease, Now: now, HTTPStatus: o.status, Response: o.excerpt, Pusher: true}
			if !o.ok {
				sp.Nack, sp.Error = true, o.err
				if o.retryAfter > 0 {
					backoff := store.Backoff(t.sub.Retry, d.AttemptCount, store.EqualJitter, rand.Float64())
					sp.RetryAt = now.Add(max(backoff, o.retryAfter))
				}
			}
			ps, subs = append(ps, sp), append(subs, t.sub.ID)
			pushAttempts.WithLabelValues(t.sub.ID, o.result).Inc()
		}
	}
	if len(ps) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, pushSettleTimeout)
	defer cancel()
	results, err := p.s.deliveries.DeliverySettleBatch(sctx, ps)
	if err != nil {
		for _, b := range bs {
			p.s.log.Error("push outcomes not recorded: their leases expire and they are sent again", "service", "webhook",
				"subscription", b.t.sub.ID, "deliveries", len(b.outs), "error", errs.Message(err))
		}
		return
	}
	dead := false
	for i, r := range results {
		switch {
		case r.Err == nil:
			observeSettled(r.Delivery, now)
			dead = dead || r.Delivery.Status == store.DeliveryDeadLetter
		case refusedLease(r.Err):
			p.s.log.Warn("push outcome not recorded: the lease had passed on", "service", "webhook",
				"subscription", subs[i], "delivery", ps[i].ID)
		default:
			p.s.log.Error("push outcome not recorded", "service", "webhook", "subscription", subs[i],
				"delivery", ps[i].ID, "error", errs.Message(r.Err))
		}
	}
	if dead {
		p.s.wakeOutbox() // the settle queued their audit events
	}
}
