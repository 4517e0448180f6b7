package stack_test

import (
	"net/http"
	"strings"
	"testing"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// A webhook through the gateway is stored without the headers that carry credentials, in whatever case
// the sender wrote them, and with the address it came from.
func TestWebhookThroughGatewayDropsCredentialHeaders(t *testing.T) {
	r := start(t, map[string]string{})
	req, err := http.NewRequest("POST", r.base+"/webhooks/zoho", strings.NewReader(`{"module":"Deals"}`))
	if err != nil {
		t.Fatal(err)
	}
	credentials := map[string]string{"Authorization": "Bearer a", "x-api-key": "b", "X-AUTH-TOKEN": "c", "Cookie": "d=e",
		"Proxy-Authorization": "Basic f", "X-Amz-Security-Token": "g"}
	for name, v := range credentials {
		req.Header[name] = []string{v} // as sent, not canonicalised by the client
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Zoho-Signature", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("ingest: %d", resp.StatusCode)
	}
	list, err := r.webhook.ListEvents(t.Context(), &webhookv1.ListEventsRequest{Source: "zoho"})
	if err != nil || len(list.GetEvents()) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	got, err := r.webhook.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: list.GetEvents()[0].GetId()})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, h := range got.GetEvent().GetHeaders() {
		kept[h.GetName()] = true
		for name := range credentials {
			if strings.EqualFold(h.GetName(), name) {
				t.Errorf("%s was stored", h.GetName())
			}
		}
	}
	if !kept["X-Zoho-Signature"] || !kept["Content-Type"] {
		t.Errorf("ordinary headers dropped: %v", kept)
	}
	if got.GetEvent().GetSenderAddress() != "127.0.0.1" {
		t.Errorf("sender address %q, want the loopback client's", got.GetEvent().GetSenderAddress())
	}
}
