package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sergas/core/internal/logging"
)

// Setup installs the process's tracer provider and propagator, and returns the function that flushes
// and stops them (call it once, at exit, with a deadline). Without export the provider only makes ids
// (see idProvider): nothing is recorded, and no exporter, goroutine or connection is created.
//
// Setup must run before the servers and clients are built: they take their tracer when they are made.
func Setup(ctx context.Context, cfg Config, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(Propagator)
	if !cfg.Export {
		setProvider(idProvider{})
		return func(context.Context) error { return nil }, nil
	}
	sampled := logging.NewSampler(1.0/60, 5)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		// An unreachable collector fails every export; a line a minute says so without flooding.
		if ok, suppressed := sampled.Allow(time.Now()); ok {
			log.Warn("tracing: exporting spans failed", "error", err.Error(), "errors_not_logged", suppressed)
		}
	}))
	var exp sdktrace.SpanExporter
	switch cfg.Protocol {
	case ProtocolHTTP:
		exp, err = otlptrace.New(ctx, newHTTPClient(cfg.Endpoint, cfg.Headers))
	default:
		var c *grpcClient
		if c, err = newGRPCClient(cfg.Endpoint, cfg.Headers); err == nil {
			exp, err = otlptrace.New(ctx, c)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	for k, v := range cfg.Attributes {
		if k != "service.name" {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		res = resource.NewSchemaless(attrs...)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithSampler(sampler(cfg)))
	setProvider(tp)
	log.Info("tracing: exporting spans", "endpoint", redactURL(cfg.Endpoint), "protocol", cfg.Protocol,
		"service_name", cfg.ServiceName, "sampler", cfg.Sampler)
	return tp.Shutdown, nil
}

// sampler builds the sampler OTEL_TRACES_SAMPLER names.
func sampler(cfg Config) sdktrace.Sampler {
	ratio := sdktrace.TraceIDRatioBased(cfg.SamplerArg)
	switch cfg.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return ratio
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(ratio)
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample())
}

// redactURL drops a URL's user information and query, which may hold credentials.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
