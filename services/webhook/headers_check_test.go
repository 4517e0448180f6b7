package webhook

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/validate"
)

// parseHeaders checks values as it did when every value went through validate.Text and then the control
// character check: the same values pass, the others fail with the same message.
func TestParseHeadersChecksValuesAsBefore(t *testing.T) {
	before := func(name, v string) string { // the checks as they were, one after the other
		if err := validate.Text("header "+name, v, maxHeaderValue, false); err != nil {
			return err.Error()
		}
		if !validHeaderValue(v) {
			return "header " + name + " must not contain control characters"
		}
		return ""
	}
	for _, v := range []string{"", "plain", "tab\there", "é ü 漢", strings.Repeat("x", maxHeaderValue), strings.Repeat("x", maxHeaderValue+1),
		"a\xffb", "nul\x00", "nl\n", "cr\r", "del\x7f", "esc\x1b[0m", "\xc3", strings.Repeat("é", maxHeaderValue/2+1), "bad\xff\x00"} {
		_, err := parseHeaders([]*webhookv1.Header{{Name: "X-Test", Values: []string{"ok", v}}})
		got := ""
		if err != nil {
			got = err.Error()
		}
		want := before("X-Test", v)
		if (got == "") != (want == "") || (want != "" && !strings.Contains(got, want)) {
			t.Errorf("value %q: error %q, want %q", truncateForLog(v), got, want)
		}
	}
}

func truncateForLog(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// The cached children of webhook_ingest_accepted_total are the vector's own: counting through the
// cache shows in the exported series.
func TestAcceptedCounterIsTheVectorsChild(t *testing.T) {
	series := acceptedTotal.WithLabelValues("cache-test", "stored")
	before := testutil.ToFloat64(series)
	for range 3 {
		acceptedCounter("cache-test", "stored").Inc()
	}
	if got := testutil.ToFloat64(series) - before; got != 3 {
		t.Fatalf("counted %v, want 3", got)
	}
}

// BenchmarkParseHeaders parses the headers of a typical signed delivery.
func BenchmarkParseHeaders(b *testing.B) {
	in := []*webhookv1.Header{
		{Name: "Content-Type", Values: []string{"application/json"}}, {Name: "User-Agent", Values: []string{"Zoho CRM"}},
		{Name: "X-Zoho-Signature", Values: []string{strings.Repeat("ab", 32)}}, {Name: "X-Zoho-Event-Id", Values: []string{"0b7c1a52-9a55-4c1e-8d1c-2f1f6f3f9a10"}},
		{Name: "Accept-Encoding", Values: []string{"gzip"}}, {Name: "Content-Length", Values: []string{"1024"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseHeaders(in); err != nil {
			b.Fatal(err)
		}
	}
}
