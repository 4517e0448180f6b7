package webhook

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/testutil"
	"github.com/sergas/core/services/webhook/store"
)

// A webhook:consume caller cannot settle a push delivery: an ack id it makes up for the push worker's
// lease (naming the push subscription, or a pull subscription of its own) is refused by Ack, Nack and ExtendLease,
// and the delivery stays leased to the worker, so that it is never marked delivered without its
// endpoint's 2xx. A pull consumer cannot take the push workers' name either.
func TestConsumersCannotSettlePushDeliveries(t *testing.T) {
	eachBackend(t, func(t *testing.T, d db.Dialect) {
		r := newPushRig(t, d)
		release := make(chan struct{})
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			select { // hold the request: the delivery stays leased to the worker
			case <-release:
			case <-req.Context().Done():
			}
		}))
		defer ts.Close()
		defer close(release)
		sub := r.createPush(t, "hook", ts.URL+"/hook", newSigningSecret(t, 32), true, 20*time.Second)
		pull, err := r.client.CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "mine"})
		if err != nil {
			t.Fatal(err)
		}
		r.ingest(t)
		var leased *store.Delivery
		testutil.Eventually(t, 10*time.Second, "the push delivery leased to the worker", func() bool {
			leased, _ = r.only(t, sub.GetId())
			return leased.Status == store.DeliveryLeased
		})
		for _, forged := range []string{
			encodeAckID(sub.GetId(), leased.ID, leased.Lease),
			encodeAckID(pull.GetSubscription().GetId(), leased.ID, leased.Lease),
		} {
			ack, err := r.client.Ack(t.Context(), &webhookv1.AckRequest{AckIds: []string{forged}})
			if err != nil || len(ack.GetRefusedAckIds()) != 1 {
				t.Fatalf("Ack of the worker's lease: %v, %v; want it refused", ack, err)
			}
			nack, err := r.client.Nack(t.Context(), &webhookv1.NackRequest{AckIds: []string{forged}})
			if err != nil || len(nack.GetRefusedAckIds()) != 1 {
				t.Fatalf("Nack of the worker's lease: %v, %v; want it refused", nack, err)
			}
			ext, err := r.client.ExtendLease(t.Context(), &webhookv1.ExtendLeaseRequest{AckIds: []string{forged}, LeaseDuration: durationpb.New(time.Hour)})
			if err != nil || len(ext.GetRefusedAckIds()) != 1 {
				t.Fatalf("ExtendLease of the worker's lease: %v, %v; want it refused", ext, err)
			}
		}
		if after, _ := r.only(t, sub.GetId()); after.Status != store.DeliveryLeased || after.Lease != leased.Lease || !after.AvailableTime.Equal(leased.AvailableTime) {
			t.Fatalf("the push delivery changed: %+v", after)
		}
		if _, err := r.client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: pull.GetSubscription().GetId(), Consumer: "push/imposter"}); err == nil {
			t.Fatal("a pull consumer took a push worker's name")
		}
	})
}
