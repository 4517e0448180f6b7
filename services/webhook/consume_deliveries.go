package webhook

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/internal/pagetoken"
	"github.com/sergas/core/internal/validate"
	"github.com/sergas/core/services/webhook/store"
)

// maxErrorContains bounds RedriveDeliveries' error filter (a Nack's error is at most maxNackError bytes).
const maxErrorContains = maxNackError

// deliveryID reads a delivery id: the decimal form deliveryProto writes (no sign, no leading zeros),
// positive and within int64, so that one delivery has one spelling.
func deliveryID(field, v string) (int64, error) {
	bad := errs.Invalid("%s must be a delivery id (a positive decimal number)", field)
	if v == "" || len(v) > 19 || v[0] == '0' {
		return 0, bad
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, bad
		}
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, bad
	}
	return id, nil
}

// deliveryProto renders d, with attempts when given. Times the status does not give a meaning are left
// unset: next_attempt_time while waiting, the consumer and lease_expire_time while leased.
func deliveryProto(d *store.Delivery, attempts []store.Attempt) *webhookv1.Delivery {
	out := &webhookv1.Delivery{
		Id: strconv.FormatInt(d.ID, 10), SubscriptionId: d.SubscriptionID, EventId: d.EventID, Source: d.Source,
		Status: webhookv1.DeliveryStatus(d.Status), AttemptCount: d.AttemptCount, LastError: d.LastError,
		CreateTime: timestamppb.New(d.CreateTime), UpdateTime: timestamppb.New(d.UpdateTime),
	}
	if !d.AvailableTime.IsZero() {
		switch d.Status {
		case store.DeliveryPending, store.DeliveryFailed:
			out.NextAttemptTime = timestamppb.New(d.AvailableTime)
		case store.DeliveryLeased:
			out.LeaseExpireTime = timestamppb.New(d.AvailableTime)
			out.Consumer = d.Consumer
		}
	}
	for _, a := range attempts {
		out.Attempts = append(out.Attempts, &webhookv1.Attempt{
			Number: a.Number, StartTime: timestamppb.New(a.StartTime), Duration: durationpb.New(a.Duration),
			Outcome: a.Outcome, Error: a.Error, Consumer: a.Consumer, HttpStatus: a.HTTPStatus, ResponseExcerpt: a.Response,
		})
	}
	return out
}

// GetDelivery implements webhookv1.WebhookServiceServer.
func (s *Server) GetDelivery(ctx context.Context, req *webhookv1.GetDeliveryRequest) (*webhookv1.GetDeliveryResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	id, err := deliveryID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	d, attempts, err := ds.DeliveryGet(ctx, id)
	if err != nil {
		return nil, err
	}
	return &webhookv1.GetDeliveryResponse{Delivery: deliveryProto(d, attempts)}, nil
}

// ListDeliveries implements webhookv1.WebhookServiceServer. The page token is the last id listed, so a
// delivery committed after a reader paged past its id (PostgreSQL numbers rows before they commit) is
// not listed to that reader; deliveries are created with their events, so a list that starts after the
// events it looks at are stored sees them all.
func (s *Server) ListDeliveries(ctx context.Context, req *webhookv1.ListDeliveriesRequest) (*webhookv1.ListDeliveriesResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	p := store.DeliveryListParams{Status: store.DeliveryStatus(req.GetStatus()), Limit: size + 1}
	if _, ok := webhookv1.DeliveryStatus_name[int32(req.GetStatus())]; !ok {
		return nil, errs.Invalid("status is not a known value")
	}
	if v := req.GetSubscriptionId(); v != "" {
		if p.SubscriptionID, err = validate.UUID("subscription_id", v); err != nil {
			return nil, err
		}
	}
	if v := req.GetEventId(); v != "" {
		if p.EventID, err = validate.UUID("event_id", v); err != nil {
			return nil, err
		}
	}
	if p.AfterID, _, err = pagetoken.DecodeInt(req.GetPageToken()); err != nil {
		return nil, err
	}
	list, err := ds.DeliveryList(ctx, p)
	if err != nil {
		return nil, err
	}
	list, next := pagetoken.Page(list, size, func(last *store.Delivery) string { return pagetoken.EncodeInt(last.ID) })
	resp := &webhookv1.ListDeliveriesResponse{NextPageToken: next}
	for _, d := range list {
		resp.Deliveries = append(resp.Deliveries, deliveryProto(d, nil))
	}
	return resp, nil
}

// RedriveDeliveries implements webhookv1.WebhookServiceServer.
func (s *Server) RedriveDeliveries(ctx context.Context, req *webhookv1.RedriveDeliveriesRequest) (*webhookv1.RedriveDeliveriesResponse, error) {
	ds, err := s.deliveryStore()
	if err != nil {
		return nil, err
	}
	p := store.RedriveParams{ErrorContains: req.GetErrorContains(), Now: s.now(), Actor: actor(ctx)}
	if p.SubscriptionID, err = validate.UUID("subscription_id", req.GetSubscriptionId()); err != nil {
		return nil, err
	}
	if req.GetSource() != "" {
		if err := validate.Name("source", req.GetSource()); err != nil {
			return nil, err
		}
		p.Source = req.GetSource()
	}
	if err := validate.Text("error_contains", p.ErrorContains, maxErrorContains, false); err != nil {
		return nil, err
	}
	for _, t := range []struct {
		field string
		ts    *timestamppb.Timestamp
		into  *time.Time
	}{{"start_time", req.GetStartTime(), &p.From}, {"end_time", req.GetEndTime(), &p.To}} {
		if t.ts == nil {
			continue
		}
		if t.ts.CheckValid() != nil {
			return nil, errs.Invalid("%s is not a valid time", t.field)
		}
		*t.into = t.ts.AsTime()
	}
	if !p.From.IsZero() && !p.To.IsZero() && !p.From.Before(p.To) {
		return nil, errs.Invalid("start_time must be before end_time")
	}
	if _, err := ds.SubscriptionGet(ctx, p.SubscriptionID); err != nil {
		return nil, err
	}
	n, err := ds.DeliveryRedrive(ctx, p)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		s.wakeSubscription(p.SubscriptionID)
	}
	s.log.InfoContext(ctx, "dead letters redriven", "service", "webhook", "subscription", p.SubscriptionID, "redriven", n)
	return &webhookv1.RedriveDeliveriesResponse{Redriven: n}, nil
}
