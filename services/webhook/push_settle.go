package webhook

import (
	"context"
	"math/rand/v2"
	"sync"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/tracing"
	"github.com/sergas/core/services/webhook/store"
)

// pushBatchOutcome is what one batch (or its late requests) of subscription t came to; done is called
// once they are recorded (or could not be).
type pushBatchOutcome struct {
	t    *pushTarget
	outs []pushOutcome
	done func()
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
	w.p.settler.add(pushBatchOutcome{t: t, outs: outs, done: func() { <-w.settling; w.late.Done() }})
}

// pushSettler records the outcomes of a replica's batches one transaction at a time, each taking every
// batch that finished while the one before committed: a settle costs a transaction whatever its size,
// and each worker settling its own batch of up to 10 made settles the most frequent transaction of push
// delivery on PostgreSQL (8 deliveries each at ~3,000/s).
type pushSettler struct {
	p       *pusher
	mu      sync.Mutex
	queue   []pushBatchOutcome
	running bool
}

// add queues b and starts a settle loop when none runs. The loop is no request's: it outlives the batch
// that started it (and a stopping service's context), and each of its settles is a job span of its own.
func (s *pushSettler) add(b pushBatchOutcome) {
	s.mu.Lock()
	s.queue = append(s.queue, b)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.loop()
	}
}

// loop settles what is queued until the queue is empty.
func (s *pushSettler) loop() {
	for {
		s.mu.Lock()
		bs := s.queue
		s.queue = nil
		if len(bs) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		ctx, span := tracing.StartJob(context.Background(), "webhook push settle")
		s.p.settle(ctx, bs)
		span.End()
		for _, b := range bs {
			b.done()
		}
	}
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
