package webhook

import (
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sergas/core/internal/db"
)

// TestUnknownChannelReadsAsWrongToken: a sender cannot tell an unknown Zoho channel from a wrong token
// (the same status, message and details), so channel ids cannot be found by trying them; the refusal
// counter keeps the two reasons apart.
func TestUnknownChannelReadsAsWrongToken(t *testing.T) {
	h, _ := startWithSources(t, db.SQLite, map[string]string{})
	ctx := from(t, "198.51.100.9")
	before := promtest.ToFloat64(refusedTotal.WithLabelValues("zoho", reasonUnknownChannel))
	_, wrongToken := h.client.Ingest(ctx, signed("zoho", zohoBody(1000000068001, "tok-x", 1, "1")))
	_, unknown := h.client.Ingest(ctx, signed("zoho", zohoBody(1000000068999, "tok-1", 1, "1")))
	wantUnverified(t, "wrong token", wrongToken)
	wantUnverified(t, "unknown channel", unknown)
	if after := promtest.ToFloat64(refusedTotal.WithLabelValues("zoho", reasonUnknownChannel)); after < before+1 {
		t.Errorf("unknown channel not counted as such: %v -> %v", before, after)
	}
	a, b := status.Convert(wrongToken).Proto(), status.Convert(unknown).Proto()
	if !proto.Equal(a, b) {
		t.Fatalf("a sender can tell them apart:\nwrong token: %v\nunknown channel: %v", a, b)
	}
}
