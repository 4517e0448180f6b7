package webhook

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// Subscription limits and defaults.
const (
	maxFilterValues     = 50
	maxRetriesLimit     = 100
	defaultBackoffBase  = time.Second
	minBackoffBase      = 10 * time.Millisecond
	defaultBackoffCap   = 10 * time.Minute
	maxBackoff          = 24 * time.Hour
	defaultLease        = 30 * time.Second
	minLease, maxLease  = time.Second, 12 * time.Hour
	durationGranularity = time.Millisecond
)

// deliveriesReady is the delivery store, or FailedPrecondition on a store without one.
func (s *Server) deliveriesReady() (store.DeliveryStore, error) {
	if s.deliveries == nil {
		return nil, errs.New(errs.KindFailedPrecondition, "subscriptions are not available: the webhook store does not keep them")
	}
	return s.deliveries, nil
}

// CreateSubscription implements webhookv1.WebhookServiceServer.
func (s *Server) CreateSubscription(ctx context.Context, req *webhookv1.CreateSubscriptionRequest) (*webhookv1.CreateSubscriptionResponse, error) {
	ds, err := s.deliveriesReady()
	if err != nil {
		return nil, err
	}
	sub, err := s.newSubscription(req)
	if err != nil {
		return nil, err
	}
	if err := ds.SubscriptionCreate(ctx, sub); err != nil {
		return nil, err
	}
	pushChanged()
	return &webhookv1.CreateSubscriptionResponse{Subscription: subscriptionProto(sub)}, nil
}

// newSubscription checks a creation request and returns the subscription it describes, defaults filled.
func (s *Server) newSubscription(req *webhookv1.CreateSubscriptionRequest) (*store.Subscription, error) {
	if err := validate.Name("name", req.GetName()); err != nil {
		return nil, err
	}
	f, err := checkFilter(req.GetFilter())
	if err != nil {
		return nil, err
	}
	retry, err := s.retryPolicy(req.GetRetryPolicy())
	if err != nil {
		return nil, err
	}
	lease, err := durationIn("lease_duration", req.GetLeaseDuration(), defaultLease, minLease, maxLease)
	if err != nil {
		return nil, err
	}
	mode, err := subscriptionMode(req)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	state := store.SubscriptionActive
	if req.GetPaused() {
		state = store.SubscriptionPaused
	}
	sub := &store.Subscription{ID: uuid.Must(uuid.NewV7()).String(), Name: req.GetName(), Filter: f, Retry: retry,
		LeaseDuration: lease, State: state, CreateTime: now, UpdateTime: now, Mode: mode}
	if mode == store.SubscriptionPush {
		// Sealed bound to the id, so the id is chosen first.
		if sub.Push, err = s.newPushConfig(sub.ID, req.GetPush(), lease); err != nil {
			return nil, err
		}
	}
	return sub, nil
}

// checkFilter refuses values neither backend could match alike: sources must be source names, the rest
// text of at most maxNormalisedText bytes without NUL (what normalised events hold); each list at most
// maxFilterValues long, without repeats.
func checkFilter(f *webhookv1.EventFilter) (store.Filter, error) {
	lists := []struct {
		name string
		vs   []string
	}{{"filter.sources", f.GetSources()}, {"filter.modules", f.GetModules()}, {"filter.operations", f.GetOperations()}, {"filter.event_types", f.GetEventTypes()}}
	for li, l := range lists {
		if len(l.vs) > maxFilterValues {
			return store.Filter{}, errs.Invalid("%s must hold at most %d values", l.name, maxFilterValues)
		}
		for i, v := range l.vs {
			var err error
			if li == 0 {
				err = validate.Name(l.name, v)
			} else {
				err = validate.Text(l.name, v, maxNormalisedText, true)
			}
			if err != nil {
				return store.Filter{}, err
			}
			if slices.Contains(l.vs[:i], v) {
				return store.Filter{}, errs.Invalid("%s repeats %q", l.name, v)
			}
		}
	}
	return store.Filter{Sources: slices.Clone(f.GetSources()), Modules: slices.Clone(f.GetModules()),
		Operations: slices.Clone(f.GetOperations()), EventTypes: slices.Clone(f.GetEventTypes())}, nil
}

// retryPolicy fills a request's policy with the defaults and checks it.
func (s *Server) retryPolicy(p *webhookv1.RetryPolicy) (store.RetryPolicy, error) {
	out := store.RetryPolicy{MaxRetries: int32(s.cfg.MaxRetries)}
	if p != nil && p.MaxRetries != nil {
		if p.GetMaxRetries() < 0 || p.GetMaxRetries() > maxRetriesLimit {
			return out, errs.Invalid("retry_policy.max_retries must be 0-%d", maxRetriesLimit)
		}
		out.MaxRetries = p.GetMaxRetries()
	}
	var err error
	if out.BackoffBase, err = durationIn("retry_policy.backoff_base", p.GetBackoffBase(), defaultBackoffBase, minBackoffBase, maxBackoff); err != nil {
		return out, err
	}
	if out.BackoffCap, err = durationIn("retry_policy.backoff_cap", p.GetBackoffCap(), max(defaultBackoffCap, out.BackoffBase), minBackoffBase, maxBackoff); err != nil {
		return out, err
	}
	if out.BackoffCap < out.BackoffBase {
		return out, errs.Invalid("retry_policy.backoff_cap must not be shorter than backoff_base")
	}
	return out, nil
}

// durationIn is d, or def when unset, checked to lie in [lo, hi] and cut to whole milliseconds (what
// the store keeps).
func durationIn(field string, d *durationpb.Duration, def, lo, hi time.Duration) (time.Duration, error) {
	if d == nil {
		return def, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, errs.Invalid("%s is not a valid duration", field)
	}
	v := d.AsDuration().Truncate(durationGranularity)
	if v < lo || v > hi {
		return 0, errs.Invalid("%s must be between %s and %s", field, lo, hi)
	}
	return v, nil
}

// subscriptionFor reads the named subscription after checking the id.
func (s *Server) subscriptionFor(ctx context.Context, id string) (store.DeliveryStore, string, error) {
	ds, err := s.deliveriesReady()
	if err != nil {
		return nil, "", err
	}
	id, err = validate.UUID("id", id)
	return ds, id, err
}

// GetSubscription implements webhookv1.WebhookServiceServer.
func (s *Server) GetSubscription(ctx context.Context, req *webhookv1.GetSubscriptionRequest) (*webhookv1.GetSubscriptionResponse, error) {
	ds, id, err := s.subscriptionFor(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	sub, err := ds.SubscriptionGet(ctx, id)
	if err != nil {
		return nil, err
	}
	return &webhookv1.GetSubscriptionResponse{Subscription: subscriptionProto(sub)}, nil
}

// ListSubscriptions implements webhookv1.WebhookServiceServer.
func (s *Server) ListSubscriptions(ctx context.Context, req *webhookv1.ListSubscriptionsRequest) (*webhookv1.ListSubscriptionsResponse, error) {
	ds, err := s.deliveriesReady()
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	p := store.SubscriptionListParams{Limit: size + 1}
	if req.GetPageToken() != "" {
		parts, err := pagetoken.Decode(req.GetPageToken(), 1)
		if err != nil {
			return nil, err
		}
		if p.AfterID, err = validate.UUID("page_token", parts[0]); err != nil {
			return nil, errs.Invalid("page_token is not valid")
		}
	}
	subs, err := ds.SubscriptionList(ctx, p)
	if err != nil {
		return nil, err
	}
	subs, next := pagetoken.Page(subs, size, func(s *store.Subscription) string { return pagetoken.Encode(s.ID) })
	resp := &webhookv1.ListSubscriptionsResponse{NextPageToken: next}
	for _, sub := range subs {
		resp.Subscriptions = append(resp.Subscriptions, subscriptionProto(sub))
	}
	return resp, nil
}

// setSubscriptionState is Pause and Resume.
func (s *Server) setSubscriptionState(ctx context.Context, id string, state store.SubscriptionState) (*webhookv1.Subscription, error) {
	ds, id, err := s.subscriptionFor(ctx, id)
	if err != nil {
		return nil, err
	}
	sub, err := ds.SubscriptionSetState(ctx, id, state, s.now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, err
	}
	pushChanged()
	if state == store.SubscriptionActive {
		s.wakeSubscription(id)
		if sub.Mode == store.SubscriptionPush {
			s.wakeConsumers() // the push workers wait on every subscription's news
		}
	}
	return subscriptionProto(sub), nil
}

// PauseSubscription implements webhookv1.WebhookServiceServer.
func (s *Server) PauseSubscription(ctx context.Context, req *webhookv1.PauseSubscriptionRequest) (*webhookv1.PauseSubscriptionResponse, error) {
	sub, err := s.setSubscriptionState(ctx, req.GetId(), store.SubscriptionPaused)
	if err != nil {
		return nil, err
	}
	return &webhookv1.PauseSubscriptionResponse{Subscription: sub}, nil
}

// ResumeSubscription implements webhookv1.WebhookServiceServer.
func (s *Server) ResumeSubscription(ctx context.Context, req *webhookv1.ResumeSubscriptionRequest) (*webhookv1.ResumeSubscriptionResponse, error) {
	sub, err := s.setSubscriptionState(ctx, req.GetId(), store.SubscriptionActive)
	if err != nil {
		return nil, err
	}
	return &webhookv1.ResumeSubscriptionResponse{Subscription: sub}, nil
}

// DeleteSubscription implements webhookv1.WebhookServiceServer.
func (s *Server) DeleteSubscription(ctx context.Context, req *webhookv1.DeleteSubscriptionRequest) (*webhookv1.DeleteSubscriptionResponse, error) {
	ds, id, err := s.subscriptionFor(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if err := ds.SubscriptionDelete(ctx, id); err != nil {
		return nil, err
	}
	pushChanged()
	forgetSubscriptionMetrics(id)
	forgetPushMetrics(id)
	s.wakeSubscription(id) // its waiting consumers find it gone and end
	return &webhookv1.DeleteSubscriptionResponse{}, nil
}

func subscriptionProto(s *store.Subscription) *webhookv1.Subscription {
	return &webhookv1.Subscription{
		Id: s.ID, Name: s.Name,
		Filter: &webhookv1.EventFilter{Sources: s.Filter.Sources, Modules: s.Filter.Modules, Operations: s.Filter.Operations, EventTypes: s.Filter.EventTypes},
		RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: &s.Retry.MaxRetries, BackoffBase: durationpb.New(s.Retry.BackoffBase),
			BackoffCap: durationpb.New(s.Retry.BackoffCap)},
		LeaseDuration: durationpb.New(s.LeaseDuration), State: webhookv1.SubscriptionState(s.State),
		CreateTime: timestamppb.New(s.CreateTime), UpdateTime: timestamppb.New(s.UpdateTime),
		Mode: webhookv1.SubscriptionMode(s.Mode), Push: pushProto(s.Push),
	}
}
