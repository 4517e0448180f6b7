package webhook_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/db"
)

// The guard enforces the consumer scopes: leasing and settling need webhook:consume, reading
// deliveries webhook:read, redriving webhook:admin. Without a credential every call is UNAUTHENTICATED;
// with a key lacking the scope PERMISSION_DENIED, before any field is looked at; with it the call reaches
// the service (here: NOT_FOUND for a subscription that does not exist, INVALID_ARGUMENT for a bad ack id).
func TestConsumeNeedsItsScopes(t *testing.T) {
	consumer := authtest.NewKey(t, "agent", auth.ScopeWebhookConsume)
	reader := authtest.NewKey(t, "reader", auth.ScopeWebhookRead)
	admin := authtest.NewKey(t, "admin", auth.ScopeWebhookAdmin)
	gw := authtest.NewKey(t, "gateway", auth.ScopeWebhookIngest)
	e := startE2E(t, db.SQLite, map[string]string{"AUTH_API_KEYS": authtest.JSON(consumer, reader, admin, gw), "GATEWAY_WEBHOOK_API_KEY": gw.Key,
		// Each refused call counts against the caller's failed-call budget: this test makes dozens.
		"RATE_LIMIT_FAILED_PER_SECOND": "10000", "RATE_LIMIT_FAILED_BURST": "10000"})
	client := func(opts ...grpc.DialOption) webhookv1.WebhookServiceClient {
		conn, err := grpc.NewClient(e.webhookAddr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return webhookv1.NewWebhookServiceClient(conn)
	}
	const sub = "0190a6e2-7f3c-7b1e-9c4d-2f5e6a7b8c9d"
	calls := map[string]func(webhookv1.WebhookServiceClient) error{
		"Receive": func(c webhookv1.WebhookServiceClient) error {
			s, err := c.Receive(t.Context(), &webhookv1.ReceiveRequest{SubscriptionId: sub})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
		"Poll": func(c webhookv1.WebhookServiceClient) error {
			_, err := c.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: sub})
			return err
		},
		"Ack": func(c webhookv1.WebhookServiceClient) error {
			_, err := c.Ack(t.Context(), &webhookv1.AckRequest{AckIds: []string{"x"}})
			return err
		},
		"Nack": func(c webhookv1.WebhookServiceClient) error {
			_, err := c.Nack(t.Context(), &webhookv1.NackRequest{AckIds: []string{"x"}})
			return err
		},
		"ExtendLease": func(c webhookv1.WebhookServiceClient) error {
			_, err := c.ExtendLease(t.Context(), &webhookv1.ExtendLeaseRequest{AckIds: []string{"x"}})
			return err
		},
		"GetDelivery": func(c webhookv1.WebhookServiceClient) error {
			_, err := c.GetDelivery(t.Context(), &webhookv1.GetDeliveryRequest{Id: "1"})
			return err
		},
		"ListDeliveries": func(c webhookv1.WebhookServiceClient) error {
			_, err := c.ListDeliveries(t.Context(), &webhookv1.ListDeliveriesRequest{})
			return err
		},
		"RedriveDeliveries": func(c webhookv1.WebhookServiceClient) error {
			_, err := c.RedriveDeliveries(t.Context(), &webhookv1.RedriveDeliveriesRequest{SubscriptionId: sub})
			return err
		},
	}
	// What each call answers once past the guard.
	served := map[string]codes.Code{"Receive": codes.NotFound, "Poll": codes.NotFound, "Ack": codes.InvalidArgument,
		"Nack": codes.InvalidArgument, "ExtendLease": codes.InvalidArgument, "GetDelivery": codes.NotFound,
		"ListDeliveries": codes.OK, "RedriveDeliveries": codes.NotFound}
	holder := map[string]string{"Receive": "consume", "Poll": "consume", "Ack": "consume", "Nack": "consume", "ExtendLease": "consume",
		"GetDelivery": "read", "ListDeliveries": "read", "RedriveDeliveries": "admin"}
	keys := map[string]authtest.Key{"consume": consumer, "read": reader, "admin": admin}
	anon := client()
	for name, call := range calls {
		if err := call(anon); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without a credential: %v", name, err)
		}
		for scope, k := range keys {
			want := codes.PermissionDenied
			if holder[name] == scope {
				want = served[name]
			}
			if err := call(client(authtest.Bearer(k.Key))); status.Code(err) != want {
				t.Errorf("%s with webhook:%s: %v, want %v", name, scope, err, want)
			}
		}
	}
}
