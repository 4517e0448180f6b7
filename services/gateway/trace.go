package gateway

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/sergas/core/internal/tracing"
)

// traceIDHeader names the request's trace in every answer (X-Trace-Id), so that a caller reporting a
// failure hands the operator the key to its log lines, spans and audit events.
var traceIDHeader = http.CanonicalHeaderKey(tracing.TraceIDHeader)

var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// traced makes the HTTP server span of every request: the child of the caller's traceparent when it
// sent one (a REST client or a mesh), a new trace otherwise. The calls to the services are its children
// (their connections carry tracing.ClientHandler). The span is named after the route pattern, never the
// raw path, whose ids would make every request's name different.
func traced(mux *http.ServeMux, isStream func(*http.Request) bool, next http.Handler) http.Handler {
	tracer := tracing.Tracer("github.com/sergas/core/services/gateway")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, "HTTP", serverSpan...)
		defer span.End()
		if sc := span.SpanContext(); sc.IsValid() {
			w.Header().Set(traceIDHeader, sc.TraceID().String())
		}
		if !span.IsRecording() {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		route := routeOf(mux, isStream, r)
		method := methodLabel(r.Method)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		span.SetName(method + " " + route)
		span.SetAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route),
			attribute.Int("http.response.status_code", rec.code))
		if rec.code >= 500 {
			span.SetStatus(otelcodes.Error, strconv.Itoa(rec.code))
		}
	})
}

// withTraceID adds the trace id to an error's details as google.rpc.RequestInfo, which grpc-gateway
// writes into the JSON body ("details": [{"@type": ".../google.rpc.RequestInfo", "requestId": …}]).
func withTraceID(ctx context.Context, err error) error {
	id := tracing.TraceID(ctx)
	if id == "" {
		return err
	}
	st := status.Convert(err)
	if withID, derr := st.WithDetails(&errdetails.RequestInfo{RequestId: id}); derr == nil {
		return withID.Err()
	}
	return err
}
