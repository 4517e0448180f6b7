package tracing

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

var jobSpan = []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindInternal)}

// StartJob starts the root span of one run of a background job (a refresh round, a checkpoint, a
// delivery): a trace of its own, never a child of the process's start or of whatever request happened to
// wake the job, so that its store calls and the calls it makes appear as one trace per run. End the span
// when the run ends.
func StartJob(ctx context.Context, name string) (context.Context, trace.Span) {
	return Provider().Tracer("github.com/sergas/core/internal/tracing/jobs").Start(ctx, name, jobSpan...)
}
