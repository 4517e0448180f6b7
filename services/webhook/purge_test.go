package webhook

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/db"
	waitutil "github.com/sergas/core/internal/testutil"
)

// ingestDelivered stores an event and acks its delivery.
func (r *consumeRig) ingestDelivered(t *testing.T) string {
	t.Helper()
	id := r.ingest(t)
	ld := r.pollOne(t, "agent")
	if ld.GetEvent().GetId() != id {
		t.Fatalf("polled %s, want %s", ld.GetEvent().GetId(), id)
	}
	r.ack(t, ld.GetAckId())
	return id
}

// ingestWaiting stores an event whose delivery failed and waits a day for its next attempt: not
// delivered, and out of the way of the polls that follow.
func (r *consumeRig) ingestWaiting(t *testing.T) string {
	t.Helper()
	id := r.ingest(t)
	ld := r.pollOne(t, "agent")
	if ld.GetEvent().GetId() != id {
		t.Fatalf("polled %s, want %s", ld.GetEvent().GetId(), id)
	}
	r.nack(t, "later", durationpb.New(24*time.Hour), ld.GetAckId())
	return id
}

func (r *consumeRig) eventCode(t *testing.T, id string) codes.Code {
	t.Helper()
	_, err := r.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: id})
	return status.Code(err)
}

// PurgeEvents deletes the delivered events received before its time with their deliveries, and keeps
// an event still to be delivered and events received since.
func TestPurgeEvents(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 1})
		old := []string{r.ingestDelivered(t), r.ingestDelivered(t)}
		oldDelivery := r.list(t, webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED)[0].GetId()
		pending := r.ingestWaiting(t)
		r.clock.advance(time.Hour)
		cut := r.clock.now()
		recent := r.ingestDelivered(t)
		r.clock.advance(time.Minute)
		resp, err := r.client.PurgeEvents(t.Context(), &webhookv1.PurgeEventsRequest{Before: timestamppb.New(cut)})
		if err != nil || resp.GetPurgedEvents() != 2 || resp.GetPurgedDeliveries() != 2 {
			t.Fatalf("purge: %v %v", resp, err)
		}
		for _, id := range old {
			if c := r.eventCode(t, id); c != codes.NotFound {
				t.Fatalf("purged event %s: %v", id, c)
			}
		}
		if _, err := r.client.GetDelivery(t.Context(), &webhookv1.GetDeliveryRequest{Id: oldDelivery}); status.Code(err) != codes.NotFound {
			t.Fatalf("purged delivery: %v", err)
		}
		for _, id := range []string{pending, recent} {
			if c := r.eventCode(t, id); c != codes.OK {
				t.Fatalf("kept event %s: %v", id, c)
			}
		}
	})
}

// PurgeEvents needs a valid before that is not in the future.
func TestPurgeEventsRefusals(t *testing.T) {
	r := newConsumeRig(t, db.SQLite, subOpts{maxRetries: 1})
	now := r.clock.now()
	for name, req := range map[string]*webhookv1.PurgeEventsRequest{
		"no before":  {},
		"future":     {Before: timestamppb.New(now.Add(time.Second))},
		"not a time": {Before: &timestamppb.Timestamp{Seconds: 1, Nanos: 2e9}},
		"after 9999": {Before: &timestamppb.Timestamp{Seconds: 1 << 40}},
	} {
		if _, err := r.client.PurgeEvents(t.Context(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
}

// The retention purger runs at start on one replica and deletes the delivered events older than the
// retention, counting them; it keeps undelivered ones, and stops when its context ends.
func TestRetentionPurger(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 1})
		old, pending := r.ingestDelivered(t), r.ingestWaiting(t)
		r.clock.advance(2 * time.Hour)
		recent := r.ingestDelivered(t)
		r.srv.cfg.Retention = RetentionConfig{Retention: time.Hour, Interval: time.Hour}
		ws := r.srv.purgeWorkers()
		if len(ws) != 1 || ws[0].Name != "webhook.retention_purger" || !ws[0].SingleReplica {
			t.Fatalf("workers %+v", ws)
		}
		before := testutil.ToFloat64(purgedEvents)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- ws[0].Run(ctx) }()
		waitutil.Eventually(t, 10*time.Second, "the old delivered event purged", func() bool { return r.eventCode(t, old) == codes.NotFound })
		if got := testutil.ToFloat64(purgedEvents); got < before+1 {
			t.Fatalf("webhook_purged_events_total %v, was %v", got, before)
		}
		for _, id := range []string{pending, recent} {
			if c := r.eventCode(t, id); c != codes.OK {
				t.Fatalf("kept event %s: %v", id, c)
			}
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("purger returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the purger did not stop")
		}
		r.srv.cfg.Retention.Retention = 0
		if ws := r.srv.purgeWorkers(); len(ws) != 0 {
			t.Fatalf("retention 0 runs %+v", ws)
		}
	})
}

// WEBHOOK_RETENTION defaults to a week; 0 turns the purger off; a bad value stops the service.
func TestRetentionConfig(t *testing.T) {
	for v, want := range map[string]time.Duration{"": DefaultRetention, "0": 0, "720h": 720 * time.Hour} {
		m := map[string]string{}
		if v != "" {
			m["WEBHOOK_RETENTION"] = v
		}
		env := config.FromMap(m)
		if got := LoadRetentionConfig(env); got.Retention != want || got.Interval != time.Hour || env.Err() != nil {
			t.Errorf("%q: %+v %v", v, got, env.Err())
		}
	}
	for _, v := range []string{"-1h", "week"} {
		env := config.FromMap(map[string]string{"WEBHOOK_RETENTION": v})
		LoadRetentionConfig(env)
		if env.Err() == nil {
			t.Errorf("%q accepted", v)
		}
	}
}
