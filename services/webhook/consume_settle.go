package webhook

import (
	"context"
	"errors"
	"sync"
	"time"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// refusedLease reports whether err means the lease an ack id names is no longer current: the delivery
// was settled, its lease passed to another consumer, or it is gone with its subscription. Such an ack
// is refused by name, not failed for the whole call.
func refusedLease(err error) bool {
	k := errs.KindOf(err)
	return k == errs.KindFailedPrecondition || k == errs.KindNotFound
}

// settleParallelism is how many of one call's ack ids are settled at once. Each is its own transaction;
// PostgreSQL commits several concurrent ones in about the time of one (a commit waits on a round trip and
// a WAL flush), and SQLite's single writer takes them in turn at no extra cost.
const settleParallelism = 8

// settleEach applies fn to each ack id's lease, settleParallelism at a time, and returns the ack ids
// refused, in request order. Another error ends the call: what was settled before it stays settled (a
// retry finds those refused).
func settleEach(ctx context.Context, ids []string, refs []ackRef, fn func(context.Context, ackRef) error) ([]string, error) {
	results := make([]error, len(refs))
	for i := range results {
		results[i] = errNotTried
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(settleParallelism, len(refs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := fn(ctx, refs[i])
				results[i] = err
				if err != nil && !refusedLease(err) {
					cancel() // the rest would fail alike: stop early
				}
			}
		}()
	}
feed:
	for i := range refs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	var refused []string
	var untried bool
	for i, err := range results {
		switch {
		case err == nil:
		case err == errNotTried:
			untried = true
		case refusedLease(err):
			refused = append(refused, ids[i])
		default:
			return nil, err
		}
	}
	if untried {
		return nil, ctx.Err() // the caller went away before every ack id was tried
	}
	return refused, nil
}

// errNotTried marks an ack id settleEach did not get to.
var errNotTried = errors.New("not tried")

// settleBatch settles every ack id's lease in one transaction (DeliverySettleBatch: one commit for the
// call, where one per ack id made a consumer acking each delivery wait on a commit per delivery) and
// returns the ack ids refused, in request order. An error settles none of them. The consumers of what
// was settled are told that room was freed (and, with work set, that deliveries may be due again).
func (s *Server) settleBatch(ctx context.Context, ds store.DeliveryStore, ids []string, refs []ackRef, work bool,
	params func(ref ackRef, now time.Time) store.SettleParams) ([]string, error) {
	now := s.now()
	ps := make([]store.SettleParams, len(refs))
	for i, r := range refs {
		ps[i] = params(r, now)
	}
	results, err := ds.DeliverySettleBatch(ctx, ps)
	if err != nil {
		return nil, err
	}
	var refused []string
	var settled []*store.Delivery
	defer func() { s.wakeSettled(settled, work) }()
	for i, r := range results {
		switch {
		case r.Err == nil:
			observeSettled(r.Delivery, now)
			settled = append(settled, r.Delivery)
		case refusedLease(r.Err):
			refused = append(refused, ids[i])
		default:
			return nil, r.Err
		}
	}
	return refused, nil
}

// settleTargets is what Ack, Nack and ExtendLease act on: the delivery store, and the ack ids (without
// repeats) with the leases they name; the store's absence is reported before a bad ack id.
func (s *Server) settleTargets(ackIDs []string) (ds store.DeliveryStore, ids []string, refs []ackRef, err error) {
	if ds, err = s.deliveryStore(); err != nil {
		return nil, nil, nil, err
	}
	ids, refs, err = ackRefs(ackIDs)
	return ds, ids, refs, err
}

// Ack implements webhookv1.WebhookServiceServer.
func (s *Server) Ack(ctx context.Context, req *webhookv1.AckRequest) (*webhookv1.AckResponse, error) {
	ds, ids, refs, err := s.settleTargets(req.GetAckIds())
	if err != nil {
		return nil, err
	}
	// Settling frees room in the consumer's in-flight budget: its Receive may top up (settleBatch wakes it).
	refused, err := s.settleBatch(ctx, ds, ids, refs, false, func(ref ackRef, now time.Time) store.SettleParams {
		return store.SettleParams{ID: ref.deliveryID, Lease: ref.lease, Now: now, SubscriptionID: ref.subscriptionID}
	})
	if err != nil {
		return nil, err
	}
	return &webhookv1.AckResponse{RefusedAckIds: refused}, nil
}

// Nack implements webhookv1.WebhookServiceServer.
func (s *Server) Nack(ctx context.Context, req *webhookv1.NackRequest) (*webhookv1.NackResponse, error) {
	ds, ids, refs, err := s.settleTargets(req.GetAckIds())
	if err != nil {
		return nil, err
	}
	delay, delaySet, err := optionalDuration("delay", req.GetDelay(), 0, maxNackDelay)
	if err != nil {
		return nil, err
	}
	if err := validate.Text("error", req.GetError(), maxNackError, false); err != nil {
		return nil, err
	}
	// A nacked delivery may be due at once, and settling frees room: settleBatch wakes the subscriptions'
	// consumers.
	refused, err := s.settleBatch(ctx, ds, ids, refs, true, func(ref ackRef, now time.Time) store.SettleParams {
		p := store.SettleParams{ID: ref.deliveryID, Lease: ref.lease, Now: now, Nack: true, Error: req.GetError(), SubscriptionID: ref.subscriptionID}
		if delaySet {
			// A zero delay is "now", not "the backoff" (which an unset delay means): RetryAt must not be zero.
			p.RetryAt = now.Add(delay)
		}
		return p
	})
	if err != nil {
		return nil, err
	}
	return &webhookv1.NackResponse{RefusedAckIds: refused}, nil
}

// ExtendLease implements webhookv1.WebhookServiceServer.
func (s *Server) ExtendLease(ctx context.Context, req *webhookv1.ExtendLeaseRequest) (*webhookv1.ExtendLeaseResponse, error) {
	ds, ids, refs, err := s.settleTargets(req.GetAckIds())
	if err != nil {
		return nil, err
	}
	lease, leaseSet, err := optionalDuration("lease_duration", req.GetLeaseDuration(), minExtendLease, maxExtendLease)
	if err != nil {
		return nil, err
	}
	// The subscriptions' own lease durations when lease_duration is unset, each looked up once, before
	// the leases are extended in parallel; an unknown subscription's deliveries are gone with it.
	leases := map[string]time.Duration{}
	if !leaseSet {
		for _, ref := range refs {
			if _, ok := leases[ref.subscriptionID]; ok {
				continue
			}
			sub, err := ds.SubscriptionGet(ctx, ref.subscriptionID)
			switch {
			case errs.KindOf(err) == errs.KindNotFound:
				leases[ref.subscriptionID] = 0
			case err != nil:
				return nil, err
			default:
				leases[ref.subscriptionID] = sub.LeaseDuration
			}
		}
	}
	refused, err := settleEach(ctx, ids, refs, func(ctx context.Context, ref ackRef) error {
		d := lease
		if !leaseSet {
			if d = leases[ref.subscriptionID]; d == 0 {
				return errs.NotFound("subscription %s not found", ref.subscriptionID)
			}
		}
		now := s.now()
		_, err := ds.DeliveryExtend(ctx, ref.deliveryID, ref.lease, now, now.Add(d))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &webhookv1.ExtendLeaseResponse{RefusedAckIds: refused}, nil
}
