package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// chanRecorder is an audit service that is always ready and hands each event it is sent to a channel.
type chanRecorder struct {
	got chan *auditv1.RecordEventRequest
}

func (r chanRecorder) Record(_ context.Context, req *auditv1.RecordEventRequest) error {
	r.got <- req
	return nil
}

func (chanRecorder) Ready() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// TestReplayAndPurgeWakeTheOutbox: with the outbox sender idle for a minute between rounds, the audit
// events of a replay and of a purge reach the audit service within seconds: the RPC wakes the sender
// after the commit that queued them.
func TestReplayAndPurgeWakeTheOutbox(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		rec := chanRecorder{got: make(chan *auditv1.RecordEventRequest, 100)}
		h := startServiceOn(t, newStore(t, d), map[string]string{"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "0"}, WithAudit(rec))
		runIdleOutbox(t, h.srv)
		ing, err := h.client.Ingest(from(t, "192.0.2.9"), delivery(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := h.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "later"})
		if err != nil {
			t.Fatal(err)
		}
		expect := func(action string) {
			t.Helper()
			select {
			case req := <-rec.got:
				if req.GetAction() != action {
					t.Fatalf("audit event %q, want %q", req.GetAction(), action)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s audit event within 10s (the sender's idle wait is a minute)", action)
			}
		}
		if _, err := h.client.ReplayEvents(t.Context(), &webhookv1.ReplayEventsRequest{SubscriptionId: sub.GetSubscription().GetId(),
			EventId: ing.GetEventId()}); err != nil {
			t.Fatal(err)
		}
		expect("webhook.deliveries.replayed")
		// The replayed delivery is acked, so that the event can be purged a minute later.
		poll, err := h.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: sub.GetSubscription().GetId(), Consumer: "agent"})
		if err != nil || len(poll.GetDeliveries()) != 1 {
			t.Fatalf("poll: %v, %v", poll, err)
		}
		if _, err := h.client.Ack(t.Context(), &webhookv1.AckRequest{AckIds: []string{poll.GetDeliveries()[0].GetAckId()}}); err != nil {
			t.Fatal(err)
		}
		h.clock.advance(time.Minute)
		resp, err := h.client.PurgeEvents(t.Context(), &webhookv1.PurgeEventsRequest{Before: timestamppb.New(h.srv.now())})
		if err != nil || resp.GetPurgedEvents() != 1 {
			t.Fatalf("purge: %v, %v", resp, err)
		}
		expect("webhook.events.purged")
	})
}

// TestPushDeadLetterWakesTheOutbox: with the outbox sender idle for a minute between rounds, a push
// delivery that fails its last attempt reaches the audit log within seconds: the push worker wakes the
// sender after the settle that made the dead letter.
func TestPushDeadLetterWakesTheOutbox(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		rec := chanRecorder{got: make(chan *auditv1.RecordEventRequest, 100)}
		r := newPushRigWith(t, d, []Option{WithAudit(rec)})
		runIdleOutbox(t, r.srv)
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
		defer ts.Close()
		retries := int32(0)
		if _, err := r.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "hook",
			Mode:        webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
			Push:        &webhookv1.PushConfig{Endpoint: ts.URL, AllowPrivateNetwork: true, Timeout: durationpb.New(time.Second), SigningSecret: newSigningSecret(t, 32)},
			RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: &retries}}); err != nil {
			t.Fatal(err)
		}
		r.ingest(t)
		select {
		case req := <-rec.got:
			if req.GetAction() != "webhook.delivery.dead_lettered" {
				t.Fatalf("audit event %q, want a dead letter", req.GetAction())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no dead-letter audit event within 10s (the sender's idle wait is a minute)")
		}
	})
}

// TestPushClaimDeadLetterWakesTheOutbox: a push worker's claim that finds a last lease expired makes a
// dead letter and wakes the outbox sender (idle for a minute here), so its audit event goes at once.
func TestPushClaimDeadLetterWakesTheOutbox(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		rec := chanRecorder{got: make(chan *auditv1.RecordEventRequest, 100)}
		// No workers run: the test claims as one would, after another holder's last lease expired.
		r := newPushRigWith(t, d, []Option{WithAudit(rec)}, "WEBHOOK_NUM_WORKERS", "0")
		runIdleOutbox(t, r.srv)
		retries := int32(0)
		resp, err := r.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "hook",
			Mode:        webhookv1.SubscriptionMode_SUBSCRIPTION_MODE_PUSH,
			Push:        &webhookv1.PushConfig{Endpoint: "https://hooks.example/x", Timeout: durationpb.New(time.Second), SigningSecret: newSigningSecret(t, 32)},
			RetryPolicy: &webhookv1.RetryPolicy{MaxRetries: &retries}})
		if err != nil {
			t.Fatal(err)
		}
		r.ingest(t)
		sub, err := r.ds.SubscriptionGet(t.Context(), resp.GetSubscription().GetId())
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.ds.DeliveryClaim(t.Context(), store.ClaimParams{SubscriptionID: sub.ID, Consumer: "push/gone", Now: r.srv.now(), Limit: 1})
		if err != nil || len(got.Claimed) != 1 {
			t.Fatalf("claim: %+v, %v", got, err)
		}
		r.clock.advance(sub.LeaseDuration + time.Second)
		p := &pusher{s: r.srv, consumer: "push/test"}
		if claimed, err := p.claim(t.Context(), &pushTarget{sub: sub}, 1); err != nil || len(claimed) != 0 {
			t.Fatalf("claim after the last lease expired: %d, %v", len(claimed), err)
		}
		select {
		case req := <-rec.got:
			if req.GetAction() != "webhook.delivery.dead_lettered" {
				t.Fatalf("audit event %q, want a dead letter", req.GetAction())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no dead-letter audit event within 10s (the sender's idle wait is a minute)")
		}
	})
}
