package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// A line logged with a span's context names its trace and span, also through With and WithGroup; a line
// without one names neither.
func TestLinesNameTheirTrace(t *testing.T) {
	var buf bytes.Buffer
	log := New(Config{Level: slog.LevelInfo, Format: "json"}, &buf).With("service", "x").WithGroup("g")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.InfoContext(ctx, "in a request", "k", "v")
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	var in, out map[string]any
	if json.Unmarshal([]byte(lines[0]), &in) != nil || json.Unmarshal([]byte(lines[1]), &out) != nil {
		t.Fatalf("not JSON: %q", lines)
	}
	g, _ := in["g"].(map[string]any)
	if g["trace_id"] != tid.String() || g["span_id"] != sid.String() || in["service"] != "x" {
		t.Fatalf("line in a request: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Fatalf("line outside a request names a trace: %s", lines[1])
	}
}
