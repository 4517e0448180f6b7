package webhook

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/sergas/core/internal/logging"
	"github.com/sergas/core/internal/testutil"
)

// TestRefusalLineNamesTheTrace: the line of a refused delivery carries the trace of the request that was
// refused, so that an operator finds it from the trace id in the sender's answer.
func TestRefusalLineNamesTheTrace(t *testing.T) {
	var buf testutil.LogBuffer
	r := newRefusals(logging.New(logging.Config{Format: "json"}, &buf), nil)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled,
	})
	r.refused(trace.ContextWithSpanContext(context.Background(), sc), "zoho", "bad_signature", "192.0.2.1", time.Now())
	if line := buf.String(); !strings.Contains(line, `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) {
		t.Fatalf("refusal line without the trace id: %s", line)
	}
}
