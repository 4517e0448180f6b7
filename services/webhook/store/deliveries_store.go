package store

import (
	"context"
	"slices"
	"time"

	"github.com/sergas/core/internal/errs"
)

// Deliveries implements DeliveryStore once, above the drivers: each backend's Store answers the
// interface's methods by calling these with its DeliveryDriver.
type Deliveries struct{ D DeliveryDriver }

// LeaseExpiredError is the last error of a delivery that became a dead letter because its last lease
// ended without an ack or a nack.
const LeaseExpiredError = "lease expired"

// settleChunk bounds the events one EventsSettle statement names.
const settleChunk = 500

// maxClaimRounds bounds how often a claim looks again for deliveries when the ones it found became dead
// letters instead of being handed out.
const maxClaimRounds = 4

// SubscriptionCreate implements DeliveryStore.
func (s Deliveries) SubscriptionCreate(ctx context.Context, sub *Subscription) error {
	if err := CheckSubscription(sub); err != nil {
		return err
	}
	NormaliseSubscription(sub)
	err := s.D.SubscriptionInsert(ctx, sub)
	if errs.KindOf(err) == errs.KindAlreadyExists {
		return errs.New(errs.KindAlreadyExists, "subscription %q already exists", sub.Name)
	}
	return err
}

// SubscriptionGet implements DeliveryStore.
func (s Deliveries) SubscriptionGet(ctx context.Context, id string) (*Subscription, error) {
	if !canonicalID(id) {
		return nil, subscriptionNotFound(id)
	}
	sub, err := s.D.SubscriptionRead(ctx, id)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, subscriptionNotFound(id)
	}
	return sub, err
}

// SubscriptionList implements DeliveryStore.
func (s Deliveries) SubscriptionList(ctx context.Context, p SubscriptionListParams) ([]*Subscription, error) {
	if p.Limit <= 0 {
		return nil, errs.Invalid("subscription list limit must be positive")
	}
	if p.AfterID != "" && !canonicalID(p.AfterID) {
		return nil, errs.Invalid("subscription list position must be a lower-case UUID")
	}
	return s.D.SubscriptionPage(ctx, p)
}

// SubscriptionSetState implements DeliveryStore.
func (s Deliveries) SubscriptionSetState(ctx context.Context, id string, state SubscriptionState, now time.Time) (*Subscription, error) {
	if state != SubscriptionActive && state != SubscriptionPaused {
		return nil, errs.Invalid("subscription state %d is not active (1) or paused (2)", state)
	}
	if !canonicalID(id) {
		return nil, subscriptionNotFound(id)
	}
	sub, err := s.D.SubscriptionSetState(ctx, id, state, micro(now))
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, subscriptionNotFound(id)
	}
	return sub, err
}

// SubscriptionDelete implements DeliveryStore. The subscription's row goes first: on PostgreSQL that
// waits for every ingest transaction whose fan-out chose it (they lock it), so that the deliveries
// they made are committed, and deleted, by the statements after it; an ingest that comes later no longer
// finds the subscription. The events that were waiting only on it are then settled.
func (s Deliveries) SubscriptionDelete(ctx context.Context, id string) error {
	if !canonicalID(id) {
		return subscriptionNotFound(id)
	}
	now := micro(time.Now())
	return s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		ok, err := tx.SubscriptionDelete(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return subscriptionNotFound(id)
		}
		events, err := tx.DeliveriesDelete(ctx, id)
		if err != nil {
			return err
		}
		return settle(ctx, tx, events, now)
	})
}

// DeliveryClaim implements DeliveryStore.
func (s Deliveries) DeliveryClaim(ctx context.Context, p ClaimParams) (ClaimResult, error) {
	if p.Limit <= 0 {
		return ClaimResult{}, errs.Invalid("claim limit must be positive")
	}
	if !canonicalID(p.SubscriptionID) {
		return ClaimResult{}, subscriptionNotFound(p.SubscriptionID)
	}
	if !storableText(p.Consumer) {
		return ClaimResult{}, errs.Invalid("consumer must be UTF-8 text without NUL")
	}
	now := micro(p.Now)
	var out []Claimed
	var died []*Delivery
	err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		out, died = nil, nil // a retried transaction starts over
		sub, due, err := claimStart(ctx, tx, p.SubscriptionID, now, p.Limit)
		if errs.KindOf(err) == errs.KindNotFound {
			return subscriptionNotFound(p.SubscriptionID)
		}
		if err != nil || sub.State == SubscriptionPaused {
			return err
		}
		var leased []*Delivery
		for round := 0; round < maxClaimRounds && len(leased) < p.Limit; round++ {
			asked := p.Limit - len(leased)
			if round > 0 {
				if due, err = tx.DeliveriesDue(ctx, sub.ID, now, asked); err != nil {
					return err
				}
			}
			got, dead, err := lease(ctx, tx, sub, due, p.Consumer, now)
			if err != nil {
				return err
			}
			leased, died = append(leased, got...), append(died, dead...)
			// Only deliveries that became dead letters leave room to look again; fewer due than asked
			// means there are no more.
			if len(dead) == 0 || len(due) < asked {
				break
			}
		}
		if len(leased) == 0 {
			return nil
		}
		ids := make([]string, 0, len(leased))
		for _, d := range leased {
			ids = append(ids, d.EventID)
		}
		events, err := tx.EventsGet(ctx, ids)
		if err != nil {
			return err
		}
		byID := make(map[string]*Event, len(events))
		for _, e := range events {
			byID[e.ID] = e
		}
		for _, d := range leased {
			e, ok := byID[d.EventID]
			if !ok {
				return errs.New(errs.KindInternal, "delivery %d names an event that is not stored", d.ID)
			}
			out = append(out, Claimed{Delivery: d, Event: e})
		}
		return nil
	})
	if err != nil {
		return ClaimResult{}, err
	}
	return ClaimResult{Claimed: out, DeadLettered: died}, nil
}

// lease hands out the due deliveries ds to consumer, except those whose lease expired with no attempt
// left, which become dead letters (their events settled). It returns the leased ones and the dead ones.
func lease(ctx context.Context, tx DeliveryTx, sub *Subscription, ds []*Delivery, consumer string, now time.Time) ([]*Delivery, []*Delivery, error) {
	var (
		leased, changed, dead []*Delivery
		attempts              []DeliveryAttempt
		deadEvents            []string
	)
	for _, d := range ds {
		if d.Status == DeliveryLeased {
			// The holder neither acked nor nacked within its lease.
			attempts = append(attempts, DeliveryAttempt{DeliveryID: d.ID, Attempt: Attempt{Number: int32(d.Lease), StartTime: d.LeaseStartTime,
				Duration: nonNegative(d.AvailableTime.Sub(d.LeaseStartTime)), Outcome: AttemptLeaseExpired, Consumer: d.Consumer}})
			if d.AttemptCount > sub.Retry.MaxRetries {
				d.Status, d.AvailableTime, d.LastError, d.UpdateTime = DeliveryDeadLetter, time.Time{}, LeaseExpiredError, now
				changed, deadEvents, dead = append(changed, d), append(deadEvents, d.EventID), append(dead, clone(d))
				continue
			}
		}
		d.Status, d.AttemptCount, d.Lease, d.Consumer = DeliveryLeased, d.AttemptCount+1, d.Lease+1, consumer
		d.LeaseStartTime, d.AvailableTime, d.UpdateTime = now, now.Add(sub.LeaseDuration), now
		changed, leased = append(changed, d), append(leased, d)
	}
	if len(changed) == 0 {
		return nil, nil, nil
	}
	if err := tx.DeliveriesUpdate(ctx, changed); err != nil {
		return nil, nil, err
	}
	if len(attempts) > 0 {
		if err := tx.AttemptsInsert(ctx, attempts); err != nil {
			return nil, nil, err
		}
	}
	if err := queueAudit(ctx, tx, deadLetterRecords(dead, "", now)); err != nil {
		return nil, nil, err
	}
	return leased, dead, settle(ctx, tx, deadEvents, now)
}

// DeliverySettle implements DeliveryStore.
func (s Deliveries) DeliverySettle(ctx context.Context, p SettleParams) (*Delivery, error) {
	if err := checkSettle(p); err != nil {
		return nil, err
	}
	now := micro(p.Now)
	var out *Delivery
	err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		d, err := current(ctx, tx, p.ID, p.Lease)
		if err == nil {
			err = inSubscription(d, p)
		}
		if err != nil {
			return err
		}
		var sub *Subscription
		if p.Nack {
			if sub, err = tx.SubscriptionGet(ctx, d.SubscriptionID); err != nil {
				return err
			}
		}
		a := settleOne(d, p, sub)
		if err := tx.DeliveriesUpdate(ctx, []*Delivery{d}); err != nil {
			return err
		}
		if err := tx.AttemptsInsert(ctx, []DeliveryAttempt{a}); err != nil {
			return err
		}
		if d.Status == DeliveryDeadLetter {
			if err := queueAudit(ctx, tx, deadLetterRecords([]*Delivery{d}, "", now)); err != nil {
				return err
			}
		}
		out = d
		if d.Status == DeliveryFailed {
			return nil // the event stays pending
		}
		return settle(ctx, tx, []string{d.EventID}, now)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeliveryExtend implements DeliveryStore.
func (s Deliveries) DeliveryExtend(ctx context.Context, id, leaseNo int64, now, until time.Time) (*Delivery, error) {
	now, until = micro(now), micro(until)
	if !until.After(now) {
		return nil, errs.Invalid("a lease can only be extended to a time after now")
	}
	var out *Delivery
	err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		d, err := current(ctx, tx, id, leaseNo)
		if err == nil {
			// Push workers never extend: a lease of theirs is extended by no one (see SettleParams.Pusher).
			err = inSubscription(d, SettleParams{ID: id})
		}
		if err != nil {
			return err
		}
		d.AvailableTime, d.UpdateTime = until, now
		out = d
		return tx.DeliveriesUpdate(ctx, []*Delivery{d})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// current reads delivery id, locked, and refuses it unless lease leaseNo is its current lease. A lease
// that has ended is still current until a claim passes the delivery on (which moves Lease).
func current(ctx context.Context, tx DeliveryTx, id, leaseNo int64) (*Delivery, error) {
	d, err := tx.DeliveryForUpdate(ctx, id)
	if errs.KindOf(err) == errs.KindNotFound {
		return check(nil, id, leaseNo)
	}
	if err != nil {
		return nil, err
	}
	return check(d, id, leaseNo)
}

// check refuses d (delivery id, nil when not stored) unless lease leaseNo is its current lease.
func check(d *Delivery, id, leaseNo int64) (*Delivery, error) {
	if d == nil {
		return nil, errs.NotFound("delivery %d not found", id)
	}
	if d.Status != DeliveryLeased || d.Lease != leaseNo {
		return nil, errs.New(errs.KindFailedPrecondition, "lease %d of delivery %d is not current: it was settled or handed out again", leaseNo, id)
	}
	return d, nil
}

// DeliveryInFlight implements DeliveryStore.
func (s Deliveries) DeliveryInFlight(ctx context.Context, subscriptionID, consumer string, now time.Time) (int, error) {
	if !canonicalID(subscriptionID) || !storableText(consumer) {
		return 0, nil // names nothing stored
	}
	return s.D.DeliveryCountInFlight(ctx, subscriptionID, consumer, micro(now))
}

// DeliveryGet implements DeliveryStore.
func (s Deliveries) DeliveryGet(ctx context.Context, id int64) (*Delivery, []Attempt, error) {
	d, as, err := s.D.DeliveryRead(ctx, id)
	if errs.KindOf(err) == errs.KindNotFound {
		return nil, nil, errs.NotFound("delivery %d not found", id)
	}
	return d, as, err
}

// DeliveryList implements DeliveryStore.
func (s Deliveries) DeliveryList(ctx context.Context, p DeliveryListParams) ([]*Delivery, error) {
	if p.Limit <= 0 {
		return nil, errs.Invalid("delivery list limit must be positive")
	}
	if p.Status < 0 || p.Status > DeliveryDeadLetter {
		return nil, errs.Invalid("delivery status %d is not one of 1-5", p.Status)
	}
	if (p.SubscriptionID != "" && !canonicalID(p.SubscriptionID)) || (p.EventID != "" && !canonicalID(p.EventID)) {
		return nil, nil // names nothing stored
	}
	return s.D.DeliveryPage(ctx, p)
}

// DeliveryRedrive implements DeliveryStore.
func (s Deliveries) DeliveryRedrive(ctx context.Context, p RedriveParams) (int64, error) {
	if !canonicalID(p.SubscriptionID) {
		return 0, subscriptionNotFound(p.SubscriptionID)
	}
	if !storableText(p.Source) || !storableText(p.ErrorContains) {
		return 0, errs.Invalid("redrive filters must be UTF-8 text without NUL")
	}
	p.Now, p.From, p.To = micro(p.Now), micro(p.From), micro(p.To)
	var n int64
	err := s.D.DeliveryTx(ctx, func(tx DeliveryTx) error {
		if _, err := tx.SubscriptionGet(ctx, p.SubscriptionID); err != nil {
			if errs.KindOf(err) == errs.KindNotFound {
				return subscriptionNotFound(p.SubscriptionID)
			}
			return err
		}
		events, err := tx.DeliveriesRedrive(ctx, p)
		if err != nil {
			return err
		}
		n = int64(len(events))
		if n > 0 {
			if err := queueAudit(ctx, tx, []AuditRecord{redriveRecord(p, n)}); err != nil {
				return err
			}
		}
		return settle(ctx, tx, events, p.Now)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// settle sets the status of the events ids from their deliveries, once each, in id order (the order in
// which PostgreSQL locks them, so that two settles cannot wait on each other), in chunks.
func settle(ctx context.Context, tx DeliveryTx, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for len(ids) > 0 {
		n := min(len(ids), settleChunk)
		if err := tx.EventsSettle(ctx, ids[:n], now); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

func subscriptionNotFound(id string) error { return errs.NotFound("subscription %s not found", id) }

func nonNegative(d time.Duration) time.Duration { return max(d, 0) }
