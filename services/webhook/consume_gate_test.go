package webhook

import (
	"testing"
	"time"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
)

// Four Receive streams of one subscription on one replica: an event stored and acked costs one look at
// the store (a count of deliveries in flight and a claim), not one per stream woken by the commit, the
// ack, and the claim again after a claim that found something. Before the streams shared a gate, the 12
// events below cost about five looks each.
func TestOneWakeUpCostsOneClaim(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		// A minute's poll interval: every look below is caused by a wake-up.
		r := newConsumeRig(t, d, subOpts{maxRetries: 5}, WithConsumeConfig(ConsumeConfig{ReceivePollInterval: time.Minute}))
		const streams, events = 4, 12
		got := make(chan *webhookv1.LeasedDelivery, events)
		for i := range streams {
			stream, err := r.client.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: r.sub.GetId(),
				Consumer: "c" + string(rune('a'+i)), MaxInFlight: 100})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					m, err := stream.Recv()
					if err != nil {
						return
					}
					for _, ld := range m.GetDeliveries() {
						got <- ld
					}
				}
			}()
		}
		st := r.srv.consume()
		testutil.Eventually(t, 10*time.Second, "every stream waiting", func() bool { return st.waiting.Load() == streams })
		before := st.lookups.Load()
		for range events {
			r.ingest(t)
			select {
			case ld := <-got:
				r.ack(t, ld.GetAckId())
			case <-time.After(10 * time.Second):
				t.Fatal("the event was not delivered within 10s")
			}
			testutil.Eventually(t, 10*time.Second, "every stream waiting", func() bool { return st.waiting.Load() == streams })
		}
		// One per event; a look may be repeated when a stream woken by a commit took the gate before the
		// claim of the previous wake-up finished.
		if n := st.lookups.Load() - before; n > events*3/2 {
			t.Fatalf("%d events stored and acked cost %d looks at the store, want at most %d", events, n, events*3/2)
		}
		select {
		case ld := <-got:
			t.Fatalf("delivery %s handed out twice", ld.GetDelivery().GetId())
		default:
		}
	})
}
