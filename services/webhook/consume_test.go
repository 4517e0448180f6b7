package webhook

import (
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
)

// A consumer that fails n times then succeeds: each Nack hands the delivery out again after the
// subscription's backoff, the attempt history keeps every try with its error and consumer, and the
// ack settles the delivery and its event.
func TestConsumerFailsThenSucceeds(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5})
		eventID := r.ingest(t)
		const fails = 3
		var id string
		for i := 1; i <= fails; i++ {
			ld := r.pollOne(t, "flaky")
			if ld.GetEvent().GetId() != eventID || ld.GetDelivery().GetAttemptCount() != int32(i) || string(ld.GetEvent().GetPayload()) != `{"n":1}` {
				t.Fatalf("attempt %d handed out %v", i, ld)
			}
			id = ld.GetDelivery().GetId()
			if refused := r.nack(t, "upstream 502", nil, ld.GetAckId()); len(refused) != 0 {
				t.Fatalf("nack refused %v", refused)
			}
			got := r.get(t, id)
			if got.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_FAILED || got.GetLastError() != "upstream 502" ||
				!got.GetNextAttemptTime().AsTime().After(r.clock.now()) {
				t.Fatalf("after nack %d: %v", i, got)
			}
			// Not before its backoff, then (the cap is 1 s) after it.
			if early := r.poll(t, "flaky", 1); len(early) != 0 {
				t.Fatalf("handed out again before its backoff: %v", early)
			}
			r.clock.advance(2 * time.Second)
		}
		ld := r.pollOne(t, "flaky")
		if refused := r.ack(t, ld.GetAckId()); len(refused) != 0 {
			t.Fatalf("ack refused %v", refused)
		}
		got := r.get(t, id)
		want := []string{"nacked/flaky", "nacked/flaky", "nacked/flaky", "acked/flaky"}
		if got.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED || got.GetAttemptCount() != fails+1 || !slices.Equal(outcomes(got), want) {
			t.Fatalf("delivery %v, attempts %v", got, outcomes(got))
		}
		ev, err := r.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: eventID})
		if err != nil || ev.GetEvent().GetStatus() != webhookv1.EventStatus_EVENT_STATUS_DELIVERED {
			t.Fatalf("event %v %v", ev, err)
		}
		if again := r.poll(t, "flaky", 10); len(again) != 0 {
			t.Fatalf("a delivered delivery was handed out again: %v", again)
		}
	})
}

// A lease that ends without an ack hands the delivery to the next consumer that asks; the first
// consumer's ack, nack and extension then name a lease that passed on and are refused (by ack id, not
// as an error), so only one consumer ever settles it. A lease extended in time is kept.
func TestLeaseExpiryRedeliversAndRefusesTheStaleAck(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5, lease: 5 * time.Second})
		r.ingest(t)
		a := r.pollOne(t, "crashed")
		if got := r.get(t, a.GetDelivery().GetId()); got.GetConsumer() != "crashed" || !got.GetLeaseExpireTime().AsTime().Equal(r.clock.now().Add(5*time.Second)) {
			t.Fatalf("leased %v", got)
		}
		if none := r.poll(t, "other", 10); len(none) != 0 {
			t.Fatalf("a leased delivery was handed to another consumer: %v", none)
		}
		r.clock.advance(6 * time.Second)
		b := r.pollOne(t, "healthy")
		if b.GetDelivery().GetId() != a.GetDelivery().GetId() || b.GetAckId() == a.GetAckId() {
			t.Fatalf("redelivered %v after %v", b, a)
		}
		if refused := r.ack(t, a.GetAckId()); !slices.Equal(refused, []string{a.GetAckId()}) {
			t.Fatalf("stale ack: refused %v", refused)
		}
		if refused := r.nack(t, "late", nil, a.GetAckId()); !slices.Equal(refused, []string{a.GetAckId()}) {
			t.Fatalf("stale nack: refused %v", refused)
		}
		ext, err := r.client.ExtendLease(t.Context(), &webhookv1.ExtendLeaseRequest{AckIds: []string{a.GetAckId()}})
		if err != nil || !slices.Equal(ext.GetRefusedAckIds(), []string{a.GetAckId()}) {
			t.Fatalf("stale extension: %v %v", ext, err)
		}
		// The current holder extends (the subscription's lease when unset), outlives its first lease, and
		// still owns the delivery.
		ext, err = r.client.ExtendLease(t.Context(), &webhookv1.ExtendLeaseRequest{AckIds: []string{b.GetAckId()}, LeaseDuration: durationpb.New(time.Minute)})
		if err != nil || len(ext.GetRefusedAckIds()) != 0 {
			t.Fatalf("extension: %v %v", ext, err)
		}
		r.clock.advance(30 * time.Second)
		if none := r.poll(t, "other", 10); len(none) != 0 {
			t.Fatalf("an extended lease was handed out: %v", none)
		}
		if refused := r.ack(t, b.GetAckId(), b.GetAckId()); len(refused) != 0 {
			t.Fatalf("ack of the current lease (named twice) refused %v", refused)
		}
		if refused := r.ack(t, b.GetAckId()); !slices.Equal(refused, []string{b.GetAckId()}) {
			t.Fatalf("a second ack was not refused: %v", refused)
		}
		got := r.get(t, b.GetDelivery().GetId())
		if want := []string{"lease_expired/crashed", "acked/healthy"}; !slices.Equal(outcomes(got), want) {
			t.Fatalf("attempts %v, want %v", outcomes(got), want)
		}
	})
}

// Two consumers receiving from one subscription at once never both hold a delivery: every delivery is
// received by exactly one of them, and all are.
func TestTwoConsumersNeverShareADelivery(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5})
		const events = 60
		for range events {
			r.ingest(t)
		}
		var mu sync.Mutex
		holder := map[string]string{}
		var shared []string
		var wg sync.WaitGroup
		for _, name := range []string{"one", "two"} {
			stream, err := r.client.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: r.sub.GetId(), Consumer: name, MaxInFlight: 4})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					m, err := stream.Recv()
					if err != nil {
						return // the test ended
					}
					var ids []string
					mu.Lock()
					for _, ld := range m.GetDeliveries() {
						if prev, ok := holder[ld.GetDelivery().GetId()]; ok {
							shared = append(shared, ld.GetDelivery().GetId()+" "+prev+"+"+name)
						}
						holder[ld.GetDelivery().GetId()] = name
						ids = append(ids, ld.GetAckId())
					}
					mu.Unlock()
					if len(ids) == 0 {
						continue // a heartbeat
					}
					if _, err := r.client.Ack(t.Context(), &webhookv1.AckRequest{AckIds: ids}); err != nil {
						return
					}
				}
			}()
		}
		testutil.Eventually(t, 20*time.Second, "every delivery acknowledged", func() bool {
			return len(r.list(t, webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED)) == events
		})
		mu.Lock()
		defer mu.Unlock()
		if len(shared) > 0 || len(holder) != events {
			t.Fatalf("shared %v; %d deliveries received of %d", shared, len(holder), events)
		}
	})
}

// Receive keeps at most max_in_flight deliveries leased to its consumer: it tops up as they are acked
// (the ack wakes it: the poll interval here is a minute), and Poll hands out at most max_deliveries.
func TestMaxInFlightRespected(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5}, WithConsumeConfig(ConsumeConfig{ReceivePollInterval: time.Minute}))
		for range 10 {
			r.ingest(t)
		}
		if got := r.poll(t, "poller", 2); len(got) != 2 {
			t.Fatalf("Poll max_deliveries 2 handed out %d", len(got))
		}
		stream, err := r.client.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: r.sub.GetId(), Consumer: "streamer", MaxInFlight: 3})
		if err != nil {
			t.Fatal(err)
		}
		first := recv(t, stream, 3)
		if len(first) != 3 {
			t.Fatalf("received %d at once, max_in_flight 3", len(first))
		}
		r.ack(t, first[0].GetAckId())
		next := recv(t, stream, 1)
		if len(next) != 1 {
			t.Fatalf("after one ack, %d more", len(next))
		}
		leased := 0
		for _, d := range r.list(t, webhookv1.DeliveryStatus_DELIVERY_STATUS_LEASED) {
			if d.GetConsumer() == "streamer" {
				leased++
			}
		}
		if leased != 3 {
			t.Fatalf("%d leased to the streamer, max_in_flight 3", leased)
		}
	})
}

// Poll with a wait returns as soon as an event arrives, not when the wait ends.
func TestPollWaitReturnsWhenAnEventArrives(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5})
		const wait = 25 * time.Second
		type result struct {
			resp *webhookv1.PollResponse
			err  error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			resp, err := r.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: r.sub.GetId(), Consumer: "waiter", Wait: durationpb.New(wait)})
			done <- result{resp, err}
		}()
		st := r.srv.consume()
		testutil.Eventually(t, 10*time.Second, "the poll to wait", func() bool { return st.waiting.Load() == 1 })
		eventID := r.ingest(t)
		select {
		case res := <-done:
			if res.err != nil || len(res.resp.GetDeliveries()) != 1 || res.resp.GetDeliveries()[0].GetEvent().GetId() != eventID {
				t.Fatalf("poll: %v %v", res.resp, res.err)
			}
			if took := time.Since(start); took >= wait {
				t.Fatalf("returned after %v, at the end of its wait", took)
			}
		case <-time.After(wait):
			t.Fatal("the poll did not return when the event arrived")
		}
		// Nothing left: a short wait returns empty when it ends.
		resp, err := r.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: r.sub.GetId(), Wait: durationpb.New(50 * time.Millisecond)})
		if err != nil || len(resp.GetDeliveries()) != 0 {
			t.Fatalf("empty poll: %v %v", resp, err)
		}
	})
}

// A waiting consumer is woken when a delivery is given back (Nack), not at its next poll interval.
func TestNackWakesWaitingConsumers(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5}, WithConsumeConfig(ConsumeConfig{ReceivePollInterval: time.Minute}))
		r.ingest(t)
		held := r.pollOne(t, "first")
		done := make(chan []*webhookv1.LeasedDelivery, 1)
		go func() {
			resp, err := r.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: r.sub.GetId(), Consumer: "second", Wait: durationpb.New(25 * time.Second)})
			if err != nil {
				t.Error(err)
			}
			done <- resp.GetDeliveries()
		}()
		st := r.srv.consume()
		testutil.Eventually(t, 10*time.Second, "the poll to wait", func() bool { return st.waiting.Load() == 1 })
		r.nack(t, "give it to someone else", durationpb.New(0), held.GetAckId())
		select {
		case got := <-done:
			if len(got) != 1 || got[0].GetDelivery().GetId() != held.GetDelivery().GetId() {
				t.Fatalf("woken with %v", got)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the nack did not wake the waiting poll")
		}
	})
}

// A delivery out of attempts is a dead letter, listed as such; a redrive chooses dead letters by error
// text and receipt time and makes them pending again with a fresh attempt budget.
func TestDeadLetterThenRedrive(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 1})
		received := r.clock.now()
		for _, reason := range []string{"connection timeout", "bad gateway"} {
			r.ingest(t)
			for range 2 { // the first attempt and its one retry
				r.nack(t, reason, durationpb.New(0), r.pollOne(t, "worker").GetAckId())
			}
		}
		dead := r.list(t, webhookv1.DeliveryStatus_DELIVERY_STATUS_DEAD_LETTER)
		if len(dead) != 2 || dead[0].GetLastError() != "connection timeout" || dead[0].GetNextAttemptTime() != nil {
			t.Fatalf("dead letters %v", dead)
		}
		ev, err := r.client.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: dead[0].GetEventId()})
		if err != nil || ev.GetEvent().GetStatus() != webhookv1.EventStatus_EVENT_STATUS_DEAD_LETTER {
			t.Fatalf("event %v %v", ev, err)
		}
		if none := r.poll(t, "worker", 10); len(none) != 0 {
			t.Fatalf("a dead letter was handed out: %v", none)
		}
		redrive := func(req *webhookv1.RedriveDeliveriesRequest) int64 {
			t.Helper()
			req.SubscriptionId = r.sub.GetId()
			resp, err := r.client.RedriveDeliveries(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetRedriven()
		}
		if n := redrive(&webhookv1.RedriveDeliveriesRequest{ErrorContains: "refused"}); n != 0 {
			t.Fatalf("redrove %d matching no error", n)
		}
		if n := redrive(&webhookv1.RedriveDeliveriesRequest{EndTime: timestamppb.New(received.Add(-time.Second))}); n != 0 {
			t.Fatalf("redrove %d received after the range", n)
		}
		if n := redrive(&webhookv1.RedriveDeliveriesRequest{ErrorContains: "timeout", Source: "zoho"}); n != 1 {
			t.Fatalf("redrove %d by error, want 1", n)
		}
		again := r.pollOne(t, "worker")
		if again.GetDelivery().GetId() != dead[0].GetId() {
			t.Fatalf("redriven %v, want %s", again, dead[0].GetId())
		}
		r.ack(t, again.GetAckId())
		if n := redrive(&webhookv1.RedriveDeliveriesRequest{StartTime: timestamppb.New(received.Add(-time.Second)), EndTime: timestamppb.New(received.Add(time.Second))}); n != 1 {
			t.Fatalf("redrove %d by time, want 1", n)
		}
		if got := r.get(t, dead[0].GetId()); got.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED {
			t.Fatalf("the delivered one is %v", got.GetStatus())
		}
		if got := r.get(t, dead[1].GetId()); got.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_PENDING || len(got.GetAttempts()) != 2 {
			t.Fatalf("the redriven one: %v", got)
		}
	})
}

// When the server stops, a Receive stream ends with UNAVAILABLE (call again to resume) and claims no
// more; what it sent stays leased to its consumer until acked or expired.
func TestReceiveEndsUnavailableWhenTheServerStops(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5})
		r.ingest(t)
		stream, err := r.client.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: r.sub.GetId(), Consumer: "draining"})
		if err != nil {
			t.Fatal(err)
		}
		got := recv(t, stream, 1)
		ended := make(chan error, 1)
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					ended <- err
					return
				}
			}
		}()
		r.stop()
		select {
		case err := <-ended:
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream ended with %v, want UNAVAILABLE", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream outlived the server")
		}
		id, err := deliveryID("id", got[0].GetDelivery().GetId())
		if err != nil {
			t.Fatal(err)
		}
		dl, _, err := r.ds.DeliveryGet(t.Context(), id)
		if err != nil || dl.Status != 2 || dl.Consumer != "draining" {
			t.Fatalf("after the stop: %+v %v", dl, err)
		}
	})
}

// ListDeliveries pages oldest first and filters by status and event.
func TestListDeliveriesPagesAndFilters(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5})
		var events []string
		for range 5 {
			events = append(events, r.ingest(t))
		}
		r.ack(t, r.pollOne(t, "c").GetAckId())
		var seen []string
		token := ""
		for page := 0; ; page++ {
			resp, err := r.client.ListDeliveries(t.Context(), &webhookv1.ListDeliveriesRequest{SubscriptionId: r.sub.GetId(), PageSize: 2, PageToken: token})
			if err != nil || len(resp.GetDeliveries()) > 2 || page > 3 {
				t.Fatalf("page %d: %v %v", page, resp, err)
			}
			for _, dl := range resp.GetDeliveries() {
				seen = append(seen, dl.GetEventId())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if !slices.Equal(seen, events) {
			t.Fatalf("listed %v, want %v", seen, events)
		}
		if got := r.list(t, webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED); len(got) != 1 || got[0].GetEventId() != events[0] {
			t.Fatalf("delivered: %v", got)
		}
		if got := r.list(t, webhookv1.DeliveryStatus_DELIVERY_STATUS_PENDING); len(got) != 4 {
			t.Fatalf("pending: %d", len(got))
		}
		resp, err := r.client.ListDeliveries(t.Context(), &webhookv1.ListDeliveriesRequest{EventId: events[3]})
		if err != nil || len(resp.GetDeliveries()) != 1 || resp.GetDeliveries()[0].GetEventId() != events[3] {
			t.Fatalf("by event: %v %v", resp, err)
		}
	})
}

// A paused subscription hands nothing out (its deliveries wait); resumed, its stream gets them; deleted,
// its stream ends with NOT_FOUND instead of polling for nothing forever.
func TestReceiveFollowsTheSubscriptionsState(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newConsumeRig(t, d, subOpts{maxRetries: 5})
		if _, err := r.client.PauseSubscription(t.Context(), &webhookv1.PauseSubscriptionRequest{Id: r.sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		r.ingest(t)
		if got := r.poll(t, "c", 10); len(got) != 0 {
			t.Fatalf("a paused subscription handed out %v", got)
		}
		stream, err := r.client.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: r.sub.GetId(), Consumer: "c"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.client.ResumeSubscription(t.Context(), &webhookv1.ResumeSubscriptionRequest{Id: r.sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		recv(t, stream, 1)
		if _, err := r.client.DeleteSubscription(t.Context(), &webhookv1.DeleteSubscriptionRequest{Id: r.sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					ended <- err
					return
				}
			}
		}()
		select {
		case err := <-ended:
			if status.Code(err) != codes.NotFound {
				t.Fatalf("stream of a deleted subscription ended with %v, want NOT_FOUND", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream of a deleted subscription did not end")
		}
	})
}
