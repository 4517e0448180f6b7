package webhook

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/services/webhook/store"
)

// TestReplayWakesPushWorkers: with a poll interval of a minute, replaying a delivered event to a push
// subscription pushes it again at once: the replay wakes the push workers, which wait on every
// subscription's news rather than on one subscription's (as a resume does).
func TestReplayWakesPushWorkers(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d, "WEBHOOK_RECEIVE_POLL_INTERVAL", "1m")
		reqs := make(chan struct{}, 10)
		ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reqs <- struct{}{} }))
		defer ts.Close()
		sub := r.createPush(t, "hook", ts.URL, newSigningSecret(t, 32), true, time.Second)
		ev := r.ingest(t)
		select {
		case <-reqs:
		case <-time.After(10 * time.Second):
			t.Fatal("no push within 10s of the ingest")
		}
		if d, _ := r.waitAttempts(t, sub.GetId(), 1); d.Status != store.DeliveryDelivered {
			t.Fatalf("status %s, want delivered", statusName(d.Status))
		}
		resp, err := r.client.ReplayEvents(t.Context(), &webhookv1.ReplayEventsRequest{SubscriptionId: sub.GetId(), EventId: ev})
		if err != nil || resp.GetReplayed() != 1 {
			t.Fatalf("replay: %v, %v", resp, err)
		}
		select {
		case <-reqs:
		case <-time.After(10 * time.Second):
			t.Fatal("the replayed event was not pushed within 10s (the poll interval is a minute)")
		}
	})
}
