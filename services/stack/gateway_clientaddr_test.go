package stack_test

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/clientaddr"
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

// Issue 7 review: a peer on a trusted network (here loopback, as a mesh sidecar is) is not the gateway.
// Through the real gateway the client's address is proven and stored; the same report sent straight to
// the service, without a proof or with a forged or replayed one, is ignored, with or without
// CLIENT_ADDR_SECRET, on Ingest and in IngestBatch items alike.
func TestOnlyTheGatewayCanReportTheClientAddress(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"secret set":    {"CLIENT_ADDR_SECRET": strings.Repeat("7a", 32)},
		"secret absent": {},
	} {
		t.Run(name, func(t *testing.T) {
			env["GATEWAY_TRUSTED_PROXIES"] = "127.0.0.1/32"
			r := start(t, env)
			code, body := r.do(t, "POST", "/webhooks/zoho", `{"via":"gateway"}`, "X-Forwarded-For", "198.51.100.7")
			if code != 202 {
				t.Fatalf("ingest: %d %v", code, body)
			}
			if a := senderOf(t, r, body["eventId"].(string)); a != "198.51.100.7" {
				t.Fatalf("through the gateway: sender %q, want 198.51.100.7", a)
			}
			guessed, _ := hex.DecodeString(strings.Repeat("7b", 32))
			for what, md := range map[string][]string{
				"unproven": {clientaddr.MetadataKey, "203.0.113.66"},
				"forged":   {clientaddr.MetadataKey, "203.0.113.66", clientaddr.ProofKey, clientaddr.Proof(guessed, "203.0.113.66", time.Now())},
				"replayed": {clientaddr.MetadataKey, "203.0.113.66", clientaddr.ProofKey, clientaddr.Proof(guessed, "198.51.100.7", time.Now())},
			} {
				ctx := metadata.AppendToOutgoingContext(t.Context(), md...)
				resp, err := r.webhook.Ingest(ctx, &webhookv1.IngestRequest{Source: "zoho", Body: []byte(what)})
				if err != nil {
					t.Fatal(err)
				}
				if a := senderOf(t, r, resp.GetEventId()); a != "127.0.0.1" {
					t.Errorf("%s report straight to the service: sender %q, want the connection's 127.0.0.1", what, a)
				}
				// The same report in an item of IngestBatch, the gateway's batched call, fares the same.
				item := &webhookv1.IngestBatchItem{Request: &webhookv1.IngestRequest{Source: "zoho", Body: []byte("batched " + what)}, ClientIp: md[1]}
				if len(md) > 2 {
					item.ClientIpProof = md[3]
				}
				batch, err := r.webhook.IngestBatch(t.Context(), &webhookv1.IngestBatchRequest{Items: []*webhookv1.IngestBatchItem{item}})
				if err != nil || len(batch.GetResults()) != 1 || batch.GetResults()[0].GetResponse() == nil {
					t.Fatalf("IngestBatch: %v %v", batch, err)
				}
				if a := senderOf(t, r, batch.GetResults()[0].GetResponse().GetEventId()); a != "127.0.0.1" {
					t.Errorf("%s report in an IngestBatch item: sender %q, want the connection's 127.0.0.1", what, a)
				}
			}
		})
	}
}

func senderOf(t *testing.T, r *running, id string) string {
	t.Helper()
	got, err := r.webhook.GetEvent(t.Context(), &webhookv1.GetEventRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return got.GetEvent().GetSenderAddress()
}
