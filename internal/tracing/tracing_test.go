package tracing_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/encoding"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/internal/tracing"
	"github.com/sergas/core/internal/tracing/tracingtest"
)

// These tests install the process's provider, so none runs in parallel.

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// otelGoroutines lists the goroutines running OpenTelemetry SDK or exporter code.
func otelGoroutines(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(g, "go.opentelemetry.io/otel/sdk") || strings.Contains(g, "go.opentelemetry.io/otel/exporters") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// With no OTEL variable nothing is exported: no exporter goroutine, no connection (a receiver listening
// with OTEL_TRACES_EXPORTER=none, or with tracing disabled, is never dialled), while spans still carry
// trace ids and continue a caller's trace.
func TestWithoutEndpointNothingIsExported(t *testing.T) {
	recv := tracingtest.Start(t)
	for name, env := range map[string]map[string]string{
		"no variables":  {},
		"exporter none": {"OTEL_EXPORTER_OTLP_ENDPOINT": recv.Endpoint(), "OTEL_TRACES_EXPORTER": "none"},
		"sdk disabled":  {"OTEL_EXPORTER_OTLP_ENDPOINT": recv.Endpoint(), "OTEL_SDK_DISABLED": "true"},
	} {
		t.Run(name, func(t *testing.T) {
			e := config.FromMap(env)
			cfg := tracing.LoadConfig(e, "svc")
			if err := e.Err(); err != nil || cfg.Export {
				t.Fatalf("config %+v, %v: want no export", cfg, err)
			}
			shutdown, err := tracing.Setup(t.Context(), cfg, discard())
			if err != nil {
				t.Fatal(err)
			}
			tr := tracing.Tracer("test")
			ctx, root := tr.Start(context.Background(), "root")
			_, child := tr.Start(ctx, "child")
			if !root.SpanContext().IsValid() || root.SpanContext().TraceID() != child.SpanContext().TraceID() ||
				root.SpanContext().SpanID() == child.SpanContext().SpanID() {
				t.Fatalf("ids: root %v child %v", root.SpanContext(), child.SpanContext())
			}
			if root.IsRecording() || child.IsRecording() {
				t.Fatal("a span records with exporting off")
			}
			child.End()
			root.End()
			if g := otelGoroutines(t); g != "" {
				t.Fatalf("exporter goroutines with exporting off:\n%s", g)
			}
			if err := shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := recv.Connections(); n != 0 {
				t.Fatalf("the receiver was dialled %d times", n)
			}
			if s := recv.Spans(); len(s) != 0 {
				t.Fatalf("spans exported: %v", s)
			}
		})
	}
}

// A caller's traceparent is continued: same trace id, a span id of our own, the caller's sampling flag.
func TestIDsContinueTheCallersTrace(t *testing.T) {
	if _, err := tracing.Setup(t.Context(), tracing.Config{}, discard()); err != nil {
		t.Fatal(err)
	}
	caller := tracing.FromTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "")
	if !caller.IsValid() || !caller.IsRemote() {
		t.Fatalf("caller %v", caller)
	}
	ctx, span := tracing.Tracer("test").Start(trace.ContextWithRemoteSpanContext(context.Background(), caller), "x")
	sc := span.SpanContext()
	if sc.TraceID() != caller.TraceID() || sc.SpanID() == caller.SpanID() || !sc.IsSampled() {
		t.Fatalf("span %v continues %v badly", sc, caller)
	}
	if got := tracing.TraceID(ctx); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("TraceID %q", got)
	}
	if tp := tracing.Traceparent(ctx); !strings.HasPrefix(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-") || strings.Contains(tp, "00f067aa0ba902b7") {
		t.Fatalf("traceparent %q", tp)
	}
	// WithNewRoot leaves the caller's trace.
	_, root := tracing.Tracer("test").Start(ctx, "job", trace.WithNewRoot())
	if root.SpanContext().TraceID() == caller.TraceID() {
		t.Fatal("a new root kept the caller's trace")
	}
}

// With an endpoint, spans go to the receiver over OTLP (gRPC, or HTTP with protobuf) and Shutdown flushes
// them.
func TestExport(t *testing.T) {
	t.Run("grpc", func(t *testing.T) { testExport(t, tracingtest.Start(t), "grpc") })
	t.Run("http", func(t *testing.T) { testExport(t, tracingtest.StartHTTP(t), "http/protobuf") })
}

func testExport(t *testing.T, recv *tracingtest.Receiver, protocol string) {
	e := config.FromMap(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": recv.Endpoint(), "OTEL_SERVICE_NAME": "unit",
		"OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
		"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment=test", "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s%20ecret"})
	cfg := tracing.LoadConfig(e, "svc")
	if err := e.Err(); err != nil || !cfg.Export || cfg.Headers["x-api-key"] != "s ecret" {
		t.Fatalf("config %+v, %v", cfg, err)
	}
	shutdown, err := tracing.Setup(t.Context(), cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = tracing.Setup(context.Background(), tracing.Config{}, discard()) })
	ctx, root := tracing.Tracer("test").Start(context.Background(), "root")
	_, child := tracing.Tracer("test").Start(ctx, "child")
	child.End()
	root.End()
	sctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	spans := recv.Spans() // Shutdown returned: the export is done
	if len(spans) != 2 {
		t.Fatalf("spans %v", spans)
	}
	byName := map[string]tracingtest.Span{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	if r, c := byName["root"], byName["child"]; r.Service != "unit" || c.ParentID != r.SpanID || c.TraceID != r.TraceID || r.ParentID != "" ||
		r.Resource["deployment.environment"] != "test" || recv.APIKey() != "s ecret" {
		t.Fatalf("spans %+v, api key %q", byName, recv.APIKey())
	}
}

// Bad values are reported by name, and never quote a header's value.
func TestConfigErrors(t *testing.T) {
	e := config.FromMap(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317", "OTEL_TRACES_SAMPLER": "sometimes", "OTEL_TRACES_SAMPLER_ARG": "2",
		"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%zzsecret", "OTEL_EXPORTER_OTLP_PROTOCOL": "udp",
	})
	cfg := tracing.LoadConfig(e, "svc")
	err := e.Err()
	if err == nil || cfg.Export {
		t.Fatalf("no error for bad values (export %v)", cfg.Export)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error quotes a header: %v", err)
	}
	// The HTTP exporter's base URL gains the traces path; the traces endpoint is used as given.
	e = config.FromMap(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
	if cfg := tracing.LoadConfig(e, "svc"); cfg.Endpoint != "http://collector:4318/v1/traces" || cfg.Protocol != tracing.ProtocolHTTP {
		t.Fatalf("%+v", cfg)
	}
	e = config.FromMap(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/x", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:1",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
	if cfg := tracing.LoadConfig(e, "svc"); cfg.Endpoint != "https://c/x" || cfg.Protocol != tracing.ProtocolHTTP || cfg.ServiceName != "svc" {
		t.Fatalf("%+v", cfg)
	}
}

// Linking tracing must not register gRPC's gzip compressor: every call of every client and server in the
// process would then carry grpc-accept-encoding headers (about a kilobyte and four allocations more per
// call in internal/grpcserver's callcost benchmark), tracing on or off. OpenTelemetry's OTLP exporter
// packages do register it; grpcClient and httpClient stand in for them.
func TestGzipCompressorNotRegistered(t *testing.T) {
	if encoding.GetCompressor("gzip") != nil {
		t.Fatal("gzip is registered: something linked google.golang.org/grpc/encoding/gzip (an OTLP exporter package?)")
	}
}

// A job's span is a root even when the job was started from a request's context.
func TestStartJobIsARoot(t *testing.T) {
	ctx, req := tracing.Tracer("test").Start(context.Background(), "request")
	_, job := tracing.StartJob(ctx, "job")
	if !job.SpanContext().IsValid() || job.SpanContext().TraceID() == req.SpanContext().TraceID() {
		t.Fatalf("job %v under request %v", job.SpanContext(), req.SpanContext())
	}
}
