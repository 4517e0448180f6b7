package gateway

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// Invented HTTP methods are counted as "other": a caller cannot create a metric series per request.
func TestMetricLabelsAreBounded(t *testing.T) {
	base := serveHTTP(t, newGateway(t, nil, closedAddr(t), nil))
	series := func() (int, string) {
		_, _, body := send(t, "GET", base+"/metrics", "")
		return strings.Count(body, "\nhttp_requests_total{"), body
	}
	before, _ := series()
	var invented []string
	for i := range 50 {
		m := make([]byte, 2000)
		for j := range m {
			m[j] = byte('A' + rand.IntN(26))
		}
		invented = append(invented, string(m))
		for _, path := range []string{"/v1/connections", "/healthz", "/webhooks/zoho", "/nowhere"} {
			send(t, invented[i], base+path, "")
		}
	}
	after, body := series()
	// At most one new series per route and status for "other", and for the /metrics calls themselves.
	if after-before > 8 {
		t.Errorf("http_requests_total grew from %d to %d series for 200 requests with invented methods", before, after)
	}
	for _, m := range invented {
		if strings.Contains(body, m) {
			t.Fatal("an invented method is a label value")
		}
	}
	if !strings.Contains(body, `method="other"`) {
		t.Error(`no method="other" series`)
	}
}
