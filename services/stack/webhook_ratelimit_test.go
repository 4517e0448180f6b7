package stack_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// Through the gateway, behind a trusted load balancer: an address flooding a source gets 429 on its own
// budget, and the source's real sender, from another address, still gets 202.
func TestWebhookFloodFromOneAddressThroughGateway(t *testing.T) {
	r := start(t, map[string]string{
		"GATEWAY_TRUSTED_PROXIES":       "127.0.0.1",
		"WEBHOOK_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_RATE_LIMIT_BURST": "5",
		"WEBHOOK_ADDRESS_RATE_LIMIT_PER_SECOND": "1", "WEBHOOK_ADDRESS_RATE_LIMIT_BURST": "2",
	})
	post := func(client, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("POST", r.base+"/webhooks/zoho", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	refused := 0
	for i := range 20 {
		resp := post("203.0.113.66", fmt.Sprintf(`{"flood":%d}`, i))
		switch resp.StatusCode {
		case 202:
		case 429:
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			refused++
		default:
			t.Fatalf("flood %d: %d", i, resp.StatusCode)
		}
	}
	if refused == 0 {
		t.Fatal("the flooding address was never refused")
	}
	if resp := post("198.51.100.10", `{"real":1}`); resp.StatusCode != 202 {
		t.Fatalf("the source's real sender after the flood: %d, want 202", resp.StatusCode)
	}
	list, err := r.webhook.ListEvents(t.Context(), &webhookv1.ListEventsRequest{Source: "zoho"})
	if err != nil || len(list.GetEvents()) == 0 {
		t.Fatalf("list: %v %v", list, err)
	}
	events := list.GetEvents()
	if last := events[len(events)-1]; last.GetSenderAddress() != "198.51.100.10" {
		t.Fatalf("sender address %q, want the one the load balancer reported", last.GetSenderAddress())
	}
}
