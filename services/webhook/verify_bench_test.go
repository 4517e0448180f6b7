package webhook

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkVerify measures each scheme's check of a 1 KiB delivery with two secrets configured (the
// worst case: the signature matches the second one).
func BenchmarkVerify(b *testing.B) {
	body := `{"pad":"` + strings.Repeat("x", 1000) + `"}`
	ts, sig := standardSig("msg_1", verifyNow, body, whsec('n'))
	zoho := zohoBody(1000000068001, "tok-1", 1700000000000, "1")
	zoho = zoho[:len(zoho)-1] + `,"pad":"` + strings.Repeat("x", 1024-len(zoho)) + `"}`
	cases := []struct {
		name    string
		src     SourceConfig
		body    string
		headers http.Header
	}{
		{"hmac", SourceConfig{Name: "gh", Scheme: SchemeHMAC, Secrets: []string{hmacSecretOld, hmacSecretNew},
			HMAC: &HMACOptions{Header: "X-Hub-Signature-256", Prefix: "sha256="}}, body,
			http.Header{"X-Hub-Signature-256": {githubSig(hmacSecretNew, body)}}},
		{"hmac-timestamped", SourceConfig{Name: "st", Scheme: SchemeHMAC, Secrets: []string{hmacSecretOld, hmacSecretNew},
			HMAC: &HMACOptions{Header: "Stripe-Signature", Timestamped: true}}, body,
			http.Header{"Stripe-Signature": {stripeSig(hmacSecretNew, body, verifyNow)}}},
		{"standard-webhooks", SourceConfig{Name: "sw", Scheme: SchemeStandardWebhooks, Secrets: []string{whsec('o'), whsec('n')}}, body,
			http.Header{"Webhook-Id": {"msg_1"}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {sig}}},
		{"zoho-crm", SourceConfig{Name: "z", Scheme: SchemeZohoCRM, ZohoCRM: &ZohoCRMOptions{Channels: map[string]string{"1000000068001": "tok-1"}}},
			zoho, http.Header{}},
	}
	for _, c := range cases {
		src := mustSource(b, c.src)
		in := &incoming{source: c.src.Name, headers: c.headers, body: []byte(c.body), now: verifyNow}
		b.Run(fmt.Sprintf("%s/%dB", c.name, len(c.body)), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := src.verifier.verify(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
