package tracing

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// ClientHandler makes a client span for every call on a connection and sends the call's traceparent,
// so that the server's span is its child. Its metrics are off: the services count calls in Prometheus.
func ClientHandler() stats.Handler {
	return otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(Provider()), otelgrpc.WithPropagators(Propagator), otelgrpc.WithMeterProvider(noop.NewMeterProvider()))
}

// DialOption is ClientHandler as a dial option.
func DialOption() grpc.DialOption { return grpc.WithStatsHandler(ClientHandler()) }
