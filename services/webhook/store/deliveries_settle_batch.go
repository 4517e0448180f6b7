package store

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/sergas/core/internal/errs"
)

// SettleResult is what DeliverySettleBatch did with one SettleParams: the delivery as settled, or Err
// (errs.KindNotFound, errs.KindFailedPrecondition) when that one was refused.
type SettleResult struct {
	Delivery *Delivery
	Err      error
}

// DeliverySettleBatch settles ps as DeliverySettle settles each, in one transaction (one commit for
// the lot, the events of all of them settled once), and returns one result per element of ps, in order.
// A refused element does not stop the others; an error (err) stores nothing. Deliveries are locked in id
// order, so that two batches naming the same deliveries cannot deadlock on PostgreSQL.
func (s Deliveries) DeliverySettleBatch(ctx context.Context, ps []SettleParams) ([]SettleResult, error) {
	for _, p := range ps {
		if err := checkSettle(p); err != nil {
			return nil, err
		}
	}
	order := make([]int, len(ps))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(ps[a].ID, ps[b].ID) })
	var out []SettleResult
	err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		out = make([]SettleResult, len(ps)) // a retried transaction starts over
		ids := make([]int64, 0, len(ps))
		for _, i := range order {
			ids = append(ids, ps[i].ID)
		}
		locked, err := tx.DeliveriesForUpdate(ctx, slices.Compact(ids))
		if err != nil {
			return err
		}
		byID := make(map[int64]*Delivery, len(locked))
		for _, d := range locked {
			byID[d.ID] = d
		}
		subs := map[string]*Subscription{}
		var changed []*Delivery
		var attempts []DeliveryAttempt
		var events []string
		var dead []*Delivery
		for _, i := range order {
			p := ps[i]
			// A delivery named twice is settled by the first; the second finds its lease no longer current.
			d, err := check(byID[p.ID], p.ID, p.Lease)
			if err == nil {
				err = inSubscription(d, p)
			}
			if err != nil {
				out[i].Err = err
				continue
			}
			var sub *Subscription
			if p.Nack {
				if sub = subs[d.SubscriptionID]; sub == nil {
					if sub, err = tx.SubscriptionGet(ctx, d.SubscriptionID); err != nil {
						return err
					}
					subs[d.SubscriptionID] = sub
				}
			}
			a := settleOne(d, p, sub)
			out[i].Delivery = clone(d)
			changed, attempts = append(changed, d), append(attempts, a)
			if d.Status != DeliveryFailed {
				events = append(events, d.EventID)
			}
			if d.Status == DeliveryDeadLetter {
				dead = append(dead, out[i].Delivery)
			}
		}
		if len(changed) == 0 {
			return nil
		}
		if err := tx.DeliveriesUpdate(ctx, changed); err != nil {
			return err
		}
		if err := tx.AttemptsInsert(ctx, attempts); err != nil {
			return err
		}
		if err := queueAudit(ctx, tx, deadLetterRecords(dead, "", latest(ps))); err != nil {
			return err
		}
		return settle(ctx, tx, events, latest(ps))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// settleOne applies p to d, the delivery whose current lease p names (sub: its subscription, needed for
// a nack), and returns the attempt that ends.
func settleOne(d *Delivery, p SettleParams, sub *Subscription) DeliveryAttempt {
	now := micro(p.Now)
	a := DeliveryAttempt{DeliveryID: d.ID, Attempt: Attempt{Number: int32(d.Lease), StartTime: d.LeaseStartTime,
		Duration: nonNegative(now.Sub(d.LeaseStartTime)), Outcome: AttemptAcked, Error: p.Error, Consumer: d.Consumer,
		HTTPStatus: p.HTTPStatus, Response: p.Response}}
	d.UpdateTime = now
	switch {
	case !p.Nack:
		d.Status, d.AvailableTime = DeliveryDelivered, time.Time{}
	case d.AttemptCount > sub.Retry.MaxRetries:
		a.Outcome, d.LastError = AttemptNacked, p.Error
		d.Status, d.AvailableTime = DeliveryDeadLetter, time.Time{}
	default:
		a.Outcome, d.LastError = AttemptNacked, p.Error
		d.Status, d.AvailableTime = DeliveryFailed, micro(p.RetryAt)
		if p.RetryAt.IsZero() {
			d.AvailableTime = now.Add(Backoff(sub.Retry, d.AttemptCount, EqualJitter, rand.Float64())).Truncate(time.Microsecond)
		}
	}
	return a
}

// latest is the latest Now of ps: the update time of the events a batch settles.
func latest(ps []SettleParams) time.Time {
	var t time.Time
	for _, p := range ps {
		if p.Now.After(t) {
			t = p.Now
		}
	}
	return micro(t)
}

func clone(d *Delivery) *Delivery { c := *d; return &c }

// inSubscription refuses p unless it names no subscription or d's, and unless d is leased to a push
// worker only when a push worker settles it.
func inSubscription(d *Delivery, p SettleParams) error {
	if p.SubscriptionID != "" && d.SubscriptionID != p.SubscriptionID {
		return errs.NotFound("delivery %d not found in subscription %s", p.ID, p.SubscriptionID)
	}
	if !p.Pusher && strings.HasPrefix(d.Consumer, PushConsumerPrefix) {
		return errs.New(errs.KindFailedPrecondition, "delivery %d is being pushed to its endpoint: only the push worker settles it", p.ID)
	}
	return nil
}
