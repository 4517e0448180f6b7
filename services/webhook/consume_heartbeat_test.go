package webhook

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
)

// A Receive stream with nothing to deliver sends an empty message at once and then one per heartbeat
// interval, and its deliveries still come when an event is stored.
func TestReceiveSendsHeartbeatsWhileIdle(t *testing.T) {
	r := newConsumeRig(t, db.SQLite, subOpts{maxRetries: 5})
	r.srv.consume().heartbeat.Store(int64(50 * time.Millisecond))
	start := time.Now()
	stream, err := r.client.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: r.sub.GetId(), Consumer: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.GetDeliveries()) != 0 {
			t.Fatalf("message %d has deliveries with nothing ingested", i)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("three heartbeats took %v", took)
	}
	id := r.ingest(t)
	for range 200 { // heartbeats may come first; bounded
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ds := m.GetDeliveries(); len(ds) > 0 {
			if ds[0].GetEvent().GetId() != id {
				t.Fatalf("got event %s, want %s", ds[0].GetEvent().GetId(), id)
			}
			return
		}
	}
	t.Fatal("the delivery never came")
}

// A Poll waiting for deliveries when the server begins to stop answers at once (nothing) instead of
// holding the graceful stop until the shutdown timeout cuts it.
func TestPollAnswersWhenTheServerStops(t *testing.T) {
	r := newConsumeRig(t, db.SQLite, subOpts{maxRetries: 5})
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := r.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: r.sub.GetId(), Consumer: "waiting",
			Wait: durationpb.New(30 * time.Second)})
		done <- result{len(resp.GetDeliveries()), err}
	}()
	testutil.Eventually(t, 5*time.Second, "the Poll waiting", func() bool { return r.srv.consume().waiting.Load() == 1 })
	start := time.Now()
	r.stop()
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the stop took %v: the Poll held it", took)
	}
	select {
	case res := <-done:
		if res.err != nil || res.n != 0 {
			t.Fatalf("Poll answered %d deliveries, %v; want none and no error", res.n, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Poll did not answer")
	}
}
