package webhook_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/auth"
	"github.com/sergas/core/internal/authtest"
	"github.com/sergas/core/internal/db"
)

// ReplayEvents and PurgeEvents over REST through the gateway, as the README's curl examples call them:
// webhook:admin only; an event stored before the subscription is replayed to it by id and then by
// range (skipped, already pending), consumed, and purged.
func TestReplayAndPurgeThroughTheGateway(t *testing.T) {
	t.Parallel()
	consumer := authtest.NewKey(t, "agent", auth.ScopeWebhookConsume)
	admin := authtest.NewKey(t, "admin", auth.ScopeWebhookAdmin)
	gw := authtest.NewKey(t, "gateway", auth.ScopeWebhookIngest)
	e := startE2E(t, db.SQLite, map[string]string{"AUTH_API_KEYS": authtest.JSON(consumer, admin, gw), "GATEWAY_WEBHOOK_API_KEY": gw.Key})
	start := time.Now().UTC().Add(-time.Minute)
	body := `{"n":1}`
	code, _, out := e.post(t, body, "X-Hub-Signature-256", ghSig(e2eSecret, body), "X-GitHub-Delivery", "d-1")
	if code != 202 {
		t.Fatalf("webhook: %d %v", code, out)
	}
	eventID := out["eventId"].(string)
	conn, err := grpc.NewClient(e.webhookAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(admin.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sub, err := webhookv1.NewWebhookServiceClient(conn).CreateSubscription(t.Context(), &webhookv1.CreateSubscriptionRequest{Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	subID := sub.GetSubscription().GetId()
	rest := func(key, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "POST", e.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	replay := "/v1/webhook/subscriptions/" + subID + ":replay"
	if code, out := rest(consumer.Key, replay, `{"eventId":"`+eventID+`"}`); code != http.StatusForbidden {
		t.Fatalf("replay with webhook:consume: %d %v", code, out)
	}
	if code, out := rest(admin.Key, replay, `{"eventId":"`+eventID+`"}`); code != 200 || out["replayed"] != "1" {
		t.Fatalf("replay by id: %d %v", code, out)
	}
	if code, out := rest(admin.Key, replay, `{"startTime":"`+start.Format(time.RFC3339Nano)+`"}`); code != 200 || out["skipped"] != "1" || out["replayed"] != "0" {
		t.Fatalf("replay by range: %d %v", code, out)
	}
	if code, out := rest(admin.Key, replay, `{"eventId":"`+eventID+`","startTime":"`+start.Format(time.RFC3339Nano)+`"}`); code != http.StatusBadRequest {
		t.Fatalf("replay by id and range: %d %v", code, out)
	}

	purge := "/v1/webhook/events:purge"
	now := func() string { return time.Now().UTC().Format(time.RFC3339Nano) }
	if code, out := rest(consumer.Key, purge, `{"before":"`+now()+`"}`); code != http.StatusForbidden {
		t.Fatalf("purge with webhook:consume: %d %v", code, out)
	}
	if code, out := rest(admin.Key, purge, `{"before":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"}`); code != http.StatusBadRequest {
		t.Fatalf("purge of the future: %d %v", code, out)
	}
	if code, out := rest(admin.Key, purge, `{"before":"`+now()+`"}`); code != 200 || out["purgedEvents"] != "0" {
		t.Fatalf("purge while the replay waits: %d %v", code, out)
	}
	cc, err := grpc.NewClient(e.webhookAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), authtest.Bearer(consumer.Key))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := webhookv1.NewWebhookServiceClient(cc)
	polled, err := client.Poll(t.Context(), &webhookv1.PollRequest{SubscriptionId: subID, Consumer: "agent", MaxDeliveries: 10})
	if err != nil || len(polled.GetDeliveries()) != 1 || polled.GetDeliveries()[0].GetEvent().GetId() != eventID {
		t.Fatalf("poll: %v %v", polled, err)
	}
	if _, err := client.Ack(t.Context(), &webhookv1.AckRequest{AckIds: []string{polled.GetDeliveries()[0].GetAckId()}}); err != nil {
		t.Fatal(err)
	}
	if code, out := rest(admin.Key, purge, `{"before":"`+now()+`"}`); code != 200 || out["purgedEvents"] != "1" || out["purgedDeliveries"] != "1" {
		t.Fatalf("purge: %d %v", code, out)
	}
}
