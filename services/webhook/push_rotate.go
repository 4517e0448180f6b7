package webhook

import (
	"context"
	"time"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/webhook/store"
)

// RotateSigningSecret implements webhookv1.WebhookServiceServer: the new secret signs from now on, the
// current one beside it until previous_secret_ttl has passed (dropped at once for 0), so that a receiver
// that still knows only the current secret keeps accepting requests while it switches.
func (s *Server) RotateSigningSecret(ctx context.Context, req *webhookv1.RotateSigningSecretRequest) (*webhookv1.RotateSigningSecretResponse, error) {
	ds, id, err := s.subscriptionFor(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	ttl, err := durationIn("previous_secret_ttl", req.GetPreviousSecretTtl(), defaultPreviousSecretTTL, 0, maxPreviousSecretTTL)
	if err != nil {
		return nil, err
	}
	if s.ring == nil {
		return nil, errNoPushKeys()
	}
	sealed, err := s.sealSigningSecret(id, "signing_secret", req.GetSigningSecret())
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	var until time.Time
	if ttl > 0 {
		until = now.Add(ttl)
	}
	sub, err := ds.SubscriptionRotateSecret(ctx, id, sealed, until, now)
	if err != nil {
		if errs.KindOf(err) == errs.KindFailedPrecondition {
			return nil, errs.New(errs.KindFailedPrecondition, "subscription %s is a pull subscription: only push subscriptions have a signing secret", id)
		}
		return nil, err
	}
	pushChanged()
	return &webhookv1.RotateSigningSecretResponse{Subscription: subscriptionProto(sub)}, nil
}

// refusePush is FailedPrecondition for a push subscription: its deliveries are the push workers' to
// lease, and a pull consumer leasing them would take them from the endpoint. Receive and Poll call it.
func refusePush(sub *store.Subscription) error {
	if sub.Mode == store.SubscriptionPush {
		return errs.New(errs.KindFailedPrecondition, "subscription %s is a push subscription: its deliveries are POSTed to its endpoint, not pulled", sub.ID)
	}
	return nil
}
