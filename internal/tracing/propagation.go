package tracing

import (
	"context"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// Propagator reads and writes W3C traceparent and tracestate. Servers and clients use it directly, not
// the global one, so that propagation works even in a process that never called Setup (tests).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// TraceIDHeader is the response header (HTTP) and trailer (gRPC) that names the trace of a failed
// request, so that an operator can find its log lines and spans from the answer a caller reports.
const TraceIDHeader = "x-trace-id"

// provider is the process's tracer provider: the id-only one until Setup installs another, so that
// requests have trace ids in every process, tests included.
var provider atomic.Pointer[providerBox]

type providerBox struct{ trace.TracerProvider }

func init() { provider.Store(&providerBox{idProvider{}}) }

// Provider returns the process's tracer provider.
func Provider() trace.TracerProvider { return provider.Load().TracerProvider }

// Use installs tp as the process's provider (Setup calls it; a test installs an in-memory recorder) and
// returns the one it replaces. Components built afterwards take their tracers from it.
func Use(tp trace.TracerProvider) (previous trace.TracerProvider) {
	previous = Provider()
	setProvider(tp)
	return previous
}

// setProvider installs tp as the process's provider and as OpenTelemetry's global one.
func setProvider(tp trace.TracerProvider) {
	provider.Store(&providerBox{tp})
	otel.SetTracerProvider(tp)
}

// Tracer returns the tracer of the process's provider, for a component named name. Components take it
// when they are built, after Setup.
func Tracer(name string) trace.Tracer { return Provider().Tracer(name) }

// TraceID returns the trace id of ctx in hex, or "" when it has none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// Traceparent returns the W3C traceparent of ctx's span, or "" when it has none.
func Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c["traceparent"]
}

// FromTraceparent returns the span context a traceparent (and tracestate) names, marked remote; the zero
// value when it names none.
func FromTraceparent(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	c := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	return trace.SpanContextFromContext(Propagator.Extract(context.Background(), c))
}

// ExtractGRPC returns ctx with the span context of the incoming call's traceparent, when it has one. It
// looks the two keys up rather than copying the call's metadata (metadata.FromIncomingContext copies
// every key and value): most calls carry none, and those pay nothing.
func ExtractGRPC(ctx context.Context) context.Context {
	tp := metadata.ValueFromIncomingContext(ctx, "traceparent")
	if len(tp) == 0 {
		return ctx
	}
	c := propagation.MapCarrier{"traceparent": tp[0]}
	if ts := metadata.ValueFromIncomingContext(ctx, "tracestate"); len(ts) > 0 {
		c["tracestate"] = strings.Join(ts, ",")
	}
	return Propagator.Extract(ctx, c)
}
