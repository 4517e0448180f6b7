package webhook

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/db"
)

// A delivered event replayed by id is handed out again (Poll) with a fresh attempt budget and its
// history kept; an event stored before a subscription is replayed to it by id, and a range replay gives
// it the rest of the range while skipping what it already waits for. Unknown ids are NOT_FOUND.
func TestReplayEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 1})
		start := r.clock.now()
		first := r.ingest(t)
		ld := r.pollOne(t, "agent")
		r.ack(t, ld.GetAckId())
		replay := func(req *webhookv1.ReplayEventsRequest) *webhookv1.ReplayEventsResponse {
			t.Helper()
			resp, err := r.client.ReplayEvents(t.Context(), req)
			if err != nil {
				t.Fatalf("replay %v: %v", req, err)
			}
			return resp
		}
		if got := replay(&webhookv1.ReplayEventsRequest{SubscriptionId: r.sub.GetId(), EventId: first}); got.GetReplayed() != 1 || got.GetSkipped() != 0 {
			t.Fatalf("replay: %v", got)
		}
		again := r.pollOne(t, "agent")
		if again.GetEvent().GetId() != first || again.GetDelivery().GetId() != ld.GetDelivery().GetId() || again.GetDelivery().GetAttemptCount() != 1 {
			t.Fatalf("handed out after replay: %v", again)
		}
		r.ack(t, again.GetAckId())
		if got := r.get(t, ld.GetDelivery().GetId()); len(got.GetAttempts()) != 2 || got.GetAttempts()[1].GetNumber() != 2 ||
			got.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED {
			t.Fatalf("after the second ack: %v", got)
		}

		second := r.ingest(t) // pending for the rig's subscription
		late, err := r.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "late"})
		if err != nil {
			t.Fatal(err)
		}
		lateID := late.GetSubscription().GetId()
		if got := replay(&webhookv1.ReplayEventsRequest{SubscriptionId: lateID, EventId: second}); got.GetReplayed() != 1 {
			t.Fatalf("replay to a later subscription: %v", got)
		}
		// The clock stands still: events were received at "now", which an end of now leaves out.
		r.clock.advance(time.Second)
		got := replay(&webhookv1.ReplayEventsRequest{SubscriptionId: lateID, StartTime: timestamppb.New(start.Add(-time.Minute))})
		if got.GetReplayed() != 1 || got.GetSkipped() != 1 { // first made; second already pending
			t.Fatalf("range replay: %v", got)
		}
		ds, err := r.client.ListDeliveries(t.Context(), &webhookv1.ListDeliveriesRequest{SubscriptionId: lateID})
		if err != nil || len(ds.GetDeliveries()) != 2 {
			t.Fatalf("the later subscription's deliveries: %v %v", ds, err)
		}
		if got := replay(&webhookv1.ReplayEventsRequest{SubscriptionId: lateID, StartTime: timestamppb.New(start.Add(-time.Hour)),
			EndTime: timestamppb.New(start.Add(-time.Minute))}); got.GetReplayed() != 0 || got.GetSkipped() != 0 {
			t.Fatalf("replay of an empty range: %v", got)
		}

		for name, req := range map[string]*webhookv1.ReplayEventsRequest{
			"unknown event":        {SubscriptionId: lateID, EventId: "01900000-0000-7000-8000-0000000000e1"},
			"unknown subscription": {SubscriptionId: "01900000-0000-7000-8000-00000000000a", EventId: first},
			"unknown subscription, range": {SubscriptionId: "01900000-0000-7000-8000-00000000000a",
				StartTime: timestamppb.New(start.Add(-time.Minute))},
		} {
			if _, err := r.client.ReplayEvents(t.Context(), req); status.Code(err) != codes.NotFound {
				t.Errorf("%s: %v, want NOT_FOUND", name, err)
			}
		}
	})
}

// ReplayEvents takes exactly one of event_id and start_time, valid ids and times, and a range that
// starts before it ends (now when end_time is unset).
func TestReplayEventsRefusals(t *testing.T) {
	r := newConsumeRig(t, db.SQLite, subOpts{maxRetries: 1})
	sub, now := r.sub.GetId(), r.clock.now()
	ev := "01900000-0000-7000-8000-0000000000e1"
	for name, req := range map[string]*webhookv1.ReplayEventsRequest{
		"no subscription":       {EventId: ev},
		"bad subscription":      {SubscriptionId: "nope", EventId: ev},
		"neither":               {SubscriptionId: sub},
		"both":                  {SubscriptionId: sub, EventId: ev, StartTime: timestamppb.New(now.Add(-time.Hour))},
		"event with end":        {SubscriptionId: sub, EventId: ev, EndTime: timestamppb.New(now)},
		"end without start":     {SubscriptionId: sub, EndTime: timestamppb.New(now)},
		"bad event":             {SubscriptionId: sub, EventId: "not-a-uuid"},
		"start after end":       {SubscriptionId: sub, StartTime: timestamppb.New(now), EndTime: timestamppb.New(now.Add(-time.Second))},
		"start equals end":      {SubscriptionId: sub, StartTime: timestamppb.New(now), EndTime: timestamppb.New(now)},
		"start after now":       {SubscriptionId: sub, StartTime: timestamppb.New(now.Add(time.Second))},
		"invalid start":         {SubscriptionId: sub, StartTime: &timestamppb.Timestamp{Seconds: 1, Nanos: -1}},
		"invalid end":           {SubscriptionId: sub, StartTime: timestamppb.New(now.Add(-time.Hour)), EndTime: &timestamppb.Timestamp{Seconds: 1 << 62}},
		"start before year one": {SubscriptionId: sub, StartTime: &timestamppb.Timestamp{Seconds: -62135596801}},
	} {
		_, err := r.client.ReplayEvents(t.Context(), req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
}

// The audit log names the caller: its principal's id, or nobody when the call is not authenticated.
func TestActorIsTheCallersPrincipal(t *testing.T) {
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{ID: "apikey:ops", Scopes: []string{auth.ScopeWebhookAdmin}})
	if got := actor(ctx); got != "apikey:ops" {
		t.Fatalf("actor %q", got)
	}
	if got := actor(context.Background()); got != "" {
		t.Fatalf("actor without a principal %q", got)
	}
}
