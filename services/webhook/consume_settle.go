package webhook

import (
	"context"
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

// settleEach applies fn to each ack id's lease, in order, and returns the ack ids refused. Another
// error ends the call: what was settled before it stays settled (a retry finds those refused).
func settleEach(ctx context.Context, ids []string, refs []ackRef, fn func(context.Context, ackRef) error) ([]string, error) {
	var refused []string
	for i, ref := range refs {
		if err := fn(ctx, ref); err != nil {
			if !refusedLease(err) {
				return nil, err
			}
			refused = append(refused, ids[i])
		}
	}
	return refused, nil
}

// Ack implements webhookv1.WebhookServiceServer.
func (s *Server) Ack(ctx context.Context, req *webhookv1.AckRequest) (*webhookv1.AckResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	ids, refs, err := ackRefs(req.GetAckIds())
	if err != nil {
		return nil, err
	}
	// Settling frees room in the consumer's in-flight budget: its Receive may top up.
	defer s.wakeConsumers()
	refused, err := settleEach(ctx, ids, refs, func(ctx context.Context, ref ackRef) error {
		now := s.now()
		d, err := ds.DeliverySettle(ctx, store.SettleParams{ID: ref.deliveryID, Lease: ref.lease, Now: now})
		if err == nil {
			observeSettled(d, now)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &webhookv1.AckResponse{RefusedAckIds: refused}, nil
}

// Nack implements webhookv1.WebhookServiceServer.
func (s *Server) Nack(ctx context.Context, req *webhookv1.NackRequest) (*webhookv1.NackResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	ids, refs, err := ackRefs(req.GetAckIds())
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
	defer s.wakeConsumers()
	refused, err := settleEach(ctx, ids, refs, func(ctx context.Context, ref ackRef) error {
		now := s.now()
		p := store.SettleParams{ID: ref.deliveryID, Lease: ref.lease, Now: now, Nack: true, Error: req.GetError()}
		if delaySet {
			// A zero delay is "now", not "the backoff" (which an unset delay means): RetryAt must not be zero.
			p.RetryAt = now.Add(delay)
		}
		d, err := ds.DeliverySettle(ctx, p)
		if err == nil {
			observeSettled(d, now)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &webhookv1.NackResponse{RefusedAckIds: refused}, nil
}

// ExtendLease implements webhookv1.WebhookServiceServer.
func (s *Server) ExtendLease(ctx context.Context, req *webhookv1.ExtendLeaseRequest) (*webhookv1.ExtendLeaseResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	ids, refs, err := ackRefs(req.GetAckIds())
	if err != nil {
		return nil, err
	}
	lease, leaseSet, err := optionalDuration("lease_duration", req.GetLeaseDuration(), minExtendLease, maxExtendLease)
	if err != nil {
		return nil, err
	}
	// The subscriptions' own lease durations, looked up once each when lease_duration is unset.
	leases := map[string]time.Duration{}
	refused, err := settleEach(ctx, ids, refs, func(ctx context.Context, ref ackRef) error {
		d := lease
		if !leaseSet {
			var ok bool
			if d, ok = leases[ref.subscriptionID]; !ok {
				sub, err := ds.SubscriptionGet(ctx, ref.subscriptionID)
				if err != nil {
					return err // NotFound: deleted with its deliveries, so the lease is gone
				}
				d = sub.LeaseDuration
				leases[ref.subscriptionID] = d
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
