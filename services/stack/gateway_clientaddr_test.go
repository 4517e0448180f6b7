package stack_test

import (
	"testing"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
)

// The webhook service stores the address of the gateway's HTTP client as the sender's, not the gateway's
// own: the one a trusted load balancer reports, and never one the client claims in X-Sergas-Client-Ip.
func TestGatewayPassesTheClientAddress(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		headers []string
		want    string
	}{
		{"direct", map[string]string{}, []string{"X-Sergas-Client-Ip", "203.0.113.66", "X-Forwarded-For", "203.0.113.67"}, "127.0.0.1"},
		{"behind a trusted proxy", map[string]string{"GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"},
			[]string{"X-Sergas-Client-Ip", "203.0.113.66", "X-Forwarded-For", "198.51.100.7"}, "198.51.100.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := start(t, c.env)
			code, body := r.do(t, "POST", "/webhooks/zoho", `{"ids":["1"]}`, c.headers...)
			if code != 202 {
				t.Fatalf("ingest: %d %v", code, body)
			}
			got, err := r.webhook.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: body["eventId"].(string)})
			if err != nil {
				t.Fatal(err)
			}
			if a := got.GetEvent().GetSenderAddress(); a != c.want {
				t.Errorf("sender address %q, want %q", a, c.want)
			}
		})
	}
}
