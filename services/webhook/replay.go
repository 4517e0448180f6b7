package webhook

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// ReplayEvents implements webhookv1.WebhookServiceServer. A range is replayed a page at a time until it
// is done or the call's deadline passes; the pages done stay done (a second call with the same range
// skips what they made pending while it waits, and replays again what was delivered meanwhile).
func (s *Server) ReplayEvents(ctx context.Context, req *webhookv1.ReplayEventsRequest) (*webhookv1.ReplayEventsResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	p, err := s.replayParams(ctx, req)
	if err != nil {
		return nil, err
	}
	r, err := ds.DeliveryReplay(ctx, p)
	if r.Replayed > 0 {
		s.wakeSubscription(p.SubscriptionID)
		// The push workers wait on every subscription's news, not on one subscription's: without this a
		// replay to a push subscription waited for their poll. Replays are rare; waking the waiting pull
		// consumers too costs each one look.
		s.wakeConsumers()
		s.wakeOutbox() // the pages that replayed something queued audit events
	}
	attrs := []any{"service", "webhook", "subscription", p.SubscriptionID, "actor", p.Actor, "replayed", r.Replayed, "skipped", r.Skipped}
	if p.EventID != "" {
		attrs = append(attrs, "event_id", p.EventID)
	} else {
		attrs = append(attrs, "start_time", p.From, "end_time", p.To)
	}
	if err != nil {
		if errs.KindOf(err) != errs.KindNotFound && errs.KindOf(err) != errs.KindInvalid {
			s.log.WarnContext(ctx, "replay stopped", append(attrs, "error", err.Error())...)
		}
		return nil, err
	}
	s.log.InfoContext(ctx, "events replayed", attrs...)
	return &webhookv1.ReplayEventsResponse{Replayed: r.Replayed, Skipped: r.Skipped}, nil
}

// replayParams checks a ReplayEvents request: a subscription, and either one event or a range whose
// start comes before its end (now when unset).
func (s *Server) replayParams(ctx context.Context, req *webhookv1.ReplayEventsRequest) (store.ReplayParams, error) {
	p := store.ReplayParams{Now: s.now(), Actor: actor(ctx)}
	var err error
	if p.SubscriptionID, err = validate.UUID("subscription_id", req.GetSubscriptionId()); err != nil {
		return p, err
	}
	switch {
	case req.GetEventId() != "" && (req.GetStartTime() != nil || req.GetEndTime() != nil):
		return p, errs.Invalid("set event_id or start_time (with end_time), not both")
	case req.GetEventId() != "":
		p.EventID, err = validate.UUID("event_id", req.GetEventId())
		return p, err
	case req.GetStartTime() == nil:
		return p, errs.Invalid("set event_id or start_time")
	}
	if p.From, err = timeField("start_time", req.GetStartTime()); err != nil {
		return p, err
	}
	p.To = p.Now
	if req.GetEndTime() != nil {
		if p.To, err = timeField("end_time", req.GetEndTime()); err != nil {
			return p, err
		}
	}
	if !p.From.Before(p.To) {
		return p, errs.Invalid("start_time must be before end_time (now when unset)")
	}
	return p, nil
}

// timeField reads a required timestamp field.
func timeField(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, errs.Invalid("%s is required", field)
	}
	if ts.CheckValid() != nil {
		return time.Time{}, errs.Invalid("%s is not a valid time", field)
	}
	return ts.AsTime(), nil
}

// actor names the caller for the audit log: its principal's id, or "" when the call is not
// authenticated (tests, a service acting on its own).
func actor(ctx context.Context) string {
	if p := auth.FromContext(ctx); p != nil {
		return p.ID
	}
	return ""
}
