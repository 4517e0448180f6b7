package grpcserver

import (
	"context"
	"testing"

	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/sergas/core/internal/tracing"
)

// TestServerSpanStatusBlamesOnlyServerFailures: a server span is marked as an error for the codes that
// mean the server failed (OpenTelemetry's RPC conventions), and left unset for the caller's mistakes, so
// that error-rate views of traces are not flooded by bad requests.
func TestServerSpanStatusBlamesOnlyServerFailures(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	previous := tracing.Use(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { tracing.Use(previous) })

	answer := make(chan error, 1)
	_, conn, _, _ := startProbe(t, &probe{do: func(context.Context) error { return <-answer }})

	for _, c := range []struct {
		code codes.Code
		want otelcodes.Code
	}{
		{codes.OK, otelcodes.Unset},
		{codes.NotFound, otelcodes.Unset},
		{codes.InvalidArgument, otelcodes.Unset},
		{codes.PermissionDenied, otelcodes.Unset},
		{codes.Internal, otelcodes.Error},
		{codes.Unavailable, otelcodes.Error},
		{codes.DeadlineExceeded, otelcodes.Error},
		{codes.DataLoss, otelcodes.Error},
	} {
		before := len(rec.Ended())
		if c.code == codes.OK {
			answer <- nil
		} else {
			answer <- status.Error(c.code, "probe")
		}
		if err := conn.Invoke(t.Context(), "/test.Probe/Call", &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != c.code {
			t.Fatalf("%v: call answered %v", c.code, err)
		}
		// The span ends before the answer is sent, so it is recorded by now.
		spans := rec.Ended()[before:]
		if len(spans) != 1 || spans[0].Name() != "test.Probe/Call" {
			t.Fatalf("%v: spans %v", c.code, spans)
		}
		if got := spans[0].Status().Code; got != c.want {
			t.Errorf("%v: span status %v, want %v", c.code, got, c.want)
		}
	}
}
