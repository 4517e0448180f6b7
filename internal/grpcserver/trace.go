package grpcserver

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/sergas/core/internal/tracing"
)

// serverSpan is the option every server span starts with (a slice made once: the call would otherwise
// allocate it).
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// startSpan starts the server span of an application RPC, the child of the caller's traceparent when it
// sent one. Health checks and reflection get none: probes every few seconds would bury the traces. The
// span is nil then.
func startSpan(tracer trace.Tracer, ctx context.Context, method string) (context.Context, trace.Span) {
	if strings.HasPrefix(method, "/grpc.") {
		return ctx, nil
	}
	return tracer.Start(tracing.ExtractGRPC(ctx), strings.TrimPrefix(method, "/"), serverSpan...)
}

// traceTrailer names the trace of a failed call in the trailer (x-trace-id), so that a caller can report
// it; a successful call pays nothing for it.
func traceTrailer(ctx context.Context, code codes.Code) metadata.MD {
	if code == codes.OK {
		return nil
	}
	if id := tracing.TraceID(ctx); id != "" {
		return metadata.Pairs(tracing.TraceIDHeader, id)
	}
	return nil
}

// endSpan records the outcome on a recording span and ends it.
func endSpan(span trace.Span, method string, code codes.Code) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		svc, m := splitMethod(method)
		span.SetAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", svc),
			attribute.String("rpc.method", m), attribute.Int("rpc.grpc.status_code", int(code)))
		if serverError(code) {
			span.SetStatus(otelcodes.Error, code.String())
		}
	}
	span.End()
}

// serverError reports whether a server span ends in error for code c (OpenTelemetry's RPC conventions):
// every code but success and those that name the caller's fault. A code gRPC may add later counts as the
// server's until it is listed here.
func serverError(c codes.Code) bool {
	switch c {
	case codes.OK, codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.ResourceExhausted, codes.FailedPrecondition, codes.Aborted, codes.OutOfRange, codes.Unauthenticated:
		return false
	}
	return true
}

// setTrailer adds md to a unary call's trailer.
func setTrailer(ctx context.Context, md metadata.MD) {
	if md != nil {
		_ = grpc.SetTrailer(ctx, md)
	}
}
