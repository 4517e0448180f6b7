package processtest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/proctest"
)

// deliveryKeys add a consumer's credential (webhook:consume) and an admin's (webhook:admin, for the
// subscription) to the ingest and read keys.
type deliveryKeys struct {
	keys
	consume, admin authtest.Key
}

func newDeliveryKeys(t *testing.T) deliveryKeys {
	return deliveryKeys{keys: newKeys(t), consume: authtest.NewKey(t, "agent", auth.ScopeWebhookConsume),
		admin: authtest.NewKey(t, "admin", auth.ScopeWebhookAdmin)}
}

// startDeliveryWebhook is startWebhook with the consumer's and the admin's credentials too.
func startDeliveryWebhook(t *testing.T, k deliveryKeys, c db.Config) *proctest.Proc {
	t.Helper()
	return webhookService.Start(t, webhookEnv(c, k.ingest, k.read, k.consume, k.admin))
}

// deliveryClients are one process's clients, one per credential.
type deliveryClients struct {
	ingest, read, consume, admin webhookv1.WebhookServiceClient
}

func deliveryClientsOf(t *testing.T, p *proctest.Proc, k deliveryKeys) deliveryClients {
	t.Helper()
	return deliveryClients{ingest: client(t, p, k.ingest), read: client(t, p, k.read),
		consume: client(t, p, k.consume), admin: client(t, p, k.admin)}
}

// createSubscription subscribes to every event of the test's source with lease and maxRetries, and
// returns its id.
func createSubscription(t *testing.T, ctx context.Context, admin webhookv1.WebhookServiceClient, name string, lease time.Duration, maxRetries int32) string {
	t.Helper()
	resp, err := admin.CreateSubscription(ctx, &webhookv1.CreateSubscriptionRequest{Name: name,
		Filter:        &webhookv1.EventFilter{Sources: []string{source}},
		RetryPolicy:   &webhookv1.RetryPolicy{MaxRetries: &maxRetries, BackoffBase: durationpb.New(10 * time.Millisecond)},
		LeaseDuration: durationpb.New(lease)})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	return resp.GetSubscription().GetId()
}

// maxListPages bounds listDeliveries: far more pages than any test stores.
const maxListPages = 1000

// listDeliveries pages through every delivery of sub.
func listDeliveries(t *testing.T, ctx context.Context, read webhookv1.WebhookServiceClient, sub string) []*webhookv1.Delivery {
	t.Helper()
	var (
		out   []*webhookv1.Delivery
		token string
	)
	for range maxListPages {
		resp, err := read.ListDeliveries(ctx, &webhookv1.ListDeliveriesRequest{SubscriptionId: sub, PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatalf("ListDeliveries: %v", err)
		}
		out = append(out, resp.GetDeliveries()...)
		if token = resp.GetNextPageToken(); token == "" {
			return out
		}
	}
	t.Fatalf("ListDeliveries: more than %d pages", maxListPages)
	return nil
}

// checkAttempts asserts what GetDelivery tells of d against the hand-outs consumers saw of it: one
// attempt per hand-out, numbered as the hand-outs' attempt counts, each by the consumer that got it,
// every one before the last given back (nacked), the last acked, and no attempt starting before the
// one before it ended (two consumers never held the delivery at once).
func checkAttempts(t *testing.T, ctx context.Context, read webhookv1.WebhookServiceClient, id string, hs []*handout) {
	t.Helper()
	resp, err := read.GetDelivery(ctx, &webhookv1.GetDeliveryRequest{Id: id})
	if err != nil {
		t.Fatalf("GetDelivery %s: %v", id, err)
	}
	d := resp.GetDelivery()
	as := d.GetAttempts()
	if d.GetStatus() != webhookv1.DeliveryStatus_DELIVERY_STATUS_DELIVERED {
		t.Fatalf("delivery %s: status %v, want DELIVERED", id, d.GetStatus())
	}
	if len(as) != len(hs) {
		t.Fatalf("delivery %s: %d attempts recorded, consumers saw %d hand-outs", id, len(as), len(hs))
	}
	var prevEnd time.Time
	for i, a := range as {
		h := hs[i]
		end := a.GetStartTime().AsTime().Add(a.GetDuration().AsDuration())
		want := "nacked"
		if i == len(as)-1 {
			want = "acked"
		}
		switch {
		case a.GetNumber() != h.attempt:
			t.Fatalf("delivery %s: attempt %d is number %d, the hand-out's attempt count was %d", id, i, a.GetNumber(), h.attempt)
		case a.GetConsumer() != h.consumer:
			t.Fatalf("delivery %s: attempt %d by %q, handed to %q", id, a.GetNumber(), a.GetConsumer(), h.consumer)
		case a.GetOutcome() != want:
			t.Fatalf("delivery %s: attempt %d outcome %q, want %q", id, a.GetNumber(), a.GetOutcome(), want)
		case i > 0 && a.GetStartTime().AsTime().Before(prevEnd):
			t.Fatalf("delivery %s: attempt %d (%s) started at %s, before attempt %d ended at %s", id, a.GetNumber(), a.GetConsumer(),
				a.GetStartTime().AsTime().Format(time.RFC3339Nano), as[i-1].GetNumber(), prevEnd.Format(time.RFC3339Nano))
		}
		prevEnd = end
	}
}
